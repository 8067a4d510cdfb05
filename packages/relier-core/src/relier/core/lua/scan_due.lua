#!lua flags=no-writes
-- scan_due: list the members of a deadline index whose deadline has passed, on Redis's clock.
--
-- Work is O(log n + due): the resurrector never scans live entries (I6).
--
-- KEYS[1] index         a zset scored by deadline in ms (worker leases)
-- ARGV[1] limit         most members returned
-- Returns: {now_ms, next_deadline_ms|-1, member...}
--@include clock

local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local nxt = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local out = {now, tonumber(nxt[2]) or -1}
for i = 1, #due do out[#out + 1] = due[i] end
return out
