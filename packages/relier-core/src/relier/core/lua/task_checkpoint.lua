#!lua
-- task_checkpoint: store a run's checkpoint, fenced on its epoch (I3).
--
-- KEYS[1] record        the task record hash
-- ARGV[1] epoch         the epoch the run received at claim
-- ARGV[2] checkpoint    encoded checkpoint (inline data or a filesystem reference)
-- Returns: {1, replaced} stored, with the checkpoint it replaced ('' when none), so that the
--          writer removes exactly the file nobody references any more (read and replaced in
--          one step: two writers can never both remove, or both keep, the same file);
--          {0} fenced (a newer incarnation owns the task, nothing written)

local f = redis.call('HMGET', KEYS[1], 's', 'ep', 'ck')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then return {0} end
redis.call('HSET', KEYS[1], 'ck', ARGV[2])
return {1, f[3] or ''}
