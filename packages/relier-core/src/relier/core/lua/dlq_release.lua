#!lua
-- dlq_release: send a dead-lettered task back to its own queue for a fresh start.
--
-- The fencing state restarts cleanly (the next claim opens a new epoch; the death count
-- returns to 0, and so do the hand-off and re-publication counts) while the history of every
-- earlier attempt is kept. The task goes back to the queue it was dispatched to, never to
-- re-queue.
--
-- KEYS[1] record        the task record hash
-- KEYS[2] dlq           dead-letter index
-- KEYS[3] pending       unclaimed-task index of the task's queue
-- KEYS[4] qseq          last broker sequence per queue
-- KEYS[5] queue_list    kombu's list of the task's queue (written only when ARGV[2] is set)
-- KEYS[6] idem          idempotency marker (taken again when free)
-- ARGV[1] task_id
-- ARGV[2] message       the kombu message; '' when the broker is another server (its
--                       "rl_seq":0 header is stamped with the new sequence)
-- Returns: {1, seq} released; {0} not in the dead-letter queue
--@include clock
--@include message

local record, dlq, pending, qseq, list, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local task_id = ARGV[1]
local f = redis.call('HMGET', record, 's', 'q', 'x', 'h', 'a')
if f[1] ~= 'dead' then return {0} end

local now = now_ms()
local entry = cjson.encode({a = tonumber(f[5]) or 0, w = '', ts = now, te = now, o = 'released', c = ''})
redis.call('HSET', record, 'h', (f[4] or '') .. entry .. '\n')
redis.call('HDEL', record, 'dr', 'dx', 'dm', 'tb', 'dd', 'w', 'rp', 'rpc', 'ub', 'ho')
local seq = redis.call('HINCRBY', qseq, f[2], 1)
redis.call('HINCRBY', record, 'a', 1)
redis.call('HSET', record, 's', 'queued', 'k', 0, 'sq', seq, 'mq', f[2])
redis.call('ZREM', dlq, task_id)
redis.call('ZADD', pending, seq, task_id)
if f[3] and not redis.call('HGET', idem, 't') then
  redis.call('HSET', idem, 't', task_id, 's', 'r')
end
if ARGV[2] ~= '' then redis.call('LPUSH', list, stamp_seq(ARGV[2], seq)) end
return {1, seq}
