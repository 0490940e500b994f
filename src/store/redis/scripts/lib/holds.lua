-- Holds on an amount (TokenBudget's tokens, CostTracker's nano-dollars): a HASH keeps one field
-- h:<id> = '<amount>:<expires at>' per outstanding hold, r = the amount they hold and m = the
-- earliest expiry (m may be early: it only triggers a scan). A call reads r and m in O(1) and
-- scans the holds only once the earliest may have expired.

-- Drops the holds of `key` that expired by `now` and rewrites r and m; returns the amount the
-- live holds keep and their earliest expiry (nil when none is left).
local function sweep_holds(key, now)
  local flat = redis.call('HGETALL', key)
  local dead = {}
  local reserved, earliest = 0, nil
  for i = 1, #flat, 2 do
    local name = flat[i]
    if string.sub(name, 1, 2) == 'h:' then
      local n, e = string.match(flat[i + 1], '^(%d+):(%d+)$')
      n, e = tonumber(n), tonumber(e)
      if e <= now then
        dead[#dead + 1] = name
      else
        reserved = reserved + n
        if not earliest or e < earliest then earliest = e end
      end
    end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  redis.call('HSET', key, 'r', int(reserved))
  if earliest then redis.call('HSET', key, 'm', int(earliest)) else redis.call('HDEL', key, 'm') end
  return reserved, earliest
end
