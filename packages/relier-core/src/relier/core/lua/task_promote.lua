#!lua flags=allow-oom
-- task_promote: move a scheduled task whose due time has come onto its queue.
--
-- The resurrector lists due members of the due index (scan_due) and calls this per task. The
-- ZREM is the compare-and-set: any number of resurrector replicas may race on one task and
-- exactly one promotes it (the others see 0 removed and do nothing).
--
-- KEYS[1] record        the task record hash
-- KEYS[2] due           scheduled tasks by due time
-- KEYS[3] scheduled     the message to push (string, written by task_dispatch)
-- KEYS[4] pending       unclaimed-task index of the task's queue
-- KEYS[5] qseq          last broker sequence per queue
-- KEYS[6] queue_list    kombu's list of the task's queue
-- ARGV[1] task_id
-- ARGV[2] queue         the task's queue (as the caller read it from the record)
-- ARGV[3] fused         1: push the message here; 0: the broker is another server, the
--                       caller pushes the returned message
-- Returns: {1, seq, message} promoted; {0} not due, already promoted, or not scheduled
--@include clock
--@include message

local record, due, scheduled, pending, qseq, list =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local task_id, queue = ARGV[1], ARGV[2]
local at = redis.call('ZSCORE', due, task_id)
if not at or tonumber(at) > now_ms() then return {0} end
local f = redis.call('HMGET', record, 's', 'q')
-- Read before anything is removed: a task re-dispatched to another queue since the caller
-- read the record keeps its new schedule (the caller reads it again on its next pass).
if f[1] == 'scheduled' and f[2] ~= queue then return {0} end
redis.call('ZREM', due, task_id)
local message = redis.call('GET', scheduled)
redis.call('DEL', scheduled)
if f[1] ~= 'scheduled' or not message then return {0} end

local seq = redis.call('HINCRBY', qseq, queue, 1)
redis.call('HSET', record, 's', 'queued', 'sq', seq, 'mq', queue)
redis.call('HDEL', record, 'du')
redis.call('ZADD', pending, seq, task_id)
local stamped = stamp_seq(message, seq)
if ARGV[3] == '1' then
  redis.call('LPUSH', list, stamped)
  return {1, seq, ''}
end
return {1, seq, stamped}
