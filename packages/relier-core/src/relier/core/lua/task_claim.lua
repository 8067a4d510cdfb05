#!lua flags=allow-oom
-- task_claim: open a new incarnation of a task for a worker (I3) or say why not.
--
-- Every run, the first included, passes here. The claim is what makes every duplicate
-- delivery harmless (kombu's visibility restore, a Celery requeue, a repeated re-publish):
-- only a 'queued' record can be claimed, and claiming it bumps the epoch that fences every
-- later write of the run.
--
-- KEYS[1] record        the task record hash
-- KEYS[2] envelope      the task's envelope string
-- KEYS[3] pending       unclaimed-task index of the queue the message came from
-- KEYS[4] worker_tasks  the claiming worker's set of running tasks
-- KEYS[5] workers       worker leases
-- KEYS[6] qclaimed      highest claimed sequence per queue
-- KEYS[7] idem          the idempotency marker the caller expects the record to name. Only
--                       the record's own key (field 'x') is ever read or written: a KEYS[7]
--                       that differs gets reply 4 and nothing is touched. Ignored when the
--                       record has no key, except on adoption with ARGV[7] > 0 (then the
--                       caller derived it from the adopted message's own arguments).
-- ARGV[1] task_id
-- ARGV[2] worker_id
-- ARGV[3] queue         the queue the message was delivered from
-- ARGV[4] adopt         a sealed envelope to adopt a plain Celery message; '' otherwise
-- ARGV[5] adopt_name    task name of the delivered message (Celery's unsigned 'task'
--                       header): names the adopted task, and for an existing record must be
--                       the record's own name ('' skips the check)
-- ARGV[6] adopt_max_res max_resurrections of the adopted message
-- ARGV[7] adopt_idem_ttl idempotency TTL of the adopted message (0: not idempotent)
-- ARGV[8] result_ttl    seconds a record resolved here (idempotent duplicate) stays readable
-- ARGV[9] message_seq   the broker sequence stamped in the delivered message ('' if none)
-- ARGV[10] adopt_plain  1 when the adopted envelope is a sealed plain Celery message (a task
--                       that is not an @rl_task, sent by a producer without Relier installed)
-- Returns:
--   {1, epoch, attempt, resurrections, max_res, envelope, checkpoint, name, queue, dispatched_at,
--    idem_key, idem_ttl}                   claimed
--   {0, state, owner}                      duplicate delivery: drop it without running
--   {-1}                                   no record and nothing to adopt
--   {-2}                                   the worker holds no live lease: refuse to run
--   {3, other_task_id, result|false}       another task owns the idempotency key; this one
--                                          is recorded as its duplicate and must not run
--   {4, idem_key}                          KEYS[7] is not the record's idempotency key:
--                                          nothing was written; call again with idem_key
--   {5, record_name}                       the message names another task than the record:
--                                          a forged or misrouted message, nothing written
--@include clock

local record, envelope, pending, wtasks, workers, qclaimed, idem =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local task_id, worker_id, queue = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()

-- A worker whose lease lapsed has had its tasks taken away; it must not start new work that
-- nobody would resurrect if it died.
local lease = redis.call('ZSCORE', workers, worker_id)
if not lease or tonumber(lease) < now then return {-2} end

local state = redis.call('HGET', record, 's')
-- The message's task name is an unsigned header. A message carrying this record's id under
-- another task's name is not this record's message (Relier publishes every doorbell with the
-- record's own name): it must neither consume the record's incarnation (the envelope check
-- would then dead-letter a valid task) nor move any watermark.
if state and ARGV[5] ~= '' then
  local own = redis.call('HGET', record, 'n')
  if own and own ~= ARGV[5] then return {5, own} end
end
if not state then
  if ARGV[4] == '' then return {-1} end
  -- A plain Celery message (.delay()) becomes a tracked task from its pickup on.
  redis.call('HSET', record,
    'n', ARGV[5], 'q', queue, 's', 'queued', 'ep', 0, 'a', 1, 'k', 0,
    'mr', ARGV[6], 'dt', now, 'mq', queue, 'lg', 1)
  if ARGV[10] == '1' then redis.call('HSET', record, 'pm', 1) end
  redis.call('SET', envelope, ARGV[4])
  if tonumber(ARGV[7]) > 0 then
    redis.call('HSET', record, 'x', idem, 'it', ARGV[7])
  end
  state = 'queued'
end
if state ~= 'queued' then
  return {0, state, redis.call('HGET', record, 'w') or ''}
end

local f = redis.call('HMGET', record, 'x', 'it', 'sq', 'mq')
local idem_key, idem_ttl, seq, mq = f[1], f[2], f[3], f[4]
-- The idempotency key comes from the record (written at dispatch from the signed call), never
-- from the message: its headers are unsigned, so a forged 'rl_idem' could otherwise make this
-- claim write into another task's record or adopt another call's committed result. KEYS[7]
-- only declares the key (Redis Cluster needs every key declared); when it is not the record's
-- own, nothing is touched and the caller retries with the key named in the reply (one more
-- round trip, only for a forged or missing header).
if idem_key and idem_key ~= idem then return {4, idem_key} end

-- Broker lists are FIFO: once the message a record waits for (sequence 'sq' on queue 'mq') is
-- claimed, every earlier message of that queue has left the list. The resurrector uses this
-- watermark to find lost messages. Only that very message may move it: a stale duplicate (an
-- older publication of the same task, a replayed message) was pushed long before, and taking
-- the record's latest sequence for it would push the watermark past the whole backlog.
local function advance_watermark()
  if seq and mq == queue and ARGV[9] == seq then
    local claimed = tonumber(redis.call('HGET', qclaimed, queue) or 0)
    if tonumber(seq) > claimed then redis.call('HSET', qclaimed, queue, seq) end
  end
end

if idem_key then
  local owner = redis.call('HMGET', idem, 't', 's', 'r')
  -- The key committed by this very task id: its record expired (result TTL shorter than the
  -- idempotency TTL) and a replayed or twice-published plain message adopted it again. The
  -- body already ran once: resolve to the committed result like any duplicate (I5).
  local own_commit = owner[1] == task_id and owner[2] == 'd'
  if owner[1] and (owner[1] ~= task_id or own_commit) then
    -- Same key, different task: never run the body twice (I5). This record resolves to the
    -- owner's result instead, and expires like any completed record (task_complete).
    redis.call('HSET', record, 's', 'done', 'te', now)
    if not own_commit then redis.call('HSET', record, 'dup', owner[1]) end
    if owner[2] == 'd' then redis.call('HSET', record, 'r', owner[3]) end
    redis.call('ZREM', pending, task_id)
    redis.call('EXPIRE', record, tonumber(ARGV[8]))
    redis.call('EXPIRE', envelope, tonumber(ARGV[8]))
    advance_watermark()
    return {3, owner[1], owner[2] == 'd' and owner[3] or false}
  elseif not owner[1] then
    redis.call('HSET', idem, 't', task_id, 's', 'r')
  end
end

local epoch = redis.call('HINCRBY', record, 'ep', 1)
redis.call('HSET', record, 's', 'running', 'w', worker_id, 'ts', now)
-- 'rp' counts re-publications over the task's life. A claim proves messages arrive, so the
-- NeverClaimed limit counts only those since the last claim ('rpc' = 'rp' at that claim);
-- otherwise hand-offs (drain, child death) would drift a healthy task into the DLQ.
local rp = redis.call('HGET', record, 'rp')
if rp then redis.call('HSET', record, 'rpc', rp) end
-- Bounces (a worker lacking the task put it back for a busy one that has it) count since the
-- last claim too: the busy worker freed up, so a later bounce starts a new wait.
redis.call('HDEL', record, 'ub')
redis.call('ZREM', pending, task_id)
redis.call('SADD', wtasks, task_id)
advance_watermark()
local r = redis.call('HMGET', record, 'a', 'k', 'mr', 'ck', 'n', 'q', 'dt')
return {1, epoch, tonumber(r[1]), tonumber(r[2]), tonumber(r[3]),
        redis.call('GET', envelope) or '', r[4] or '', r[5], r[6], tonumber(r[7]),
        idem_key or '', tonumber(idem_ttl) or 0}
