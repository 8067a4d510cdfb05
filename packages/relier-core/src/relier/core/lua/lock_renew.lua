#!lua flags=allow-oom
-- lock_renew: extend a held idempotency_lock so a long block cannot lose it to its TTL.
--
-- KEYS[1] lock          the lock marker hash
-- ARGV[1] token         the holder's token
-- ARGV[2] ttl_ms        new in-flight TTL
-- Returns: 1 renewed; 0 not held by this token any more

local f = redis.call('HMGET', KEYS[1], 's', 't')
if f[1] ~= 'r' or f[2] ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
