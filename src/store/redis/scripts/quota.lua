-- Quota (rate-budget's engine): engine/quota/ (mod.rs, window.rs, holds.rs), the same steps in
-- the same floating-point order, so Redis decides exactly what the memory store decides. Like
-- the engine, a call costs the same however many requests the TPM window holds: each key's
-- hits are numbered and kept one field each, with the window's token and request totals and
-- partial sums of both per block of 32, 1,024 and 32,768 hits; expired hits leave from the
-- front, each once; a hold names its hit. A call touches only the fields it needs.
-- KEYS[1]  HASH  key name → the key's counters (binary, see `encode_meta`): {n = number of the key in the
--                scope, day, u = used, dt = day tokens, la = lastAt, li = lastId, f = first
--                hit's number, x = next hit's number, fa, ft, fr = first hit's time, tokens
--                and 1 if rolled back, ba = newest hit's time, ep = checks run, tot, req =
--                tokens and requests in the window,
--                m = hits made (serials), o = holds made (their order), e = when the scope's
--                keys expire, on the callers' clock; then, when the key was paused, pu =
--                until when (a double after the strings)}
-- KEYS[2]  HASH  '<n>:<hit number>' → {a = at, t = tokens, i = id, u = serial,
--                z = check count when its tokens became 0, r = 1 if rolled back};
--                '<n>:<level>:<block>' → a block's token sum, '…:r' its request count;
--                'o<n>:<hold id>' →
--                {t = tokens, a = at, d = day, pa = prevAt, pi = prevId, p = order made,
--                s = its hit's number, u = its hit's serial}; '#' → keys numbered so far
-- KEYS[3]  ZSET  '<n>:<hold id>' scored by the hold's time (expiry order), and '' at +inf so
--                that it lives as long as the other two
--          All three under one hash tag (the scope): one slot, one atomic call. Their TTL is
--          set together, and only when the scope must live longer than it already does.
-- ARGV     op ('check' | 'reserve' | 'force' | 'commit' | 'rollback' | 'pause'), scope, tokens, hold id, hold key,
--          commit tokens (for 'pause': until when the hold key is paused), now, day, resetAt, windowMs, bufferMs, thresholdPct, strictTpm (0|1),
--          holdTtlMs, monotonic (0|1), keep (ms to keep the state), rpmWindow (0|1), key count, then per key: id is a string
--          (0|1), name, rpm, tpm, rpd, tpd, priority, enabled (0|1), rank.
--          Numbers are decimal text; '' is "not a number" (the fallback applies).
--          'force' records a reservation an in-process twin granted while Redis was away, on
--          the one key given, without checking its limits.
--          'pause' marks the hold key exhausted until then (the provider said so): checks
--          refuse it with 'paused' until then; the scope is kept at least that long.
-- Returns  commit/rollback/pause: 1 | 0. check/reserve/force: {ok, key index (0-based, -1 none), reason,
--          tokens, waitMs, check count, per check: key, ok, reason, waitMs, priority, rpmMs,
--          tpmMs, tokenUsed, dailyUsed, dailyCap, dailyLeft (the percentages follow from these),
--          then the hold's id, at, prevAt, prevId when one was made}. Numbers as integers when
--          whole, else as %.17g text; '' for null.

local KS, HITS, EXPIRY = KEYS[1], KEYS[2], KEYS[3]

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
-- Already resolved by the engine's Options (src/engine/quota: its defaults and bounds live
-- there only): the window, the buffer and the daily threshold in force.
local window_ms = num(ARGV[10])
local buffer_ms = num(ARGV[11])
local threshold = num(ARGV[12])
local strict_tpm = ARGV[13] == '1'
local hold_ttl = num(ARGV[14])
local monotonic = ARGV[15] == '1'
local keep = math.max(1, tonumber(ARGV[16]))
local rpm_window = ARGV[17] == '1'
local keys = {}
local nkeys = tonumber(ARGV[18])
for i = 1, nkeys do
  local b = 18 + (i - 1) * 9
  keys[i] = {
    has_id = ARGV[b + 1] == '1', name = ARGV[b + 2], rpm = num(ARGV[b + 3]), tpm = num(ARGV[b + 4]),
    rpd = num(ARGV[b + 5]), tpd = num(ARGV[b + 6]), priority = num(ARGV[b + 7]),
    enabled = ARGV[b + 8] == '1', rank = tonumber(ARGV[b + 9]),
  }
end

-- ---- records: fixed binary layouts (struct), numbers as doubles, strings after them ----------
-- (MessagePack builds a table per record: five times the cost of these on the hot path.)
local NAN = 0 / 0
local function opt(x) if x ~= x then return nil end return x end
local function str_at(raw, pos, len)
  if len < 0 then return nil, pos end
  return string.sub(raw, pos, pos + len - 1), pos + len
