#!lua flags=allow-oom
-- task_republish: publish again the message of a queued task whose message was lost.
--
-- The resurrector calls it for a queued task whose broker sequence lies behind its queue's
-- claimed watermark (the message left the list but nobody claimed it: kombu popped it and the
-- worker died before recording it). A compare-and-set on the sequence makes replicas and
-- repeats harmless; if the old message turns up after all, the claim drops the second copy.
--
-- A worker that received the task's message but lacks the task calls it too (ARGV[5] set),
-- after a delay, when a live worker consuming the queue registered the task but is busy. Such
-- a bounce proves nothing about lost messages, so it counts apart ('ub', since the last claim)
-- and does not bring the task closer to NeverClaimed; past its own limit the task is
-- dead-lettered as UnregisteredTask with ARGV[5] as its message (the busy workers named).
--
-- KEYS[1] record        the task record hash
-- KEYS[2] pending       unclaimed-task index of the task's message queue
-- KEYS[3] qseq          last broker sequence per queue
-- KEYS[4] queue_list    kombu's list of that queue (written only when ARGV[3] is set)
-- KEYS[5] dlq           dead-letter index
-- KEYS[6] idem          idempotency marker (released on dead-lettering)
-- ARGV[1] task_id
-- ARGV[2] seq           the sequence the caller saw; anything else means the task moved on
-- ARGV[3] message       the kombu message; '' when the broker is another server (its
--                       "rl_seq":0 header is stamped with the new sequence)
-- ARGV[4] max_republish re-publications (bounces, with ARGV[5]) allowed before the task is
--                       dead-lettered
-- ARGV[5] bounce        '' for a lost message; else the dead-letter message to use when the
--                       bounces pass ARGV[4]
-- Returns: {1, seq} republished; {2} dead-lettered (never claimed, or unregistered by any
--          worker that is free);
--          {0} no longer waiting for a claim under that sequence (a stale index entry is
--          dropped)
--@include clock
--@include history
--@include message

local record, pending, qseq, list, dlq, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local task_id = ARGV[1]
local f = redis.call('HMGET', record, 's', 'sq', 'mq')
if f[1] ~= 'queued' or f[2] ~= ARGV[2] then
  -- Drop only the stale entry: a task still queued under a newer sequence (another caller
  -- re-published it first) keeps its index entry, or a loss of that message would go unseen.
  local score = redis.call('ZSCORE', pending, task_id)
  if f[1] ~= 'queued' or (score and tonumber(score) == tonumber(ARGV[2])) then
    redis.call('ZREM', pending, task_id)
  end
  return {0}
end

local now = now_ms()
if ARGV[5] ~= '' then
  local bounces = redis.call('HINCRBY', record, 'ub', 1)
  if bounces > tonumber(ARGV[4]) then
    close_attempt(record, 'rejected', 'UnregisteredTask', now)
    redis.call('HSET', record, 's', 'dead', 'dr', 'UnregisteredTask',
      'dx', 'celery.exceptions.NotRegistered', 'dm', ARGV[5], 'tb', '', 'dd', now)
    redis.call('ZREM', pending, task_id)
    redis.call('ZADD', dlq, now, task_id)
    if redis.call('HGET', idem, 't') == task_id then redis.call('DEL', idem) end
    return {2}
  end
else
  local count = redis.call('HINCRBY', record, 'rp', 1)
    - tonumber(redis.call('HGET', record, 'rpc') or 0)
  if count > tonumber(ARGV[4]) then
    close_attempt(record, 'never_claimed', 'message delivered ' .. (count - 1) ..
      ' times without a claim', now)
    redis.call('HSET', record, 's', 'dead', 'dr', 'NeverClaimed', 'dx', '',
      'dm', 'no worker claimed the task after ' .. (count - 1) .. ' deliveries: is its module ' ..
      'imported by the workers (RELIER_IMPORTS) and its queue consumed?', 'tb', '', 'dd', now)
    redis.call('ZREM', pending, task_id)
    redis.call('ZADD', dlq, now, task_id)
    if redis.call('HGET', idem, 't') == task_id then redis.call('DEL', idem) end
    return {2}
  end
end
local seq = redis.call('HINCRBY', qseq, f[3], 1)
redis.call('HSET', record, 'sq', seq)
redis.call('ZADD', pending, seq, task_id)
if ARGV[3] ~= '' then redis.call('LPUSH', list, stamp_seq(ARGV[3], seq)) end
return {1, seq}
