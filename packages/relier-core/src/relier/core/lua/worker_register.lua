#!lua flags=allow-oom
-- worker_register: give a worker process its lease and record who it is.
--
-- KEYS[1] workers       worker leases
-- KEYS[2] worker        the worker's facts hash
-- ARGV[1] worker_id
-- ARGV[2] ttl_ms        lease length
-- ARGV[3..] facts       field, value pairs (hostname, pid, queues, started, tasks: a JSON
--                       array of the registered task names, ...)
-- Returns: the lease deadline in ms
--@include clock

local deadline = now_ms() + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], deadline, ARGV[1])
if #ARGV > 2 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 3))
end
redis.call('HDEL', KEYS[2], 'drain')
return deadline
