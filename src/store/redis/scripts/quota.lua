-- Quota (rate-budget's engine): engine/quota/ (mod.rs, window.rs, holds.rs), the same steps in
-- the same floating-point order, so Redis decides exactly what the memory store decides. Like
-- the engine, a call costs the same however many requests the TPM window holds: each key's
-- hits are numbered and kept one field each, with the window's token total and partial sums
-- per block of 32, 1,024 and 32,768 hits; expired hits leave from the front, each once.
-- KEYS[1]  HASH  key name → MessagePack of the key's counters: {n = number of the key in the
--                scope, day, u = used, dt = day tokens, la = lastAt, li = lastId, f = first
--                hit's number, x = next hit's number, ep = checks run, tot = tokens in the
--                window, fa = first hit's time, ba = newest hit's time}
-- KEYS[2]  HASH  '<n>:<level>:<block>' → a block's token sum; 'i<n>:<hold id>' → the newest
--                hit with that id; '#' → keys numbered so far; '@' → holds made so far
-- KEYS[3]  HASH  '<n>:<hit number>' → MessagePack {a = at, t = tokens, i = id, p = previous hit
--                with that id, z = check count when its tokens became 0, r = 1 if rolled back};
--                'o<n>:<hold id>' → MessagePack {t = tokens, a = at, d = day, pa = prevAt,
--                pi = prevId, p = place in the order holds were made}
-- KEYS[4]  ZSET  '<n>:<hold id>' scored by the hold's time (expiry order)
--          All four under one hash tag (the scope): one slot, one atomic call.
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

local KS, SUMS, HITS, EXPIRY = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

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
-- What a hit adds to the sums (window.rs `counted`).
local function counted(t) return non_neg(t, 0) end
local function text(x)
  if x == nil then return '' end
  return string.format('%.17g', x)
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
local keep = math.max(1, tonumber(ARGV[16]))
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

-- ---- the keys' counters ---------------------------------------------------------------------
-- Every key of the scope (a scope has a few: the API keys it routes over).
local metas, by_number, dirty = {}, {}, {}
do
  local all = redis.call('HGETALL', KS)
  for i = 1, #all, 2 do
    local m = cmsgpack.unpack(all[i + 1])
    m.name = all[i]
    metas[m.name] = m
    by_number[m.n] = m
  end
end
local function entry(name)
  local m = metas[name]
  if not m then
    m = {name = name, n = redis.call('HINCRBY', SUMS, '#', 1), day = day, u = 0, dt = 0, f = 0, x = 0, ep = 0, tot = 0}
    metas[name] = m
    by_number[m.n] = m
  end
  dirty[name] = m
  return m
end

-- ---- one key's TPM window (window.rs) -------------------------------------------------------
local SHIFTS = {5, 10, 15}

local function hit_field(m, seq) return m.n .. ':' .. seq end
local function sum_field(m, l, block) return m.n .. ':' .. l .. ':' .. block end
local function id_field(m, id) return 'i' .. m.n .. ':' .. id end
local function get_hit(m, seq)
  local raw = redis.call('HGET', HITS, hit_field(m, seq))
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end
local function put_hit(m, seq, h) redis.call('HSET', HITS, hit_field(m, seq), cmsgpack.pack(h)) end
local function live(m, h)
  if h.r then return false end
  return h.z == nil or m.ep <= h.z
end

