#!lua
-- task_dispatch: deduplicate, admit and record a task, then publish or schedule its message.
--
-- One atomic call does all of dispatch (I1, I6). When it returns 1, the task record and the
-- broker message (or, for a task due later, its scheduled message) are both in Redis; on any
-- other return nothing at all was written, so a rejected or deduplicated dispatch leaves no
-- trace.
--
-- Two kinds of message come here: a Relier doorbell (push/apush: the arguments live in the
-- envelope, the message names the task) and a plain Celery message published by an installed
-- app (.delay(), apply_async, send_task, canvas, retries, beat: the envelope is the sealed
-- message itself, ARGV[10] = 1). A plain message may name a task id that already has a record:
-- a Celery retry, self.replace or a requeued reject re-publishes the running task's own id. Such
-- a re-dispatch moves the record back to queued (or scheduled) under the new message, ends the
-- running attempt in the history, and is fenced: with ARGV[11] > 0 (the publisher runs that
-- very task) it acts only while the run of that epoch is current.
--
-- KEYS[1] record        the task's record hash
-- KEYS[2] envelope      the task's envelope string
-- KEYS[3] pending       unclaimed-task index of the queue (score = broker sequence)
-- KEYS[4] qseq          last broker sequence per queue
-- KEYS[5] queue_list    kombu's list of the queue (written only when ARGV[7] is not empty)
-- KEYS[6] idem          idempotency marker (ignored when ARGV[6] is 0)
-- KEYS[7] due           scheduled tasks by due time (zset, ms of the Redis clock)
-- KEYS[8] scheduled     the message a scheduled task's promotion pushes (string)
-- KEYS[9] dlq           dead-letter index (a re-dispatched dead task leaves it)
-- KEYS[10] occurrence   last sent occurrence of a beat entry (ignored when ARGV[12] is 0)
--                       for a new id: a re-dispatch is never an occurrence
-- KEYS[11..] admission  one sliding-window zset per admission scope (ARGV[13] of them)
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
-- ARGV[9] delay_ms      > 0: the task is due that many ms from now (Redis clock): it waits in
--                       KEYS[7] and its message in KEYS[8] until the resurrector promotes it
-- ARGV[10] plain        1 for a plain Celery message (re-dispatch allowed), 0 for a doorbell
-- ARGV[11] from_epoch   > 0: the publisher is the run of this epoch (retry, replace)
-- ARGV[12] occ_gap_ms   > 0: a beat occurrence; another send of the same entry within this
--                       many ms (a second beat process) is the same occurrence
-- ARGV[13] n_scopes     number of admission scopes
-- ARGV[14..] limits     (limit, window_ms) per admission scope
-- Returns:
--   {1, seq}                               accepted (seq 0: scheduled)
--   {2, task_id, state, result|false}      idempotent duplicate of an existing task
--   {3, retry_after_ms, scope_position}    refused by admission control
--   {4, epoch}                             fenced: the publishing run is no longer current
--   {5, task_id}                           this beat occurrence was already sent (as task_id)
--@include clock
--@include window
--@include message
--@include history

local record, envelope, pending, qseq, list, idem, due, scheduled, dlq =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local task_id, queue = ARGV[1], ARGV[3]
local idem_ttl = tonumber(ARGV[6])
local delay = tonumber(ARGV[9])
local plain = ARGV[10] == '1'
local from_epoch = tonumber(ARGV[11])
local occurrence, occ_gap = KEYS[10], tonumber(ARGV[12])

-- Two beat processes (a deploy mistake) send each occurrence of an entry once each; the first
-- send within the gap wins and the second writes nothing. The marker expires by itself; one
-- with more time left than this send's gap was set under a longer period (the schedule was
-- changed) and is not this occurrence. A re-dispatch of an existing id (a retry) is never an
-- occurrence.
if occ_gap > 0 and redis.call('EXISTS', record) == 0 then
  local left = redis.call('PTTL', occurrence)
  if left > 0 and left <= occ_gap then return {5, redis.call('GET', occurrence)} end
