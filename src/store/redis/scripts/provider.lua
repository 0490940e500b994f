-- ProviderLimiter (engine/provider_limit.rs, the same steps), the multi-worker key reference's key layout.
-- KEYS[1]  HASH <prefix><provider>:<scope>: points = points left, expire = period end (ms);
--          the key expires with its period, so a new period starts full (the refill)
-- ARGV[1]  points per period   ARGV[2] period in ms   ARGV[3] now in ms, or -1 (server clock)
-- ARGV[4]  points to take (0 = only look)
-- Returns  {allowed 0|1, points left, ms until the period ends when refused (else 0), end}
local key = KEYS[1]
local points, duration, now, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), now_ms(ARGV[3]), tonumber(ARGV[4])
local left, expire = nil, nil
local h = redis.call('HMGET', key, 'points', 'expire')
if h[1] and h[2] and tonumber(h[2]) > now then
  left, expire = tonumber(h[1]), tonumber(h[2])
else
  left, expire = points, now + duration
  redis.call('HSET', key, 'points', left, 'expire', string.format('%d', expire))
  redis.call('PEXPIRE', key, duration)
end
local allowed = left >= cost and (cost > 0 or left > 0)
if allowed and cost > 0 then
  left = redis.call('HINCRBY', key, 'points', -cost)
end
local retry = 0
if not allowed then retry = expire - now end
return {allowed and 1 or 0, left, retry, expire}