end

-- A key's counters: n, u, dt, la, f, x, fa, ft, fr, ba, ep, tot, req, m, o, e, then day, li.
local META = '<ddddddddddddddddi4i4'
local function decode_meta(raw, name)
  local n, u, dt, la, f, x, fa, ft, fr, ba, ep, tot, req, made, o, e, dlen, llen, pos = struct.unpack(META, raw)
  local m = {name = name, n = n, u = u, dt = dt, la = opt(la), f = f, x = x, fa = opt(fa), ft = opt(ft),
    fr = opt(fr), ba = opt(ba), ep = ep, tot = tot, req = req, m = made, o = o, e = opt(e)}
  m.day, pos = str_at(raw, pos, dlen)
  m.li, pos = str_at(raw, pos, llen)
  if pos + 7 <= #raw then m.pu = struct.unpack('<d', raw, pos) end
  return m
end
local function encode_meta(m)
  local li = m.li
  return struct.pack(META, m.n, m.u, m.dt, m.la or NAN, m.f, m.x, m.fa or NAN, m.ft or NAN, m.fr or NAN,
    m.ba or NAN, m.ep, m.tot, m.req or 0, m.m or 0, m.o or 0, m.e or NAN, #m.day, li and #li or -1) .. m.day .. (li or '')
    .. (m.pu and struct.pack('<d', m.pu) or '')
end

-- A hit: a (at), t (tokens), u (serial), z (check count when its tokens became 0), r (rolled
-- back), then i (the hold id).
local HIT = '<dddddi4'
local function decode_hit(raw)
  local a, t, u, z, r, ilen, pos = struct.unpack(HIT, raw)
  return {a = a, t = t, u = u, z = opt(z), r = opt(r), i = str_at(raw, pos, ilen)}
end
local function encode_hit(h)
  return struct.pack(HIT, h.a, h.t, h.u, h.z or NAN, h.r or NAN, #h.i) .. h.i
end

-- A hold: t (tokens), a (at), pa (prevAt), p (order made), s, u (its hit's number and serial),
-- then d (day), pi (prevId).
local HOLD = '<ddddddi4i4'
local function decode_hold(raw)
  local t, a, pa, p, hs, hu, dlen, plen, pos = struct.unpack(HOLD, raw)
  local h = {t = t, a = a, pa = opt(pa), p = p, s = opt(hs), u = opt(hu)}
  h.d, pos = str_at(raw, pos, dlen)
  h.pi = str_at(raw, pos, plen)
  return h
end
local function encode_hold(h)
  local pi = h.pi
  return struct.pack(HOLD, h.t, h.a, h.pa or NAN, h.p, h.s or NAN, h.u or NAN, #h.d, pi and #pi or -1) .. h.d .. (pi or '')
end

-- ---- the keys' counters ---------------------------------------------------------------------
-- Every key of the scope (a scope has a few: the API keys it routes over).
local metas, by_number, dirty = {}, {}, {}
do
  local all = redis.call('HGETALL', KS)
  for i = 1, #all, 2 do
    local m = decode_meta(all[i + 1], all[i])
    metas[m.name] = m
    by_number[m.n] = m
  end
end
local function entry(name)
  local m = metas[name]
  if not m then
    m = {name = name, n = redis.call('HINCRBY', HITS, '#', 1), day = day, u = 0, dt = 0, f = 0, x = 0, ep = 0, tot = 0, m = 0, o = 0}
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
local function req_field(m, l, block) return m.n .. ':' .. l .. ':' .. block .. ':r' end
local function requests(h)
  if h.r then return 0 end
  return 1
end
local function get_hit(m, seq)
  local raw = redis.call('HGET', HITS, hit_field(m, seq))
  if not raw then return nil end
  return decode_hit(raw)
end
local function put_hit(m, seq, h) redis.call('HSET', HITS, hit_field(m, seq), encode_hit(h)) end
local function live(m, h)
  if h.r then return false end
  return h.z == nil or m.ep <= h.z
end

-- Adds `dt` tokens and `dr` requests to the window's totals and to the sums of the blocks
-- holding hit `seq`.
local function add(m, seq, dt, dr)
  if dt == 0 and dr == 0 then return end
  m.tot, m.req = m.tot + dt, (m.req or 0) + dr
  local fields, deltas = {}, {}
  for l, shift in ipairs(SHIFTS) do
    local block = math.floor(seq / 2 ^ shift)
    if dt ~= 0 then
      fields[#fields + 1] = sum_field(m, l, block)
      deltas[#fields] = dt
    end
    if dr ~= 0 then
      fields[#fields + 1] = req_field(m, l, block)
      deltas[#fields] = dr
    end
  end
  local old = redis.call('HMGET', HITS, unpack(fields))
  local set = {}
  for i = 1, #fields do
    set[#set + 1] = fields[i]
    set[#set + 1] = text((tonumber(old[i]) or 0) + deltas[i])
  end
  redis.call('HSET', HITS, unpack(set))
end

-- The first hit's time and tokens, kept in the counters so a prune that drops nothing reads
-- nothing.
local function load_front(m)
  local h = m.f < m.x and get_hit(m, m.f) or nil
  m.fa, m.ft, m.fr = h and h.a, h and h.t, h and h.r
end

-- rate-budget's prune: keeps the hits with now - window <= at <= now.
local function prune(m)
  local old_front = m.f
  while m.f < m.x and m.fa < now - window_ms do
    redis.call('HDEL', HITS, hit_field(m, m.f))
    add(m, m.f, -counted(m.ft), m.fr and 0 or -1)
    m.f = m.f + 1
    load_front(m)
  end
  while m.f < m.x and m.ba > now do
    local seq = m.x - 1
    local h = get_hit(m, seq)
    redis.call('HDEL', HITS, hit_field(m, seq))
    m.x = seq
    add(m, seq, -counted(h.t), -requests(h))
    local prev = m.f < m.x and get_hit(m, m.x - 1) or nil
    m.ba = prev and prev.a
    if m.f == m.x then m.fa, m.ft, m.fr = nil, nil, nil end
  end
  -- The sums of blocks wholly before the first hit are 0 by now.
  local first = m.f
  if m.f >= m.x then first = m.x end
  local gone = {}
  for l, shift in ipairs(SHIFTS) do
    for block = math.floor(old_front / 2 ^ shift), math.floor(first / 2 ^ shift) - 1 do
      gone[#gone + 1] = sum_field(m, l, block)
    end
    if m.f >= m.x then gone[#gone + 1] = sum_field(m, l, math.floor(first / 2 ^ shift)) end
  end
  local n = #gone
  for i = 1, n do gone[n + i] = gone[i] .. ':r' end
  if n > 0 then redis.call('HDEL', HITS, unpack(gone)) end
  if m.f >= m.x then m.tot, m.req = 0, 0 end
end

-- Appends a hit; returns its number and serial.
local function push(m, id, at, t)
  local seq, serial = m.x, m.m or 0
  m.m = serial + 1
  local h = {a = at, t = t, i = id, u = serial}
  if counted(t) == 0 then h.z = m.ep end
  put_hit(m, seq, h)
  if m.f == m.x then m.fa, m.ft, m.fr = at, t, nil end
  m.ba = at
  m.x = seq + 1
  add(m, seq, counted(t), 1)
  return seq, serial
end

-- A hold's hit, while it is there (not left, not rolled back).
local function held(m, hold)
  if hold.s == nil or hold.s < m.f or hold.s >= m.x then return nil end
  local h = get_hit(m, hold.s)
  if h and h.u == hold.u and not h.r then return h end
  return nil
end

-- commit: the hold's hit takes `t` (a hit of 0 tokens is gone from the TPM window after a
-- check, as rate-budget drops it).
local function set_tokens(m, hold, t)
  local h = held(m, hold)
  if not h or not live(m, h) then return end
  local old = counted(h.t)
  h.t = t
  if counted(t) ~= 0 then
    h.z = nil
  elseif h.z == nil then
    h.z = m.ep
  end
  put_hit(m, hold.s, h)
  if hold.s == m.f then m.ft = t end
  add(m, hold.s, counted(t) - old, 0)
end

-- rollback: the hold's hit goes (it stays in place, counting nothing, until it leaves).
local function remove_hit(m, hold)
  local h = held(m, hold)
  if not h then return end
  local old = counted(h.t)
  h.t, h.r = 0, 1
  put_hit(m, hold.s, h)
  if hold.s == m.f then m.ft, m.fr = 0, 1 end
  add(m, hold.s, -old, -1)
end

-- The time of the first hit at which the tokens (or requests) from the oldest hit on reach
-- `need`.
local function first_reaching(m, by_requests, need)
  local field = sum_field
  if by_requests then field = req_field end
  if m.f >= m.x then return nil end
  local acc, lo, hi = 0, m.f, m.x
  for l = 3, 1, -1 do
    local size = 2 ^ SHIFTS[l]
    local block, last = math.floor(lo / size), math.floor((hi - 1) / size)
    local found = false
    while not found do
      local fields = {}
      for b = block, math.min(last, block + 31) do fields[#fields + 1] = field(m, l, b) end
      local sums = redis.call('HMGET', HITS, unpack(fields))
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
    local h = decode_hit(raws[i])
    if by_requests then acc = acc + requests(h) else acc = acc + counted(h.t) end
    if acc >= need then return h.a end
  end
  return nil
end

-- rate-budget's tokenWaitMs inside the Quota (or the same for one more request), for the
-- buffer and for 1 ms (strictTpm).
local function wait_ms(m, by_requests, t, limit)
  if t > limit then return nil end
  local total = m.tot
  if by_requests then total = m.req or 0 end
  if total + t <= limit then return 0, 0 end
  local at = first_reaching(m, by_requests, total + t - limit)
  if at == nil then return window_ms + buffer_ms, window_ms + 1 end
  return math.max(0, window_ms - (now - at) + buffer_ms), math.max(0, window_ms - (now - at) + 1)
end

-- ---- holds (holds.rs) -----------------------------------------------------------------------
local function hold_field(m, id) return 'o' .. m.n .. ':' .. id end
local function get_hold(m, id)
  local raw = redis.call('HGET', HITS, hold_field(m, id))
  if not raw then return nil end
  return decode_hold(raw)
end
local function drop_hold(m, id)
  redis.call('HDEL', HITS, hold_field(m, id))
  redis.call('ZREM', EXPIRY, m.n .. ':' .. id)
end

local function roll_back(m, id, hold)
  remove_hit(m, hold)
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
      local m = sep and by_number[tonumber(string.sub(member, 1, sep - 1))]
      local id = sep and string.sub(member, sep + 1)
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
  if rpm_window then
    local w, strict_w = wait_ms(m, true, 1, rpm)
    rpm_ms = w
    if w == 0 and strict_tpm and (m.req or 0) + 1 > rpm then rpm_ms = strict_w end
  elseif m.la ~= nil then
    rpm_ms = math.max(0, cooldown_ms(rpm, buffer_ms, window_ms) - (now - m.la))
  end
  local tpm_ms, strict_ms = wait_ms(m, false, non_neg(tokens, 0), tpm)
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
  if m.pu ~= nil and m.pu > now then waits[#waits + 1] = {'paused', m.pu - now} end
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

-- Writes the counters of every key this call touched, and makes the scope's keys live `keep`
-- ms more when they would not (on the callers' clock: within a day that is once, since `keep`
-- runs to the day's end). The TTL has 5 minutes to spare for callers whose clocks differ.
local function save(at_least)
  local until_ms = math.max(tonumber(ARGV[7]) + keep, at_least or 0)
  local expires = 0
  for _, m in pairs(metas) do
    if m.e ~= nil and m.e > expires then expires = m.e end
  end
  local refresh = until_ms > expires
  local set = {}
  for name, m in pairs(dirty) do
    if refresh then m.e = until_ms end
    set[#set + 1] = name
    set[#set + 1] = encode_meta(m)
  end
  if #set > 0 then redis.call('HSET', KS, unpack(set)) end
  if refresh and #set > 0 then
    redis.call('ZADD', EXPIRY, 'NX', '+inf', '')
    for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, math.ceil(until_ms - tonumber(ARGV[7])) + 300000) end
  end
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

if op == 'pause' then
  local until_ms = commit_tokens
  if until_ms == nil or until_ms ~= until_ms or until_ms == math.huge or until_ms == -math.huge then return 0 end
  local m = entry(hold_key)
  if m.pu == nil or until_ms > m.pu then m.pu = until_ms end
  save(m.pu)
  return 1
end

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
      set_tokens(m, hold, commit_tokens)
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
  if old then
    new_hold.p = old.p
  else
    m.o = (m.o or 0) + 1
    new_hold.p = m.o
  end
  m.u = m.u + 1
  m.dt = m.dt + tokens
  m.la, m.li = now, hold_id
  new_hold.s, new_hold.u = push(m, hold_id, now, tokens)
  redis.call('HSET', HITS, hold_field(m, hold_id), encode_hold(new_hold))
  redis.call('ZADD', EXPIRY, now, m.n .. ':' .. hold_id)
end
save()

-- A number as an integer reply when it is a whole one (no formatting: most are), else as text.
local function reply(x)
  if x == nil then return '' end
  if x == math.floor(x) and x > -2 ^ 53 and x < 2 ^ 53 then return x end
  return text(x)
end
local out = {d.ok and 1 or 0, d.ok and d.key - 1 or -1, d.reason or '', reply(tokens), reply(d.wait_ms), #checks}
for _, c in ipairs(checks) do
  local fields = {
    c.key, c.ok and 1 or 0, c.reason or '', reply(c.wait_ms), reply(c.priority), reply(c.rpm_ms),
    reply(c.tpm_ms), reply(c.token_used), reply(c.daily_used), reply(c.daily_cap), reply(c.daily_left),
  }
  for _, f in ipairs(fields) do out[#out + 1] = f end
end
if new_hold then
  out[#out + 1] = hold_id
  out[#out + 1] = reply(new_hold.a)
  out[#out + 1] = reply(new_hold.pa)
  if new_hold.pi == nil then out[#out + 1] = '' else out[#out + 1] = 'i' .. new_hold.pi end
end
return out
