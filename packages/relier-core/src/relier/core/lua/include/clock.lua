-- The Redis server's clock in milliseconds. Every deadline Relier stores is on this one clock,
-- so workers, resurrectors and producers on hosts with skewed clocks still agree. (Redis 7
-- replicates script effects, so calling TIME inside a script is safe.)
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
