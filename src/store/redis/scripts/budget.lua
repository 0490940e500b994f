-- Token budget of TokenBudget (engine/token_budget.rs, the same steps).
-- KEYS[1]  the bucket's HASH: s = period start (ms), u = tokens used, q = hold sequence,
--          h:<id> = '<tokens>:<expires at>' for each outstanding hold
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
local now = tonumber(ARGV[5])
local tokens = tonumber(ARGV[6])
local id = ARGV[7]
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(x) return string.format('%d', x) end

local start, used, seq, holds = nil, 0, 0, {}
local flat = redis.call('HGETALL', key)
for i = 1, #flat, 2 do
  local f, v = flat[i], flat[i + 1]
  if f == 's' then start = tonumber(v)
  elseif f == 'u' then used = tonumber(v)
  elseif f == 'q' then seq = tonumber(v)
  else
    local t, e = string.match(v, '^(%d+):(%d+)$')
    holds[string.sub(f, 3)] = {tonumber(t), tonumber(e)}
  end
end

-- A finished period starts over; expired holds stop counting.
if start and now >= start + period then
  redis.call('DEL', key)
  start, used, seq, holds = nil, 0, 0, {}
end
local reserved, dead = 0, {}
for hid, h in pairs(holds) do
  if h[2] <= now then
    dead[#dead + 1] = 'h:' .. hid
    holds[hid] = nil
  else
    reserved = reserved + h[1]
  end
end
if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end

local function begin()
  if not start then
    start = now
    redis.call('HSET', key, 's', int(start))
  end
end
local function drop(hid)
  local h = holds[hid]
  if h then
    reserved = reserved - h[1]
    holds[hid] = nil
    redis.call('HDEL', key, 'h:' .. hid)
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
    holds[new_id] = {tokens, new_exp}
    reserved = reserved + tokens
    redis.call('HSET', key, 'q', int(seq), 'h:' .. new_id, int(tokens) .. ':' .. int(new_exp))
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
  for _, h in pairs(holds) do until_ms = math.max(until_ms, h[2]) end
  redis.call('PEXPIRE', key, math.max(1, until_ms - now))
end

local reset = period
if start then reset = math.max(1, start + period - now) end
return {allowed and 1 or 0, used, reserved, reset, new_id, new_exp}