-- Adds `delta` to the window's total and to the sums of the blocks holding hit `seq`.
local function add(m, seq, delta)
  if delta == 0 then return end
  m.tot = m.tot + delta
  local fields = {}
  for l, shift in ipairs(SHIFTS) do fields[l] = sum_field(m, l, math.floor(seq / 2 ^ shift)) end
  local old = redis.call('HMGET', SUMS, fields[1], fields[2], fields[3])
  local set = {}
  for l = 1, 3 do
    set[#set + 1] = fields[l]
    set[#set + 1] = text((tonumber(old[l]) or 0) + delta)
  end
  redis.call('HSET', SUMS, unpack(set))
end

-- A hit that left: out of the id index (the chain goes on through `p`).
local function unlink(m, h, seq)
  local f = id_field(m, h.i)
  if tonumber(redis.call('HGET', SUMS, f)) == seq then
    if h.p ~= nil and h.p >= m.f and h.p < m.x then
      redis.call('HSET', SUMS, f, h.p)
    else
      redis.call('HDEL', SUMS, f)
    end
  end
end

-- Drops the sums of blocks wholly before the first hit (they are 0 by then).
local function trim_sums(m, old_front)
  for l, shift in ipairs(SHIFTS) do
    for block = math.floor(old_front / 2 ^ shift), math.floor(m.f / 2 ^ shift) - 1 do
      redis.call('HDEL', SUMS, sum_field(m, l, block))
    end
  end
end

-- rate-budget's prune: keeps the hits with now - window <= at <= now.
local function prune(m)
  local old_front = m.f
  while m.f < m.x and m.fa ~= nil and m.fa < now - window_ms do
    local h = get_hit(m, m.f)
    redis.call('HDEL', HITS, hit_field(m, m.f))
    if h then
      add(m, m.f, -counted(h.t))
      unlink(m, h, m.f)
    end
    m.f = m.f + 1
    local nxt = m.f < m.x and get_hit(m, m.f) or nil
    m.fa = nxt and nxt.a or nil
  end
  while m.f < m.x and m.ba ~= nil and m.ba > now do
    local seq = m.x - 1
    local h = get_hit(m, seq)
    redis.call('HDEL', HITS, hit_field(m, seq))
    m.x = seq
    if h then
      add(m, seq, -counted(h.t))
      unlink(m, h, seq)
    end
    local prev = m.f < m.x and get_hit(m, m.x - 1) or nil
    -- A rolled-back hit has no time that matters: it leaves with its neighbours.
    m.ba = prev and (prev.r and math.huge or prev.a) or nil
  end
  if m.f >= m.x then
    trim_sums(m, old_front)
    local cleared = {}
    for l, shift in ipairs(SHIFTS) do
      for block = math.floor(m.f / 2 ^ shift), math.floor(math.max(m.f, m.x) / 2 ^ shift) do
        cleared[#cleared + 1] = sum_field(m, l, block)
      end
    end
    redis.call('HDEL', SUMS, unpack(cleared))
    m.f, m.x, m.fa, m.ba, m.tot = 0, 0, nil, nil, 0
  else
    trim_sums(m, old_front)
  end
end

local function push(m, id, at, t)
  local seq = m.x
  local f = id_field(m, id)
  local prev = tonumber(redis.call('HGET', SUMS, f))
  redis.call('HSET', SUMS, f, seq)
  local h = {a = at, t = t, i = id, p = prev}
  if counted(t) == 0 then h.z = m.ep end
  put_hit(m, seq, h)
  if m.f == m.x then m.fa = at end
  m.ba = at
  m.x = seq + 1
  add(m, seq, counted(t))
end

-- The hits with this id that are still there, newest first, with their numbers.
local function with_id(m, id)
  local out = {}
  local seq = tonumber(redis.call('HGET', SUMS, id_field(m, id)))
  while seq ~= nil and seq >= m.f and seq < m.x do
    local h = get_hit(m, seq)
    if not h then break end
    if live(m, h) and h.i == id then out[#out + 1] = {seq, h} end
    seq = h.p
  end
  return out
end

-- commit: the oldest hit with this id takes `t`.
local function set_tokens(m, id, t)
  local found = with_id(m, id)
  local last = found[#found]
  if not last then return end
  local seq, h = last[1], last[2]
  local old = counted(h.t)
  h.t = t
  if counted(t) ~= 0 then
    h.z = nil
  elseif h.z == nil then
    h.z = m.ep
  end
  put_hit(m, seq, h)
  add(m, seq, counted(t) - old)
end

-- rollback: every hit with this id goes.
local function remove_hits(m, id)
  for _, found in ipairs(with_id(m, id)) do
    local seq, h = found[1], found[2]
    local old = counted(h.t)
    h.t, h.r = 0, 1
    put_hit(m, seq, h)
    add(m, seq, -old)
  end
end

-- The time of the first hit at which the tokens from the oldest hit on reach `need`.
local function first_reaching(m, need)
  if m.f >= m.x then return nil end
  local acc, lo, hi = 0, m.f, m.x
  for l = 3, 1, -1 do
    local size = 2 ^ SHIFTS[l]
    local block, last = math.floor(lo / size), math.floor((hi - 1) / size)
    local found = false
    while not found do
      local fields = {}
      for b = block, math.min(last, block + 31) do fields[#fields + 1] = sum_field(m, l, b) end
      local sums = redis.call('HMGET', SUMS, unpack(fields))
      for i = 1, #fields do
        local v = tonumber(sums[i]) or 0
        if acc + v >= need or block >= last then
          found = true
          break
        end
        acc = acc + v
        block = block + 1
      end
    end
    lo, hi = math.max(lo, block * size), math.min(hi, (block + 1) * size)
  end
  local fields = {}
  for seq = lo, hi - 1 do fields[#fields + 1] = hit_field(m, seq) end
  local raws = redis.call('HMGET', HITS, unpack(fields))
  for i = 1, #fields do
    if not raws[i] then return nil end
    local h = cmsgpack.unpack(raws[i])
    acc = acc + counted(h.t)
    if acc >= need then return h.a end
  end
  return nil
end

-- rate-budget's tokenWaitMs inside the Quota, for the buffer and for 1 ms (strictTpm).
local function wait_ms(m, t, limit)
  if t > limit then return nil end
  if m.tot + t <= limit then return 0, 0 end
  local at = first_reaching(m, m.tot + t - limit)
  if at == nil then return window_ms + buffer_ms, window_ms + 1 end
  return math.max(0, window_ms - (now - at) + buffer_ms), math.max(0, window_ms - (now - at) + 1)
end

-- ---- holds (holds.rs) -----------------------------------------------------------------------
local function hold_field(m, id) return 'o' .. m.n .. ':' .. id end
local function get_hold(m, id)
  local raw = redis.call('HGET', HITS, hold_field(m, id))
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end
local function drop_hold(m, id)
  redis.call('HDEL', HITS, hold_field(m, id))
  redis.call('ZREM', EXPIRY, m.n .. ':' .. id)
end

local function roll_back(m, id, hold)
  remove_hits(m, id)
  if m.day == hold.d then
    m.u = math.max(0, m.u - 1)
    m.dt = math.max(0, m.dt - hold.t)
  end
  if m.li == id then
    m.la, m.li = hold.pa, hold.pi
  end
  drop_hold(m, id)
  dirty[m.name] = m
end

-- Holds with at + ttl <= now roll back, in the order they were made.
local function expire_holds()
  if not hold_ttl then return end
  local found = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', text(now - hold_ttl + 1), 'WITHSCORES')
  local expired = {}
  for i = 1, #found, 2 do
    if tonumber(found[i + 1]) + hold_ttl <= now then
      local member = found[i]
      local sep = string.find(member, ':', 1, true)
      local m = by_number[tonumber(string.sub(member, 1, sep - 1))]
      local id = string.sub(member, sep + 1)
      local hold = m and get_hold(m, id)
      if hold then
        expired[#expired + 1] = {m, id, hold}
      else
        redis.call('ZREM', EXPIRY, member)
      end
    end
  end
  table.sort(expired, function(a, b) return a[3].p < b[3].p end)
  for _, e in ipairs(expired) do roll_back(e[1], e[2], e[3]) end
end

-- ---- the decision (mod.rs) ------------------------------------------------------------------
local function check_key(key)
  local rpm, tpm = pos(key.rpm, 1), pos(key.tpm, 1)
  local priority = int(key.priority or 0, 0)
  local m = entry(key.name)
  m.u = non_neg(m.u, 0)
  if m.day ~= day then
    m.day, m.u, m.dt = day, 0, 0
  end
  m.ep = m.ep + 1
  prune(m)
  local cap = daily_cap(key.rpd, threshold)
  local token_used = m.tot
  local rpm_ms = 0
  if m.la ~= nil then
    rpm_ms = math.max(0, cooldown_ms(rpm, buffer_ms, window_ms) - (now - m.la))
  end
  local tpm_ms, strict_ms = wait_ms(m, non_neg(tokens, 0), tpm)
  if strict_tpm and tpm_ms == 0 and token_used + tokens > tpm then tpm_ms = strict_ms end
  local daily_left = math.max(0, cap - m.u)
  local c = {
    key = key.name, ok = false, reason = nil, wait_ms = nil, priority = priority, rpm_ms = rpm_ms,
    tpm_ms = tpm_ms, token_used = token_used, token_pct = token_used / tpm, daily_used = m.u,
    daily_cap = cap, daily_left = daily_left, daily_pct = ratio(m.u, cap),
  }
  if not key.enabled then
    c.reason = 'off'
    return c
  end
  local waits = {}
  if daily_left <= 0 then waits[#waits + 1] = {'rpd', math.max(0, non_neg(reset_at - now, 0))} end
  if key.tpd ~= nil and m.dt + tokens > pos(key.tpd, 1) then
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

-- Writes the counters of every key this call touched and keeps the scope `keep` ms.
local function save()
  local set = {}
  for name, m in pairs(dirty) do
    local stored = {}
    for k, v in pairs(m) do
      if k ~= 'name' then stored[k] = v end
    end
    set[#set + 1] = name
    set[#set + 1] = cmsgpack.pack(stored)
  end
  if #set > 0 then redis.call('HSET', KS, unpack(set)) end
  for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, keep) end
end

-- ---- run it ---------------------------------------------------------------------------------
-- Monotonic time: never before the scope's latest reservation (check and reserve only, as in
-- the engine).
if monotonic and (op == 'check' or op == 'reserve' or op == 'force') then
  for _, m in pairs(metas) do
    if m.la ~= nil and m.la > now then now = m.la end
  end
end

expire_holds()

if op == 'commit' or op == 'rollback' then
  local m = metas[hold_key]
  local hold = m and get_hold(m, hold_id)
  if not hold then
    save()
    return 0
  end
  if op == 'rollback' then
    roll_back(m, hold_id, hold)
  else
    if commit_tokens ~= nil then
      set_tokens(m, hold_id, commit_tokens)
      if hold.d == m.day then
        m.dt = math.max(0, m.dt - hold.t + commit_tokens)
      end
    end
    drop_hold(m, hold_id)
    dirty[m.name] = m
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
  local m = entry(key.name)
  local old = get_hold(m, hold_id)
  new_hold = {t = tokens, a = now, d = day, pa = m.la, pi = m.li}
  new_hold.p = old and old.p or redis.call('HINCRBY', SUMS, '@', 1)
  m.u = m.u + 1
  m.dt = m.dt + tokens
  m.la, m.li = now, hold_id
  push(m, hold_id, now, tokens)
  redis.call('HSET', HITS, hold_field(m, hold_id), cmsgpack.pack(new_hold))
  redis.call('ZADD', EXPIRY, now, m.n .. ':' .. hold_id)
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
  out[#out + 1] = hold_id
  out[#out + 1] = text(new_hold.a)
  out[#out + 1] = text(new_hold.pa)
  if new_hold.pi == nil then out[#out + 1] = '' else out[#out + 1] = 'i' .. new_hold.pi end
end
return out
