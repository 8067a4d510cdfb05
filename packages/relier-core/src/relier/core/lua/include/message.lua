-- Stamp a doorbell message with the broker sequence this publication gets. The message is
-- built before the sequence exists (it is taken in the script), so it carries the placeholder
-- header "rl_seq":0, replaced here in the same atomic step as the HINCRBY. The claim compares
-- the stamped sequence with the record's 'sq' to know whether the message it got is the one
-- the record waits for (only that one may move the queue's claimed watermark).
-- relier.phoenix.broker.stamp_seq does the same in Python for a separate broker.
-- JSON escapes every quote inside string values, so the pattern can only match the header.
local function stamp_seq(message, seq)
  local stamped = string.gsub(message, '"rl_seq":0([,}])', '"rl_seq":' .. seq .. '%1', 1)
  return stamped
end
