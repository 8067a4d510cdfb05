#!lua
-- lock_acquire: enter an idempotency_lock block, or learn that it already ran or is running.
--
-- KEYS[1] lock          the lock marker hash
-- ARGV[1] token         random token of this holder
-- ARGV[2] ttl_ms        in-flight TTL; the holder renews it while the block runs
-- Returns: {0} acquired; {1} held by another live holder; {2, result} already committed

local f = redis.call('HMGET', KEYS[1], 's', 'r')
if f[1] == 'd' then return {2, f[2]} end
if f[1] == 'r' then return {1} end
redis.call('HSET', KEYS[1], 's', 'r', 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return {0}
