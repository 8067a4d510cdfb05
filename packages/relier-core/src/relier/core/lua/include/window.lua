-- Sliding-window admission over n scopes: KEYS[first_key .. first_key+n-1] are zsets of the
-- calls admitted in the last window; ARGV[first_arg ..] holds (limit, window_ms) per scope.
-- Every scope must have room; only then is the call recorded in all of them, so a refused call
-- consumes no capacity anywhere. At most `limit` calls fall in any window of `window_ms`.
-- Returns 0, 0 when admitted, else the ms until the refusing scope has room, and its position.
local function window_admit(first_key, n, first_arg, member, now)
  for i = 0, n - 1 do
    local key = KEYS[first_key + i]
    local limit = tonumber(ARGV[first_arg + 2 * i])
    local window = tonumber(ARGV[first_arg + 2 * i + 1])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) >= limit then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      local wait = window
      if oldest[2] then wait = tonumber(oldest[2]) + window - now end
      return wait, i + 1
    end
  end
  for i = 0, n - 1 do
    local key = KEYS[first_key + i]
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, tonumber(ARGV[first_arg + 2 * i + 1]))
  end
  return 0, 0
end
