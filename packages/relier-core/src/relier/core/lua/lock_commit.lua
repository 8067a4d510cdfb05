#!lua flags=allow-oom
-- lock_commit: record the result of an idempotency_lock block, if this holder still owns it.
--
-- KEYS[1] lock          the lock marker hash
-- ARGV[1] token         the holder's token
-- ARGV[2] result        the encoded result
-- ARGV[3] ttl_s         seconds the result is kept
-- Returns: 1 committed; 0 not held by this token any more

local f = redis.call('HMGET', KEYS[1], 's', 't')
if f[1] ~= 'r' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', 'd', 'r', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
