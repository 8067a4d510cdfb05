#!lua flags=allow-oom
-- task_fail: dead-letter a task with its reason, fenced on its epoch (I2, I3).
--
-- The record itself becomes the dead-letter entry: it keeps the original sealed envelope, the
-- history of every attempt and the last checkpoint; this adds the reason, exception and
-- traceback, and indexes it by time. With epoch 0 it records a message that was never claimed
-- (an orphan broker message, a rejected legacy message) as a new dead record holding its raw
-- bytes, so that nothing is dropped silently.
--
-- KEYS[1] record        the task record hash
-- KEYS[2] envelope      the task's envelope string
-- KEYS[3] worker_tasks  the worker's set of running tasks
-- KEYS[4] dlq           dead-letter index
-- KEYS[5] idem          idempotency marker (released if this task owns it)
-- ARGV[1] task_id
-- ARGV[2] epoch         the run's epoch; 0 for a message that was never claimed
-- ARGV[3] reason        short reason (exception class name or max_resurrections_exceeded)
-- ARGV[4] exc_type      qualified exception type, or ''
-- ARGV[5] message       human-readable message
-- ARGV[6] traceback     formatted traceback, or ''
-- ARGV[7] outcome       how the attempt ended: failed, timeout, rejected
-- ARGV[8] raw           raw payload bytes, stored only when the record has no envelope
-- ARGV[9] task_name     used only when creating the record
-- ARGV[10] queue        used only when creating the record
-- Returns: 1 dead-lettered; 0 fenced or already terminal (nothing written)
--@include clock
--@include history

local record, envelope, wtasks, dlq, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local task_id = ARGV[1]
local now = now_ms()
local f = redis.call('HMGET', record, 's', 'ep')
if ARGV[2] == '0' then
  if f[1] then return 0 end
  redis.call('HSET', record, 'n', ARGV[9], 'q', ARGV[10], 'mq', ARGV[10],
    'ep', 0, 'a', 1, 'k', 0, 'mr', 0, 'dt', now, 'ts', now)
  redis.call('SET', envelope, ARGV[8])
elseif f[1] ~= 'running' or f[2] ~= ARGV[2] then
  return 0
end

close_attempt(record, ARGV[7], ARGV[3], now)
redis.call('HSET', record, 's', 'dead', 'dr', ARGV[3], 'dx', ARGV[4], 'dm', ARGV[5],
  'tb', ARGV[6], 'dd', now)
redis.call('HDEL', record, 'w')
redis.call('SREM', wtasks, task_id)
redis.call('PERSIST', record)
redis.call('PERSIST', envelope)
redis.call('ZADD', dlq, now, task_id)
-- Release the idempotency key so that a released (fixed) task can run: a failure committed
-- no effect (I5).
if redis.call('HGET', idem, 't') == task_id then redis.call('DEL', idem) end
return 1
