#!lua flags=allow-oom
-- dlq_purge: delete one dead-lettered task for good.
--
-- KEYS[1] record        the task record hash
-- KEYS[2] envelope      the task's envelope string
-- KEYS[3] dlq           dead-letter index
-- KEYS[4] idem          idempotency marker (released if this task owns it)
-- ARGV[1] task_id
-- Returns: 1 purged; 0 not in the dead-letter queue

local f = redis.call('HMGET', KEYS[1], 's')
if f[1] ~= 'dead' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[4], 't') == ARGV[1] then redis.call('DEL', KEYS[4]) end
return 1
