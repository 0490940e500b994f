-- Spend ledger of CostTracker (engine/spend.rs, the same steps), on the day's and the month's
-- buckets of the caller's calendar. Amounts are integers of nano-dollars.
-- KEYS[1]  the day's HASH: s = spent, q = hold sequence, h:<id> = '<nano>:<expires at>',
--          a:<threshold> = 1 once that alert threshold fired
-- KEYS[2]  the day's spend per tag (HASH tag -> nano)
-- KEYS[3]  the month's HASH (as KEYS[1], without q)
-- KEYS[4]  the month's spend per tag
-- ARGV[1]  op: 'c' check | 't' check with tag totals | 'r' record | 'v' reserve | 's' settle
--          | 'l' release
-- ARGV[2]  now in ms
-- ARGV[3]  when the day ends (ms); ARGV[4] when the month ends
-- ARGV[5]  daily budget, or -1 for none; ARGV[6] monthly budget, or -1
-- ARGV[7]  hold lifetime in ms
-- ARGV[8]  amount: recorded, reserved, or the real cost of a settled hold
-- ARGV[9]  hold id (settle, release), or the day's label (reserve: new ids are '<day>#<n>')
-- ARGV[10] alert thresholds, comma-separated fractions ('' for none)
-- ARGV[11..] tags the amount is also counted under (record, settle)
-- Returns  {allowed 0|1, day spent, day reserved, month spent, month reserved, new hold id or
--           '', new hold's expiry or 0, {alerts: 'd'|'m', threshold, ...},
--           {day tags: tag, nano, ...}, {month tags ...}}
local op = ARGV[1]
local now = tonumber(ARGV[2])
local ends = {tonumber(ARGV[3]), tonumber(ARGV[4])}
local budgets = {tonumber(ARGV[5]), tonumber(ARGV[6])}
local hold_ms = tonumber(ARGV[7])
local amount = tonumber(ARGV[8])
local id = ARGV[9]
local thresholds = {}
for t in string.gmatch(ARGV[10], '[^,]+') do thresholds[#thresholds + 1] = t end
local function int(x) return string.format('%d', x) end

-- Load both buckets; expired holds stop counting.
local buckets = {}
for i, key in ipairs({KEYS[1], KEYS[3]}) do
  local b = {key = key, spent = 0, seq = 0, holds = {}, alerted = {}, reserved = 0}
  local flat = redis.call('HGETALL', key)
  local dead = {}
  for j = 1, #flat, 2 do
    local f, v = flat[j], flat[j + 1]
    if f == 's' then b.spent = tonumber(v)
    elseif f == 'q' then b.seq = tonumber(v)
    elseif string.sub(f, 1, 2) == 'a:' then b.alerted[string.sub(f, 3)] = true
    elseif string.sub(f, 1, 2) == 'h:' then
      local n, e = string.match(v, '^(%d+):(%d+)$')
      n, e = tonumber(n), tonumber(e)
      if e <= now then dead[#dead + 1] = f
      else
        b.holds[string.sub(f, 3)] = {n, e}
        b.reserved = b.reserved + n
      end
    end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  buckets[i] = b
end
local day, month = buckets[1], buckets[2]

local function fits(extra, strict)
  for i, b in ipairs(buckets) do
    local budget = budgets[i]
    if budget >= 0 then
      local total = b.spent + b.reserved + extra
      if strict and total >= budget then return false end
      if not strict and total > budget then return false end
    end
  end
  return true
end
local function drop(hid)
  for _, b in ipairs(buckets) do
    local h = b.holds[hid]
    if h then
      b.reserved = b.reserved - h[1]
      b.holds[hid] = nil
      redis.call('HDEL', b.key, 'h:' .. hid)
    end
  end
end

local allowed, new_id, new_exp, alerts = false, '', 0, {}
if op == 'c' or op == 't' then
  allowed = fits(0, true)
elseif op == 'v' then
  allowed = fits(amount, false)
  if allowed then
    day.seq = day.seq + 1
    new_id = id .. '#' .. int(day.seq)
    new_exp = now + hold_ms
    local hold = int(amount) .. ':' .. int(new_exp)
    redis.call('HSET', day.key, 'q', int(day.seq), 'h:' .. new_id, hold)
    redis.call('HSET', month.key, 'h:' .. new_id, hold)
    for _, b in ipairs(buckets) do
      b.reserved = b.reserved + amount
      b.holds[new_id] = {amount, new_exp}
    end
  end
elseif op == 'r' or op == 's' then
  if op == 's' then drop(id) end
  for i, b in ipairs(buckets) do
    b.spent = b.spent + amount
    redis.call('HSET', b.key, 's', int(b.spent))
    for t = 11, #ARGV do redis.call('HINCRBY', KEYS[2 * i], ARGV[t], amount) end
    if budgets[i] >= 0 then
      for _, t in ipairs(thresholds) do
        if not b.alerted[t] and b.spent > budgets[i] * tonumber(t) then
          b.alerted[t] = true
          redis.call('HSET', b.key, 'a:' .. t, 1)
          alerts[#alerts + 1] = (i == 1) and 'd' or 'm'
          alerts[#alerts + 1] = t
        end
      end
    end
  end
  allowed = fits(0, false)
elseif op == 'l' then
  drop(id)
  allowed = fits(0, true)
end

-- Keep each bucket until its period ends or its last hold expires, whichever is later.
for i, b in ipairs(buckets) do
  local until_ms = ends[i]
  for _, h in pairs(b.holds) do
    if h[2] > until_ms then until_ms = h[2] end
  end
  redis.call('PEXPIRE', b.key, math.max(1, until_ms - now))
  redis.call('PEXPIRE', KEYS[2 * i], math.max(1, ends[i] - now))
end

local day_tags, month_tags = {}, {}
if op == 't' then
  day_tags = redis.call('HGETALL', KEYS[2])
  month_tags = redis.call('HGETALL', KEYS[4])
end
return {allowed and 1 or 0, day.spent, day.reserved, month.spent, month.reserved, new_id, new_exp,
  alerts, day_tags, month_tags}
