#!lua flags=allow-oom
-- task_complete: commit a run's result, fenced on its epoch (I2, I3, I5).
--
-- The result, the state 'done' and the idempotency commit change in one step, so a crash can
-- never leave a committed effect without its cached result or the other way round.
--
-- KEYS[1] record        the task record hash
-- KEYS[2] envelope      the task's envelope string
-- KEYS[3] worker_tasks  the worker's set of running tasks
-- KEYS[4] idem          idempotency marker (ignored when ARGV[5] is 0)
-- ARGV[1] task_id
-- ARGV[2] epoch         the epoch the run received at claim
-- ARGV[3] result        the encoded result
-- ARGV[4] result_ttl    seconds the done record stays readable
-- ARGV[5] idem_ttl      seconds the idempotent result is cached; 0 when not idempotent
-- Returns: 1 committed; 0 fenced (another incarnation owns the task, nothing written)
--@include clock
--@include history

local record, envelope, wtasks, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local task_id = ARGV[1]
local f = redis.call('HMGET', record, 's', 'ep')
if f[1] ~= 'running' or f[2] ~= ARGV[2] then return 0 end

local now = now_ms()
close_attempt(record, 'completed', '', now)
redis.call('HSET', record, 's', 'done', 'r', ARGV[3])
redis.call('HDEL', record, 'w', 'ck')
redis.call('SREM', wtasks, task_id)
redis.call('EXPIRE', record, tonumber(ARGV[4]))
redis.call('EXPIRE', envelope, tonumber(ARGV[4]))
if tonumber(ARGV[5]) > 0 and redis.call('HGET', idem, 't') == task_id then
  redis.call('HSET', idem, 's', 'd', 'r', ARGV[3])
  redis.call('EXPIRE', idem, tonumber(ARGV[5]))
end
return 1
