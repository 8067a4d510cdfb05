#!lua flags=allow-oom
-- worker_reap: forget a worker that is gone and owns no task any more.
--
-- KEYS[1] workers       worker leases
-- KEYS[2] worker        the worker's facts hash
-- KEYS[3] worker_tasks  the worker's set of running tasks
-- ARGV[1] worker_id
-- ARGV[2] force         1 when the worker itself leaves cleanly; 0 to require an expired lease
-- Returns: 1 removed; 0 kept (lease renewed meanwhile, or tasks still to resurrect)
--@include clock

local lease = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[2] ~= '1' and lease and tonumber(lease) > now_ms() then return 0 end
if redis.call('SCARD', KEYS[3]) > 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1
