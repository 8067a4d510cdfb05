#!lua flags=allow-oom
-- worker_renew: extend a worker's lease; one call per worker per interval, however many tasks
-- it runs (I6).
--
-- A worker whose lease was already reaped learns it here (its tasks now belong to others and
-- their writes from it will be fenced), so it can register again and report the pause.
--
-- KEYS[1] workers       worker leases
-- KEYS[2] worker        the worker's facts hash
-- KEYS[3] worker_tasks  the worker's set of running tasks
-- ARGV[1] worker_id
-- ARGV[2] ttl_ms        lease length
-- Returns: {0} the lease was lost; {1, running_count, drain_request|''} renewed
--@include clock

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0} end
redis.call('ZADD', KEYS[1], 'XX', now_ms() + tonumber(ARGV[2]), ARGV[1])
return {1, redis.call('SCARD', KEYS[3]), redis.call('HGET', KEYS[2], 'drain') or ''}
