#!lua flags=allow-oom
-- task_reject: dead-letter a queued task that no live worker can run (its name is registered
-- by none of them), instead of re-publishing it until it expires as NeverClaimed.
--
-- Called by the worker that received the task's message for a name it does not know. A
-- compare-and-set on the state: only a task still waiting for a claim is dead-lettered, so a
-- stale duplicate message of a task that has since run, or is running, changes nothing.
--
-- KEYS[1] record        the task record hash
-- KEYS[2] pending       unclaimed-task index of the task's message queue
-- KEYS[3] dlq           dead-letter index
-- KEYS[4] idem          idempotency marker (released on dead-lettering)
-- ARGV[1] task_id
-- ARGV[2] reason        short reason (UnregisteredTask)
-- ARGV[3] exc_type      qualified exception type, or ''
-- ARGV[4] message       human-readable message (which task, which workers lacked it)
-- Returns: 1 dead-lettered; 0 not queued any more (nothing written)
--@include clock
--@include history

local record, pending, dlq, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local task_id = ARGV[1]
if redis.call('HGET', record, 's') ~= 'queued' then return 0 end

local now = now_ms()
close_attempt(record, 'rejected', ARGV[2], now)
redis.call('HSET', record, 's', 'dead', 'dr', ARGV[2], 'dx', ARGV[3], 'dm', ARGV[4],
  'tb', '', 'dd', now)
redis.call('ZREM', pending, task_id)
redis.call('ZADD', dlq, now, task_id)
-- A task that never ran committed no effect: free its idempotency key for a release (I5).
if redis.call('HGET', idem, 't') == task_id then redis.call('DEL', idem) end
return 1
