#!lua flags=allow-oom
-- worker_renew: extend a worker's lease; one call per worker per interval, however many tasks
-- it runs (I6).
--
-- A lease whose deadline has passed is lost, whether or not the resurrector got to it yet:
-- the resurrector may already be re-queueing its tasks from an earlier scan, so extending it
-- now would let the old runs go on while new incarnations start (the body would run twice,
-- unnoticed). The worker learns it here, re-queues what it owned (its runs are fenced from
-- then on), and registers again. Same boundary as scan_due: deadline <= now is expired.
--
-- KEYS[1] workers       worker leases
-- KEYS[2] worker        the worker's facts hash
-- KEYS[3] worker_tasks  the worker's set of running tasks
-- ARGV[1] worker_id
-- ARGV[2] ttl_ms        lease length
-- Returns: {0} the lease was lost (expired or reaped; nothing written);
--          {1, running_count, drain_request|''} renewed
--@include clock

local now = now_ms()
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not deadline or tonumber(deadline) <= now then return {0} end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return {1, redis.call('SCARD', KEYS[3]), redis.call('HGET', KEYS[2], 'drain') or ''}
