-- Sliding-window log of RateLimiter (engine/sliding_window.rs, the same steps).
-- KEYS[1]  the limiter's LIST of counted timestamps in ms, oldest first, at most max long
-- ARGV[1]  op: 'c' check | 'r' record (always counts) | 'x' consume (counts only if it fits)
-- ARGV[2]  max requests in the window
-- ARGV[3]  window in ms
-- ARGV[4]  now in ms, or -1 to use the server's clock
-- Returns  {allowed 0|1, remaining, ms until remaining next grows (the window when empty)}
local key = KEYS[1]
local op = ARGV[1]
local max = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Drop what left the window (each entry is popped once: amortised O(1)).
local n = redis.call('LLEN', key)
while n > 0 and tonumber(redis.call('LINDEX', key, 0)) + window <= now do
  redis.call('LPOP', key)
  n = n - 1
end

local allowed = n < max
if op == 'r' or (op == 'x' and allowed) then
  local at = now
  if n > 0 then
    at = math.max(at, tonumber(redis.call('LINDEX', key, -1)))
  end
  n = redis.call('RPUSH', key, string.format('%d', at))
  if n > max then
    redis.call('LTRIM', key, n - max, -1)
    n = max
  end
  -- The key lives exactly as long as its newest entry stays in the window.
  redis.call('PEXPIRE', key, at + window - now)
end

local reset = window
if n > 0 then
  reset = math.max(1, tonumber(redis.call('LINDEX', key, 0)) + window - now)
end
return {allowed and 1 or 0, max - math.min(n, max), reset}
