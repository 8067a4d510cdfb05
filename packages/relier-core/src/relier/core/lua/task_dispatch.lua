#!lua
-- task_dispatch: deduplicate, admit and record a new task, then publish its broker message.
--
-- One atomic call does all of dispatch (I1, I6). When it returns 1, the task record and the
-- broker message are both in Redis; on any other return nothing at all was written, so a
-- rejected or deduplicated dispatch leaves no trace.
--
-- KEYS[1] record        the new task's record hash
-- KEYS[2] envelope      the new task's envelope string
-- KEYS[3] pending       unclaimed-task index of the queue (score = broker sequence)
-- KEYS[4] qseq          last broker sequence per queue
-- KEYS[5] queue_list    kombu's list of the queue (written only when ARGV[7] is not empty)
-- KEYS[6] idem          idempotency marker (ignored when ARGV[6] is 0)
-- KEYS[7..] admission   one sliding-window zset per admission scope (ARGV[9] of them)
-- ARGV[1] task_id
-- ARGV[2] task_name
-- ARGV[3] queue
-- ARGV[4] envelope      the sealed envelope bytes
-- ARGV[5] max_res       max_resurrections of the task
-- ARGV[6] idem_ttl      seconds a committed result is kept; 0 when the task is not idempotent
-- ARGV[7] message       the kombu message; '' when the broker is another server (the caller
--                       publishes it after this call; lost-message detection covers the gap);
--                       its "rl_seq":0 header is stamped with the sequence taken here
-- ARGV[8] traceparent   W3C trace context of the dispatch ('' when not traced), kept so
--                       that re-published messages carry it too
-- ARGV[9] n_scopes      number of admission scopes
-- ARGV[10..] limits     (limit, window_ms) per admission scope
-- Returns:
--   {1, seq}                               accepted
--   {2, task_id, state, result|false}      idempotent duplicate of an existing task
--   {3, retry_after_ms, scope_position}    refused by admission control
--@include clock
--@include window
--@include message

local record, envelope, pending, qseq, list, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local task_id, queue = ARGV[1], ARGV[3]
local idem_ttl = tonumber(ARGV[6])

-- A duplicate of a live or finished idempotent task returns that task: no admission is spent
-- on it and nothing is enqueued.
if idem_ttl > 0 then
  local m = redis.call('HMGET', idem, 't', 's', 'r')
  if m[1] then
    if m[2] == 'd' then return {2, m[1], 'done', m[3]} end
    return {2, m[1], 'queued', false}
  end
end

local now = now_ms()
local wait, position = window_admit(7, tonumber(ARGV[9]), 10, task_id, now)
if wait > 0 then return {3, wait, position} end

local seq = redis.call('HINCRBY', qseq, queue, 1)
redis.call('HSET', record,
  'n', ARGV[2], 'q', queue, 's', 'queued', 'ep', 0, 'a', 1, 'k', 0,
  'mr', ARGV[5], 'dt', now, 'sq', seq, 'mq', queue)
redis.call('SET', envelope, ARGV[4])
if ARGV[8] ~= '' then redis.call('HSET', record, 'tp', ARGV[8]) end
if idem_ttl > 0 then
  -- The marker names its owner; it has no TTL while the owner lives, because the owner's
  -- terminal transition (complete or dead-letter) always rewrites or releases it (I2, I5).
  redis.call('HSET', idem, 't', task_id, 's', 'r')
  redis.call('HSET', record, 'x', idem, 'it', idem_ttl)
end
redis.call('ZADD', pending, seq, task_id)
if ARGV[7] ~= '' then
  redis.call('LPUSH', list, stamp_seq(ARGV[7], seq))
end
return {1, seq}
