#!lua
-- admit: the admission check on its own, for web apps that use relier.admission without
-- dispatching (a FastAPI dependency guarding an endpoint, say). Dispatch does the same check
-- inside task_dispatch, in the same call as the ledger write.
--
-- KEYS[1..] scopes      one sliding-window zset per scope (ARGV[2] of them)
-- ARGV[1] member        a unique id of this call
-- ARGV[2] n_scopes      number of scopes
-- ARGV[3..] limits      (limit, window_ms) per scope
-- Returns: {0, 0} admitted; {retry_after_ms, scope_position} refused
--@include clock
--@include window

local wait, position = window_admit(1, tonumber(ARGV[2]), 3, ARGV[1], now_ms())
return {wait, position}
