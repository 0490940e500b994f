-- Token budget of TokenBudget (engine/token_budget.rs, the same steps).
-- KEYS[1]  the bucket's HASH: s = period start (ms), u = tokens used, q = hold sequence,
--          h:<id> = '<tokens>:<expires at>' for each outstanding hold, r = tokens they hold,
--          m / x = the earliest / latest hold expiry (m may be early: it only triggers a scan)
-- ARGV[1]  op: 'c' check | 'r' record | 'v' reserve | 's' settle | 'l' release
-- ARGV[2]  max tokens per period
-- ARGV[3]  period in ms
-- ARGV[4]  hold lifetime in ms
-- ARGV[5]  now in ms, or -1 to use the server's clock
-- ARGV[6]  tokens: recorded, reserved, or actually used by a settled hold
-- ARGV[7]  hold id (settle, release)
-- Returns  {allowed 0|1, used, reserved, ms until the period ends (the period when none),
--           new hold id or '', new hold's expiry or 0}
local key = KEYS[1]
local op = ARGV[1]
local max = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local hold_ms = tonumber(ARGV[4])
local now = now_ms(ARGV[5])
local tokens = tonumber(ARGV[6])
local id = ARGV[7]

-- O(1) per call: the reserved total (r) and the earliest and latest hold expiries (m, x) are
-- kept as fields; the holds are scanned only once the earliest may have expired.
local f = redis.call('HMGET', key, 's', 'u', 'q', 'r', 'm', 'x')
local start, used, seq = tonumber(f[1]), tonumber(f[2]) or 0, tonumber(f[3]) or 0
local reserved, earliest, latest = tonumber(f[4]) or 0, tonumber(f[5]), tonumber(f[6])

-- A finished period starts over; expired holds stop counting.
if start and now >= start + period then
  redis.call('DEL', key)
  start, used, seq, reserved, earliest, latest = nil, 0, 0, 0, nil, nil
end
if earliest and earliest <= now then reserved, earliest = sweep_holds(key, now) end

local function begin()
  if not start then
    start = now
    redis.call('HSET', key, 's', int(start))
  end
end
local function drop(hid)
  local v = redis.call('HGET', key, 'h:' .. hid)
  if v then
    local t, e = string.match(v, '^(%d+):(%d+)$')
    -- An expired hold no longer counts (the scan above dropped it or will).
    if tonumber(e) > now then reserved = reserved - tonumber(t) end
    redis.call('HDEL', key, 'h:' .. hid)
    redis.call('HSET', key, 'r', int(reserved))
  end
end

local allowed, new_id, new_exp = false, '', 0
if op == 'c' then
  allowed = used + reserved < max
elseif op == 'r' then
  begin()
  used = used + tokens
  redis.call('HSET', key, 'u', int(used))
  allowed = used + reserved <= max
elseif op == 'v' then
  if used + reserved + tokens <= max then
    begin()
    seq = seq + 1
    new_id = int(start) .. '-' .. int(seq)
    new_exp = now + hold_ms
    reserved = reserved + tokens
    if not earliest or new_exp < earliest then earliest = new_exp end
    if not latest or new_exp > latest then latest = new_exp end
    redis.call('HSET', key, 'q', int(seq), 'h:' .. new_id, int(tokens) .. ':' .. int(new_exp),
      'r', int(reserved), 'm', int(earliest), 'x', int(latest))
    allowed = true
  end
elseif op == 's' then
  drop(id)
  begin()
  used = used + tokens
  redis.call('HSET', key, 'u', int(used))
  allowed = used + reserved <= max
elseif op == 'l' then
  drop(id)
  allowed = used + reserved < max
end

-- Keep the key until its period ends or its last hold expires, whichever is later.
if start then
  local until_ms = start + period
  if latest and latest > until_ms then until_ms = latest end
  redis.call('PEXPIRE', key, math.max(1, until_ms - now))
end

local reset = period
if start then reset = math.max(1, start + period - now) end
return {allowed and 1 or 0, used, reserved, reset, new_id, new_exp}
