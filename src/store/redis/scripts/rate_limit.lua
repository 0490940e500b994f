-- Sliding-window log of RateLimiter (engine/sliding_window.rs, the same steps), for one or
-- more decisions sent together. Decisions run in order, each as if alone.
-- KEYS[i]        the LIST of counted timestamps (ms, oldest first, at most max long) of
--                decision i
-- ARGV[1]        max requests in the window
-- ARGV[2]        window in ms
-- ARGV[1 + 2i]   op of decision i: 'c' check | 'r' record (always counts) | 'x' consume
--                (counts only if it fits)
-- ARGV[2 + 2i]   now of decision i in ms, or -1 to use the server's clock
-- Returns        {allowed 0|1, remaining, ms until remaining next grows (the window when
--                nothing is counted)} for each decision, flattened
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local server_now
local out = {}
for i, key in ipairs(KEYS) do
  local op = ARGV[1 + 2 * i]
  local now = tonumber(ARGV[2 + 2 * i])
  local client_clock = now >= 0
  if not client_clock then
    -- One TIME for all the decisions of a batch that use the server's clock.
    server_now = server_now or now_ms(-1)
    now = server_now
  end

  -- Drop what left the window (each entry is popped once: amortised O(1)).
  local oldest = tonumber(redis.call('LINDEX', key, 0))
  while oldest and oldest + window <= now do
    redis.call('LPOP', key)
    oldest = tonumber(redis.call('LINDEX', key, 0))
  end

  local n, allowed
  if op == 'c' then
    n = redis.call('LLEN', key)
    allowed = n < max
  else
    -- Count first, then look: RPUSH returns the new length, so a fitting request costs no
    -- extra command, and a refused consume takes its entry back.
    local at = now
    if client_clock and oldest then
      -- Callers' clocks may disagree a little: never append before the newest entry. (The
      -- server's clock does not go backwards, so it needs no such check.)
      at = math.max(at, tonumber(redis.call('LINDEX', key, -1)))
    end
    n = redis.call('RPUSH', key, string.format('%d', at))
    allowed = n - 1 < max
    if op == 'x' and not allowed then
      redis.call('RPOP', key)
      n = n - 1
    else
      if n > max then
        redis.call('LTRIM', key, n - max, -1)
        n = max
        oldest = tonumber(redis.call('LINDEX', key, 0))
      end
      oldest = oldest or at
      -- The key lives exactly as long as its newest entry stays in the window.
      redis.call('PEXPIRE', key, at + window - now)
    end
  end

  local reset = window
  if n > 0 then
    reset = math.max(1, oldest + window - now)
  end
  out[#out + 1] = allowed and 1 or 0
  out[#out + 1] = max - math.min(n, max)
  out[#out + 1] = reset
end
return out
