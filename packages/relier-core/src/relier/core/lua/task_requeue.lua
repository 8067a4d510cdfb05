#!lua flags=allow-oom
-- task_requeue: take a running task away from its worker and queue it again, or dead-letter
-- it when it has died too often.
--
-- Used by the resurrector (the worker's lease expired), by a worker's parent process (a pool
-- child died under the task) and by drain (hand-off at the shutdown deadline). It is a
-- compare-and-set on the owner, so replicas and repeated calls are harmless: only the first
-- call for an incarnation acts. The broker message is pushed in the same step, so a crash of
-- the caller can never leave the task neither running nor queued.
--
-- KEYS[1] record        the task record hash
-- KEYS[2] worker_tasks  the old owner's set of running tasks
-- KEYS[3] pending       unclaimed-task index of the target queue
-- KEYS[4] qseq          last broker sequence per queue
-- KEYS[5] queue_list    kombu's list of the target queue (written only when ARGV[6] is set)
-- KEYS[6] dlq           dead-letter index
-- KEYS[7] idem          idempotency marker (released on dead-lettering)
-- KEYS[8] workers       worker leases (kind lease_expired acts only on an expired lease)
-- ARGV[1] task_id
-- ARGV[2] owner         the worker id that must still own the task
-- ARGV[3] kind          killed | lease_expired | handoff (hand-offs do not count as deaths)
-- ARGV[4] cause         what happened, for the history (signal, exit code, lease expiry)
-- ARGV[5] queue         the target queue (re-queue)
-- ARGV[6] message       the kombu message; '' when the broker is another server (its
--                       "rl_seq":0 header is stamped with the new sequence)
-- ARGV[7] max_handoffs  hand-offs allowed per task (RELIER_MAX_HANDOFFS)
-- ARGV[8] epoch         the incarnation to end; 0: whichever runs under the owner
-- Returns: {1, seq} re-queued; {2} dead-lettered (max_resurrections_exceeded or
--          max_handoffs_exceeded);
--          {0} the owner no longer holds the task, another incarnation than ARGV[8] runs,
--              or (lease_expired) the owner's lease is live (nothing written)
--@include clock
--@include history
--@include message

local record, wtasks, pending, qseq, list, dlq, idem, workers =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local task_id, owner, kind, queue = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local now = now_ms()

-- The resurrector decides from a scan made earlier; meanwhile the owner may have registered
-- again and claimed this task under a fresh lease. The deadline is checked again here, in the
-- same atomic step as the take-over, so a live owner never loses a task it is running (I3).
-- Same boundary as scan_due: a deadline at or before now is expired.
if kind == 'lease_expired' then
  local deadline = redis.call('ZSCORE', workers, owner)
  if deadline and tonumber(deadline) > now then return {0} end
end

local f = redis.call('HMGET', record, 's', 'w', 'k', 'mr', 'ep')
if f[1] ~= 'running' or f[2] ~= owner then
  redis.call('SREM', wtasks, task_id)
  return {0}
end
-- Every pool child claims under its parent's lease id, so the owner alone does not name a
-- run: one child death is reported twice (the parent's child watch, then Celery's
-- WorkerLostError), and a sibling child may have claimed the next run in between. A release
-- naming the epoch of the run that died leaves that next run alone (and in the owner's set).
local expected = tonumber(ARGV[8]) or 0
if expected > 0 and tonumber(f[5]) ~= expected then return {0} end

close_attempt(record, kind, ARGV[4], now)
redis.call('SREM', wtasks, task_id)
redis.call('HDEL', record, 'w')
local resurrections = tonumber(f[3])
local dr, dx, dm
if kind == 'handoff' then
  -- A hand-off is not a death, but it is counted here, for every caller (drain, a run
  -- interrupted by shutdown), so that a task interrupted on every run still ends.
  local handoffs = redis.call('HINCRBY', record, 'ho', 1)
  if handoffs > tonumber(ARGV[7]) then
    dr, dx = 'max_handoffs_exceeded', 'relier.core.exceptions.MaxHandoffsExceededError'
    dm = 'handed off ' .. handoffs .. ' times (RELIER_MAX_HANDOFFS=' .. ARGV[7] .. ')'
  end
else
  resurrections = redis.call('HINCRBY', record, 'k', 1)
end
if not dr and resurrections > tonumber(f[4]) then
  dr, dx = 'max_resurrections_exceeded', 'relier.core.exceptions.MaxResurrectionsExceededError'
  dm = 'lost its worker ' .. resurrections .. ' times (max_resurrections=' .. f[4] .. ')'
end
if dr then
  redis.call('HSET', record, 's', 'dead', 'dr', dr, 'dx', dx, 'dm', dm, 'tb', '', 'dd', now)
  redis.call('ZADD', dlq, now, task_id)
  if redis.call('HGET', idem, 't') == task_id then redis.call('DEL', idem) end
  return {2}
end

local seq = redis.call('HINCRBY', qseq, queue, 1)
redis.call('HINCRBY', record, 'a', 1)
redis.call('HSET', record, 's', 'queued', 'sq', seq, 'mq', queue)
redis.call('ZADD', pending, seq, task_id)
if ARGV[6] ~= '' then redis.call('LPUSH', list, stamp_seq(ARGV[6], seq)) end
return {1, seq}