end

-- A duplicate of a live or finished idempotent task returns that task: no admission is spent
-- on it and nothing is enqueued.
if idem_ttl > 0 then
  local m = redis.call('HMGET', idem, 't', 's', 'r')
  if m[1] then
    if m[2] == 'd' then return {2, m[1], 'done', m[3]} end
    return {2, m[1], 'queued', false}
  end
end

local prior = redis.call('HMGET', record, 's', 'ep')
local state = prior[1]
if state and from_epoch > 0 and (state ~= 'running' or tonumber(prior[2]) ~= from_epoch) then
  return {4, tonumber(prior[2]) or 0}
end

local now = now_ms()
-- A re-dispatch of a task already admitted (a retry of the running task) is not a new call.
if not state then
  local wait, position = window_admit(11, tonumber(ARGV[13]), 14, task_id, now)
  if wait > 0 then return {3, wait, position} end
end

if not state then
  redis.call('HSET', record, 'n', ARGV[2], 'q', queue, 'ep', 0, 'a', 1, 'k', 0,
    'mr', ARGV[5], 'dt', now, 'mq', queue)
  if plain then redis.call('HSET', record, 'pm', 1) end
else
  -- Re-dispatch (plain messages only reach here: a doorbell's id is always new). The epoch
  -- keeps growing, so a run of the old series can never commit into the new one (I3).
  if state == 'running' then
    close_attempt(record, 'redispatched', 'the running task published its own id again ' ..
      '(retry, replace or requeue)', now)
    redis.call('HINCRBY', record, 'a', 1)
  elseif state == 'done' or state == 'dead' then
    close_attempt(record, 'redispatched', 'dispatched again after it ended ' .. state, now)
    redis.call('HINCRBY', record, 'a', 1)
    redis.call('HDEL', record, 'r', 'dr', 'dx', 'dm', 'tb', 'dd', 'rp', 'rpc', 'ub', 'ho',
      'dup')
    redis.call('HSET', record, 'k', 0)
    redis.call('ZREM', dlq, task_id)
    redis.call('PERSIST', record)
    redis.call('PERSIST', envelope)
  end
  redis.call('HDEL', record, 'w', 'sq', 'du')
  redis.call('HSET', record, 'n', ARGV[2], 'q', queue, 'mq', queue)
  redis.call('ZREM', due, task_id)
  redis.call('DEL', scheduled)
end
redis.call('SET', envelope, ARGV[4])
if occ_gap > 0 then redis.call('SET', occurrence, task_id, 'PX', occ_gap) end
if ARGV[8] ~= '' then redis.call('HSET', record, 'tp', ARGV[8]) end
if idem_ttl > 0 then
  -- The marker names its owner; it has no TTL while the owner lives, because the owner's
  -- terminal transition (complete or dead-letter) always rewrites or releases it (I2, I5).
  redis.call('HSET', idem, 't', task_id, 's', 'r')
  redis.call('HSET', record, 'x', idem, 'it', idem_ttl)
end

if delay > 0 then
  -- Time lives in Redis: the task waits here, scored by its due time on the Redis clock, and
  -- no worker holds it in memory (a worker kill or a Redis restart loses nothing).
  local at = now + delay
  redis.call('HSET', record, 's', 'scheduled', 'du', at)
  redis.call('ZADD', due, at, task_id)
  redis.call('SET', scheduled, ARGV[7])
  return {1, 0}
end

local seq = redis.call('HINCRBY', qseq, queue, 1)
redis.call('HSET', record, 's', 'queued', 'sq', seq)
redis.call('ZADD', pending, seq, task_id)
if ARGV[7] ~= '' then
  redis.call('LPUSH', list, stamp_seq(ARGV[7], seq))
end
return {1, seq}
