-- Quota (rate-budget's engine): engine/quota.rs, the same steps in the same floating-point
-- order, so Redis decides exactly what the memory store decides.
-- KEYS[1]  the scope's state, a STRING holding MessagePack:
--          { {name, day, used, day_tokens, hits = {{id, at, tokens}…}, holds = {{id, scope,
--          key, tokens, at, day, prev_at, prev_id}…}, last_at, last_id}… } (keys in insertion order)
-- ARGV     op ('check' | 'reserve' | 'force' | 'commit' | 'rollback'), scope, tokens, hold id, hold key,
--          commit tokens, now, day, resetAt, windowMs, bufferMs, thresholdPct, strictTpm (0|1),
--          holdTtlMs, monotonic (0|1), keep (ms to keep the state), key count, then per key: id is a string
--          (0|1), name, rpm, tpm, rpd, tpd, priority, enabled (0|1), rank.
--          Numbers are decimal text; '' is "not a number" (the fallback applies).
--          'force' records a reservation an in-process twin granted while Redis was away, on
--          the one key given, without checking its limits.
-- Returns  commit/rollback: 1 | 0. check/reserve/force: {ok, key index (0-based, -1 none), reason,
--          tokens, waitMs, check count, 13 fields per check, then the hold's id, at, prevAt,
--          prevId when one was made}. Numbers as %.17g text, '' for null.

local function num(s)
  if s == nil or s == '' then return nil end
  return tonumber(s)
end

local function finite(v, fb)
  if type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge then return v end
  return fb
end
local function int(v, fb) return math.floor(finite(v, fb)) end
local function pos(v, fb) return math.max(1, int(v, fb)) end
local function non_neg(v, fb) return math.max(0, int(v, fb)) end
local function pct(v, fb) return math.min(100, math.max(0, finite(v, fb))) end
local function ratio(used, limit)
  if limit <= 0 then return 1 end
  return used / limit
end
local function cooldown_ms(rpm, buffer_ms, window_ms)
  return math.ceil(window_ms / pos(rpm, 1)) + non_neg(buffer_ms, 0)
end
local function daily_cap(rpd, threshold)
  return math.ceil(pos(rpd, 1) * (pct(threshold, 100) / 100))
end

local function token_wait_ms(used, tokens, limit, hits, now, window_ms, buffer_ms)
  limit = pos(limit, 1)
  tokens = non_neg(tokens, 0)
  used = non_neg(used, 0)
  window_ms = pos(window_ms, 60000)
  buffer_ms = non_neg(buffer_ms, 1000)
  if tokens > limit then return nil end
  local projected = used + tokens
  if projected <= limit then return 0 end
  local order = {}
  for i = 1, #hits do order[i] = i end
  table.sort(order, function(a, b)
    if hits[a].at ~= hits[b].at then return hits[a].at < hits[b].at end
    return a < b
  end)
  for _, i in ipairs(order) do
    projected = projected - non_neg(hits[i].tokens, 0)
    if projected <= limit then
      return math.max(0, window_ms - (now - hits[i].at) + buffer_ms)
    end
  end
  return window_ms + buffer_ms
end

-- ---- the request ----------------------------------------------------------------------------
local op, scope = ARGV[1], ARGV[2]
local tokens, hold_id, hold_key, commit_tokens = num(ARGV[3]), ARGV[4], ARGV[5], num(ARGV[6])
local now, day, reset_at = num(ARGV[7]), ARGV[8], num(ARGV[9])
local window_ms = pos(num(ARGV[10]) or 60000, 60000)
local buffer_ms = non_neg(num(ARGV[11]) or 1000, 1000)
local threshold = pct(num(ARGV[12]) or 100, 100)
local strict_tpm = ARGV[13] == '1'
local hold_ttl = num(ARGV[14])
local monotonic = ARGV[15] == '1'
local keep = tonumber(ARGV[16])
local keys = {}
local nkeys = tonumber(ARGV[17])
for i = 1, nkeys do
  local b = 17 + (i - 1) * 9
  keys[i] = {
    has_id = ARGV[b + 1] == '1', name = ARGV[b + 2], rpm = num(ARGV[b + 3]), tpm = num(ARGV[b + 4]),
    rpd = num(ARGV[b + 5]), tpd = num(ARGV[b + 6]), priority = num(ARGV[b + 7]),
    enabled = ARGV[b + 8] == '1', rank = tonumber(ARGV[b + 9]),
  }
end

-- ---- the state ------------------------------------------------------------------------------
local raw = redis.call('GET', KEYS[1])
local state = {}
if raw then state = cmsgpack.unpack(raw) end

local function find(name)
  for _, k in ipairs(state) do
    if k.name == name then return k end
  end
  return nil
end
local function entry(name)
  local k = find(name)
  if not k then
    k = {name = name, day = day, used = 0, day_tokens = 0, hits = {}, holds = {}}
    state[#state + 1] = k
  end
  return k
end
local function remove_where(list, pred)
  local kept = {}
  for _, x in ipairs(list) do
    if not pred(x) then kept[#kept + 1] = x end
  end
  return kept
end

local function roll_back(ks, hold)
  ks.hits = remove_where(ks.hits, function(h) return h.id == hold.id end)
  if ks.day == hold.day then
    ks.used = math.max(0, ks.used - 1)
    ks.day_tokens = math.max(0, ks.day_tokens - hold.tokens)
  end
  if ks.last_id == hold.id then
    ks.last_at = hold.prev_at
    ks.last_id = hold.prev_id
  end
  ks.holds = remove_where(ks.holds, function(h) return h.id == hold.id end)
end

local function expire_holds()
  if not hold_ttl then return end
  for _, ks in ipairs(state) do
    local expired = {}
    for _, h in ipairs(ks.holds) do
      if h.at + hold_ttl <= now then expired[#expired + 1] = h end
    end
    for _, h in ipairs(expired) do roll_back(ks, h) end
  end
end

local function check_key(key)
  local rpm, tpm = pos(key.rpm, 1), pos(key.tpm, 1)
  local priority = int(key.priority or 0, 0)
  local ks = entry(key.name)
  ks.used = non_neg(ks.used, 0)
  if ks.day ~= day then
    ks.day, ks.used, ks.day_tokens = day, 0, 0
  end
  ks.hits = remove_where(ks.hits, function(h)
    local at = h.at
    return not (finite(at, nil) and now - window_ms <= at and at <= now and non_neg(h.tokens, 0) > 0)
  end)
  local cap = daily_cap(key.rpd, threshold)
  local token_used = 0
  for _, h in ipairs(ks.hits) do token_used = token_used + non_neg(h.tokens, 0) end
  local rpm_ms = 0
  if ks.last_at ~= nil then
    rpm_ms = math.max(0, cooldown_ms(rpm, buffer_ms, window_ms) - (now - ks.last_at))
  end
  local tpm_ms = token_wait_ms(token_used, tokens, tpm, ks.hits, now, window_ms, buffer_ms)
  if strict_tpm and tpm_ms == 0 and token_used + tokens > tpm then
    tpm_ms = token_wait_ms(token_used, tokens, tpm, ks.hits, now, window_ms, 1)
  end
  local daily_left = math.max(0, cap - ks.used)
  local c = {
    key = key.name, ok = false, reason = nil, wait_ms = nil, priority = priority, rpm_ms = rpm_ms,
    tpm_ms = tpm_ms, token_used = token_used, token_pct = token_used / tpm, daily_used = ks.used,
    daily_cap = cap, daily_left = daily_left, daily_pct = ratio(ks.used, cap),
  }
  if not key.enabled then
    c.reason = 'off'
    return c
  end
  local waits = {}
  if daily_left <= 0 then waits[#waits + 1] = {'rpd', math.max(0, non_neg(reset_at - now, 0))} end
  if key.tpd ~= nil and ks.day_tokens + tokens > pos(key.tpd, 1) then
    waits[#waits + 1] = {'tpd', math.max(0, non_neg(reset_at - now, 0))}
  end
  if rpm_ms > 0 then waits[#waits + 1] = {'rpm', rpm_ms} end
  if tpm_ms == nil then
    c.reason = 'tpm'
    return c
  end
  if tpm_ms > 0 then waits[#waits + 1] = {'tpm', tpm_ms} end
  local block = nil
  for _, w in ipairs(waits) do
    if block == nil or w[2] > block[2] then block = w end
  end
  if block == nil then
    c.ok, c.wait_ms = true, 0
  else
    c.reason, c.wait_ms = block[1], block[2]
  end
  return c
end

local function pick(checks)
  local ok = {}
  for i, c in ipairs(checks) do
    if c.ok then ok[#ok + 1] = i end
  end
  table.sort(ok, function(a, b)
    local x, y = checks[a], checks[b]
    if x.priority ~= y.priority then return x.priority > y.priority end
    if x.token_pct ~= y.token_pct then return x.token_pct < y.token_pct end
    if x.daily_pct ~= y.daily_pct then return x.daily_pct < y.daily_pct end
    if keys[a].rank ~= keys[b].rank then return keys[a].rank < keys[b].rank end
    return a < b
  end)
  if ok[1] then
    local name = checks[ok[1]].key
    for i, k in ipairs(keys) do
      if k.has_id and k.name == name then return {ok = true, key = i, wait_ms = 0} end
    end
  end
  local chosen = nil
  for _, c in ipairs(checks) do
    if not c.ok and c.wait_ms ~= nil and (chosen == nil or c.wait_ms < chosen.wait_ms) then chosen = c end
  end
  if chosen == nil then
    for _, c in ipairs(checks) do
      if not c.ok then
        chosen = c
        break
      end
    end
  end
  if chosen == nil then return {ok = false, reason = 'no_key'} end
  return {ok = false, reason = chosen.reason, wait_ms = chosen.wait_ms}
end

-- ---- run it ---------------------------------------------------------------------------------
local function text(x)
  if x == nil then return '' end
  return string.format('%.17g', x)
end
local function save()
  redis.call('SET', KEYS[1], cmsgpack.pack(state), 'PX', math.max(1, keep))
end

-- Monotonic time: never before the scope's latest reservation (check and reserve only, as in
-- the engine).
if monotonic and (op == 'check' or op == 'reserve' or op == 'force') then
  for _, k in ipairs(state) do
    if k.last_at ~= nil and k.last_at > now then now = k.last_at end
  end
end

expire_holds()

if op == 'commit' or op == 'rollback' then
  local ks = find(hold_key)
  local hold = nil
  if ks then
    for _, h in ipairs(ks.holds) do
      if h.id == hold_id then
        hold = h
        break
      end
    end
  end
  if not hold then
    save()
    return 0
  end
  if op == 'rollback' then
    roll_back(ks, hold)
  else
    if commit_tokens ~= nil then
      for _, h in ipairs(ks.hits) do
        if h.id == hold_id then
          h.tokens = commit_tokens
          break
        end
      end
      if hold.day == ks.day then
        ks.day_tokens = math.max(0, ks.day_tokens - hold.tokens + commit_tokens)
      end
    end
    ks.holds = remove_where(ks.holds, function(h) return h.id == hold_id end)
  end
  save()
  return 1
end

local checks = {}
for i, key in ipairs(keys) do checks[i] = check_key(key) end
local d = pick(checks)
if op == 'force' then d = {ok = true, key = 1, wait_ms = 0} end
local new_hold = nil
if (op == 'reserve' or op == 'force') and d.ok then
  local key = keys[d.key]
  local ks = entry(key.name)
  new_hold = {
    id = hold_id, scope = scope, key = key.name, tokens = tokens, at = now, day = day,
    prev_at = ks.last_at, prev_id = ks.last_id,
  }
  ks.used = ks.used + 1
  ks.day_tokens = ks.day_tokens + tokens
  ks.last_at, ks.last_id = now, hold_id
  ks.hits[#ks.hits + 1] = {id = hold_id, at = now, tokens = tokens}
  local replaced = false
  for i, h in ipairs(ks.holds) do
    if h.id == hold_id then
      ks.holds[i] = new_hold
      replaced = true
    end
  end
  if not replaced then ks.holds[#ks.holds + 1] = new_hold end
end
save()

local out = {d.ok and '1' or '0', d.ok and tostring(d.key - 1) or '-1', d.reason or '', text(tokens), text(d.wait_ms), tostring(#checks)}
for _, c in ipairs(checks) do
  local fields = {
    c.key, c.ok and '1' or '0', c.reason or '', text(c.wait_ms), text(c.priority), text(c.rpm_ms),
    text(c.tpm_ms), text(c.token_used), text(c.token_pct), text(c.daily_used), text(c.daily_cap),
    text(c.daily_left), text(c.daily_pct),
  }
  for _, f in ipairs(fields) do out[#out + 1] = f end
end
if new_hold then
  out[#out + 1] = new_hold.id
  out[#out + 1] = text(new_hold.at)
  out[#out + 1] = text(new_hold.prev_at)
  if new_hold.prev_id == nil then out[#out + 1] = '' else out[#out + 1] = 'i' .. new_hold.prev_id end
end
return out
