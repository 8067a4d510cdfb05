#!lua flags=allow-oom
-- lock_release: give up an idempotency_lock after the block raised, so a retry can run.
--
-- KEYS[1] lock          the lock marker hash
-- ARGV[1] token         the holder's token
-- Returns: 1 released; 0 not held by this token

local f = redis.call('HMGET', KEYS[1], 's', 't')
if f[1] ~= 'r' or f[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
