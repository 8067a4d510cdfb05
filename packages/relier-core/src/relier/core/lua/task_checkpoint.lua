#!lua
-- task_checkpoint: store a run's checkpoint, fenced on its epoch (I3).
--
-- KEYS[1] record        the task record hash
-- ARGV[1] epoch         the epoch the run received at claim
-- ARGV[2] checkpoint    encoded checkpoint (inline data or a filesystem reference)
-- Returns: 1 stored; 0 fenced (a newer incarnation owns the task, nothing written)

local f = redis.call('HMGET', KEYS[1], 's', 'ep')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'ck', ARGV[2])
return 1
