-- Close the record's current attempt: append one JSON line to its history field 'h'
-- (attempt, worker, start, end, outcome, cause). History is what `rl tasks show` and the
-- dead-letter entry print; it is bounded by the number of attempts.
local function close_attempt(record, outcome, cause, now)
  local f = redis.call('HMGET', record, 'a', 'w', 'ts', 'h')
  local entry = cjson.encode({
    a = tonumber(f[1]) or 0, w = f[2] or '', ts = tonumber(f[3]) or 0,
    te = now, o = outcome, c = cause,
  })
  redis.call('HSET', record, 'h', (f[4] or '') .. entry .. '\n', 'te', now)
end
