-- Spend ledger of CostTracker (engine/spend.rs, the same steps), on the day's and the month's
-- buckets of the caller's calendar, with the hour's bucket for history. Amounts are integers of
-- nano-dollars.
-- KEYS[1]  the day's HASH: s = spent, q = hold sequence, h:<id> = '<nano>:<expires at>',
--          r = nano held by live holds, m / x = earliest / latest hold expiry (m may be early: it
--          only triggers a scan), a:<threshold> = 1 once that alert threshold fired,
--          M:<model> = spent on that model
-- KEYS[2]  the day's spend per tag (HASH tag -> nano)
-- KEYS[3]  the month's HASH (as KEYS[1], without q)
-- KEYS[4]  the month's spend per tag
-- KEYS[5]  the hour's HASH: s = spent, M:<model> = spent on that model (written by record and
--          settle only)
-- ARGV[1]  op: 'c' check | 't' check with tag totals | 'r' record | 'v' reserve | 's' settle
--          | 'l' release
-- ARGV[2]  now in ms
-- ARGV[3]  until when the day's keys are kept (ms: the history kept after it ends); ARGV[4] the
--          month's (a day after it ends)
-- ARGV[5]  daily budget, or -1 for none; ARGV[6] monthly budget, or -1
-- ARGV[7]  hold lifetime in ms
-- ARGV[8]  amount: recorded, reserved, or the real cost of a settled hold
-- ARGV[9]  hold id (settle, release), or the day's label (reserve: new ids are '<day>#<n>')
-- ARGV[10] alert thresholds, comma-separated fractions ('' for none)
-- ARGV[11] the model the amount is counted under (record, settle; '' for none)
-- ARGV[12] until when the hour's key is kept (ms)
-- ARGV[13..] tags the amount is also counted under (record, settle)
-- Returns  {allowed 0|1, day spent, day reserved, month spent, month reserved, new hold id or
--           '', new hold's expiry or 0, {alerts: 'd'|'m', threshold, ...},
--           {day tags: tag, nano, ...}, {month tags ...}}
--
-- History read (ARGV[1] = 'h', ARGV[2] = n): KEYS are n days' HASHes, the same n days' tag
-- HASHes, then hours' HASHes. Returns one flat {field, value, ...} list per key: a bucket's s and
-- M:<model> fields (never its holds), a tag HASH whole. Reads only.
if ARGV[1] == 'h' then
  local n = tonumber(ARGV[2])
  local out = {}
  for i, key in ipairs(KEYS) do
    local flat = redis.call('HGETALL', key)
    if i > n and i <= 2 * n then
      out[i] = flat
    else
      local kept = {}
      for j = 1, #flat, 2 do
        local f = flat[j]
        if f == 's' or string.sub(f, 1, 2) == 'M:' then
          kept[#kept + 1] = f
          kept[#kept + 1] = flat[j + 1]
        end
      end
      out[i] = kept
    end
  end
  return out
end

local op = ARGV[1]
local now = tonumber(ARGV[2])
local ends = {tonumber(ARGV[3]), tonumber(ARGV[4])}
local budgets = {tonumber(ARGV[5]), tonumber(ARGV[6])}
local hold_ms = tonumber(ARGV[7])
local amount = tonumber(ARGV[8])
local id = ARGV[9]
local model = ARGV[11]
local hour_kept = tonumber(ARGV[12])
local thresholds = {}
for t in string.gmatch(ARGV[10], '[^,]+') do thresholds[#thresholds + 1] = t end

-- Load both buckets in O(1): the reserved total (r) and the earliest and latest hold expiries
-- (m, x) are fields; the holds are scanned only once the earliest may have expired.
local buckets = {}
for i, key in ipairs({KEYS[1], KEYS[3]}) do
  local f = redis.call('HMGET', key, 's', 'q', 'r', 'm', 'x')
  local b = {key = key, spent = tonumber(f[1]) or 0, seq = tonumber(f[2]) or 0,
    reserved = tonumber(f[3]) or 0, earliest = tonumber(f[4]), latest = tonumber(f[5])}
  if b.earliest and b.earliest <= now then b.reserved, b.earliest = sweep_holds(key, now) end
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
    local v = redis.call('HGET', b.key, 'h:' .. hid)
    if v then
      local n, e = string.match(v, '^(%d+):(%d+)$')
      if tonumber(e) > now then b.reserved = b.reserved - tonumber(n) end
      redis.call('HDEL', b.key, 'h:' .. hid)
      redis.call('HSET', b.key, 'r', int(b.reserved))
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
    redis.call('HSET', day.key, 'q', int(day.seq))
    for _, b in ipairs(buckets) do
      b.reserved = b.reserved + amount
      if not b.earliest or new_exp < b.earliest then b.earliest = new_exp end
      if not b.latest or new_exp > b.latest then b.latest = new_exp end
      redis.call('HSET', b.key, 'h:' .. new_id, hold, 'r', int(b.reserved), 'm', int(b.earliest),
        'x', int(b.latest))
    end
  end
elseif op == 'r' or op == 's' then
  if op == 's' then drop(id) end
  for i, b in ipairs(buckets) do
    b.spent = b.spent + amount
    redis.call('HSET', b.key, 's', int(b.spent))
    for t = 13, #ARGV do redis.call('HINCRBY', KEYS[2 * i], ARGV[t], amount) end
    if model ~= '' then redis.call('HINCRBY', b.key, 'M:' .. model, amount) end
    if budgets[i] >= 0 and #thresholds > 0 then
      local names = {}
      for k, t in ipairs(thresholds) do names[k] = 'a:' .. t end
      local fired = redis.call('HMGET', b.key, unpack(names))
      for k, t in ipairs(thresholds) do
        if not fired[k] and b.spent > budgets[i] * tonumber(t) then
          redis.call('HSET', b.key, 'a:' .. t, 1)
          alerts[#alerts + 1] = (i == 1) and 'd' or 'm'
          alerts[#alerts + 1] = t
        end
      end
    end
  end
  -- The hour's history: its total and the model's share.
  redis.call('HINCRBY', KEYS[5], 's', amount)
  if model ~= '' then redis.call('HINCRBY', KEYS[5], 'M:' .. model, amount) end
  redis.call('PEXPIRE', KEYS[5], math.max(1, hour_kept - now))
  allowed = fits(0, false)
elseif op == 'l' then
  drop(id)
  allowed = fits(0, true)
end

-- Keep each bucket and its tags until the time its period is kept or its last hold expires,
-- whichever is later (the engine keeps the tags inside the bucket: they live as long).
for i, b in ipairs(buckets) do
  local until_ms = ends[i]
  if b.latest and b.latest > until_ms then until_ms = b.latest end
  redis.call('PEXPIRE', b.key, math.max(1, until_ms - now))
  redis.call('PEXPIRE', KEYS[2 * i], math.max(1, until_ms - now))
end

local day_tags, month_tags = {}, {}
if op == 't' then
  day_tags = redis.call('HGETALL', KEYS[2])
  month_tags = redis.call('HGETALL', KEYS[4])
end
return {allowed and 1 or 0, day.spent, day.reserved, month.spent, month.reserved, new_id, new_exp,
  alerts, day_tags, month_tags}
