-- Global limits of createLLMRateLimiter's Redis backend (engine/jobs.rs, the same steps).
-- Every key shares one {hash tag}, so a decision is one script on one Cluster slot.
-- KEYS[1]  the instances HASH: instance id -> last heartbeat (ms)
-- KEYS[2]  this instance's grants HASH: g:<model key>:<id> -> '<grant time>:<estimated
--          tokens>:<estimated requests>', x:<model key>:<id> -> when marked (see below); it
--          lives a day past the instance's last call (heartbeats and grants refresh it). Other
--          instances' grants hashes are this key with their id in place of ours (one hash tag,
--          one slot): when an instance is dropped, its grants are given back like expired holds.
-- KEYS[3…] one HASH per model: ms/mt/mr = minute start, tokens, requests; ds/dt/dr = the
--          same for the UTC day; c:<instance id> = jobs of that instance in flight
-- ARGV[1]  op: 'a' acquire | 'r' release | 'h' heartbeat (registers) | 'u' unregister
-- ARGV[2]  now in ms, or -1 for the server's clock
-- ARGV[3]  instance id
-- ARGV[4]  instance timeout in ms (an instance silent longer is dropped, its jobs with it)
-- ARGV[5]  windows: 'f' fixed (minute / UTC day) | 's' sliding (buckets b1:<start> of 1 s
--          and b2:<start> of 10 min, '<tokens>:<requests>', each counting until start +
--          bucket + span, as engine/jobs/sliding.rs)
-- a, r:    ARGV[6..10] tpm, rpm, tpd, rpd, max concurrent (0 = none); ARGV[11..12] estimated
--          tokens, requests; a: ARGV[13] the grant's id; r: ARGV[13..14] actual tokens,
--          requests, ARGV[15] the grant (the minute reserved in; sliding: the reservation time),
--          ARGV[16] 1 to give its concurrency slot back, ARGV[17] the id ('0': none)
-- Exactly once over a link that can fail: a grant is the field g:<model>:<id> of the grants
-- hash (its value the grant time), and a release that gives a slot back settles only the grant
-- it finds and deletes it — a release sent again after a lost reply finds nothing and changes
-- nothing. A release that finds no grant leaves x:<model>:<id>, so an acquire that arrives
-- after the caller gave up on it (a timeout, then Redis runs the queued command) is refused. A
-- release without a slot (usage counted while Redis was away) is applied once per id (x: marks
-- it). Marks are few (one per lost reply) and go with the instance's grants hash.
-- A dead instance: once silent past the timeout it is dropped by the next call of any
-- instance, and what its grants reserved (their estimates, still in the windows they were
-- made in) is given back, as an expired hold is; its jobs in flight stop counting too. The
-- instances hash and the grants hashes live a day past their last write, so a grant is found
-- however long the other instances stay silent (after a day its windows have passed anyway).
-- Returns  a, r: {status (1 granted | 0 refused | 2 never fits | 3 given up / settled
--          before: nothing changed), minute start, ms until the
--          blocking window resets (-1: only concurrency), 1 if the instance was (re)registered,
--          minute tokens, minute requests, day tokens, day requests, jobs in flight, the
--          minute those counts are of (fixed windows: the windows as stored after the call,
--          not rolled to now; the day is that minute's, 0 when none is stored. Sliding: the
--          totals at now, and now's minute)}
--          h: {1 if (re)registered, live instances, dropped instances, then per model the
--          minute tokens, minute requests, day tokens, day requests, jobs in flight, minute}
--          u: {dropped 0|1}
local MIN, DAY = 60000, 86400000
local op = ARGV[1]
local now = now_ms(ARGV[2])
local me = ARGV[3]
local timeout = tonumber(ARGV[4])
local sliding = ARGV[5] == 's'
local B1, B2 = 1000, 600000
local ikey = KEYS[1]
local mstart = now - now % MIN
local dstart = now - now % DAY
local KEEP = DAY + timeout * 2 -- how long the instances and grants hashes outlive a write

-- Live instances; the silent ones are dropped (with their in-flight counts, lazily).
local live, count, dropped = {}, 0, {}
local flat = redis.call('HGETALL', ikey)
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) + timeout >= now then
    live[flat[i]] = true
    count = count + 1
  else
    dropped[#dropped + 1] = flat[i]
  end
end
if #dropped > 0 then redis.call('HDEL', ikey, unpack(dropped)) end
local registered = 0
local function register()
  if not live[me] then
    registered = 1
    live[me] = true
    count = count + 1
  end
  redis.call('HSET', ikey, me, string.format('%d', now))
  redis.call('PEXPIRE', ikey, KEEP)
end

-- Gives back what the grants hash `gkey` (of an instance that is gone) still reserves: each
-- grant's estimate leaves the window it was counted in, if that window is still current.
local function give_back(gkey)
  local g = redis.call('HGETALL', gkey)
  for i = 1, #g, 2 do
    local key, at, et, er = string.match(g[i] .. '|' .. g[i + 1], '^g:(.+):[^:]+|(%d+):(%d+):(%d+)$')
    if key then
      at, et, er = tonumber(at), tonumber(et), tonumber(er)
      if sliding then
        for _, w in ipairs({{'b1:', B1}, {'b2:', B2}}) do
          local f = w[1] .. string.format('%d', at - at % w[2])
          local v = redis.call('HGET', key, f)
          if v then
            local t, r = string.match(v, '^(%d+):(%d+)$')
            redis.call('HSET', key, f, string.format('%d:%d', math.max(0, tonumber(t) - et), math.max(0, tonumber(r) - er)))
          end
        end
      else
        local h = redis.call('HMGET', key, 'ms', 'mt', 'mr', 'ds', 'dt', 'dr')
        if tonumber(h[1]) == at then
          redis.call('HSET', key, 'mt', math.max(0, tonumber(h[2]) - et), 'mr', math.max(0, tonumber(h[3]) - er))
        end
        if tonumber(h[4]) == at - at % DAY then
          redis.call('HSET', key, 'dt', math.max(0, tonumber(h[5]) - et), 'dr', math.max(0, tonumber(h[6]) - er))
        end
      end
    end
  end
  redis.call('DEL', gkey)
end
local gbase = string.sub(KEYS[2], 1, #KEYS[2] - #me)
for _, gone in ipairs(dropped) do give_back(gbase .. gone) end

-- A model's windows, rolled to now, and its live jobs in flight.
local function load(key)
  local m = {ms = mstart, mt = 0, mr = 0, ds = dstart, dt = 0, dr = 0, inflight = 0}
  local h = redis.call('HGETALL', key)
  local stale = {}
  local raw = {}
  for i = 1, #h, 2 do
    local f = h[i]
    local kind = string.sub(f, 1, 2)
    if kind == 'c:' then
      if live[string.sub(f, 3)] then
        m.inflight = m.inflight + tonumber(h[i + 1])
      else
        stale[#stale + 1] = f
      end
    elseif sliding and (string.sub(f, 1, 3) == 'b1:' or string.sub(f, 1, 3) == 'b2:') then
      local day = string.sub(f, 2, 2) == '2'
      local start = tonumber(string.sub(f, 4))
      local until_ms = start + (day and (B2 + DAY) or (B1 + MIN))
      if until_ms <= now then
        stale[#stale + 1] = f
      else
        local t, r = string.match(h[i + 1], '^(%d+):(%d+)$')
        t, r = tonumber(t), tonumber(r)
        if day then
          m.dt, m.dr = m.dt + t, m.dr + r
        else
          m.mt, m.mr = m.mt + t, m.mr + r
        end
        -- the earliest time a bucket of each window stops counting
        if day then m.dfree = math.min(m.dfree or until_ms, until_ms)
        else m.mfree = math.min(m.mfree or until_ms, until_ms) end
      end
    else
      raw[f] = tonumber(h[i + 1])
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  if not sliding then
    -- A window never goes back: a call with an earlier clock (a release sent again later, with
    -- the time it was first made) counts in the newer window it finds.
    if raw.ms and raw.ms > mstart then mstart = raw.ms end
    if raw.ds and raw.ds > dstart then dstart = raw.ds end
    m.ms, m.ds = mstart, dstart
    if raw.ms == mstart then m.mt, m.mr = raw.mt or 0, raw.mr or 0 end
    if raw.ds == dstart then m.dt, m.dr = raw.dt or 0, raw.dr or 0 end
    m.kept = {raw.mt or 0, raw.mr or 0, raw.dt or 0, raw.dr or 0, raw.ms or 0}
  end
  return m
end
-- Sliding: adds (tokens, requests) to the bucket field f, floored at 0.
local function bump(key, f, t, r)
  local v = redis.call('HGET', key, f)
  local ot, orr = 0, 0
  if v then
    local a, b = string.match(v, '^(%d+):(%d+)$')
    ot, orr = tonumber(a), tonumber(b)
  end
  redis.call('HSET', key, f, string.format('%d:%d', math.max(0, ot + t), math.max(0, orr + r)))
end
local function save(key, m)
  if sliding then
    redis.call('PEXPIRE', key, DAY + B2 + MIN)
    return
  end
  redis.call('HSET', key, 'ms', string.format('%d', m.ms), 'mt', m.mt, 'mr', m.mr,
    'ds', string.format('%d', m.ds), 'dt', m.dt, 'dr', m.dr)
  m.kept = {m.mt, m.mr, m.dt, m.dr, m.ms}
  redis.call('PEXPIRE', key, math.max(dstart + DAY + MIN - now, MIN))
end
-- What a reply shows of a model. Fixed windows: the windows as stored after this call (not
-- rolled to now: a call that writes nothing leaves them as they were, and the caller rolls
-- them to its clock as the engine's view does); sliding: the totals at now.
local function state(m)
  if sliding then return {m.mt, m.mr, m.dt, m.dr, m.inflight, m.ms} end
  local k = m.kept
  return {k[1], k[2], k[3], k[4], m.inflight, k[5]}
end

if op == 'a' or op == 'r' then
  register()
  local key, gkey = KEYS[3], KEYS[2]
  local tpm, rpm, tpd, rpd, conc = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]),
    tonumber(ARGV[9]), tonumber(ARGV[10])
  local et, er = tonumber(ARGV[11]), tonumber(ARGV[12])
  local m = load(key)
  local status, retry = 1, -1
  local id = op == 'a' and ARGV[13] or ARGV[17]
  local gfield, xfield = 'g:' .. key .. ':' .. id, 'x:' .. key .. ':' .. id
  local function mark()
    redis.call('HSET', gkey, xfield, string.format('%d', now))
    redis.call('PEXPIRE', gkey, KEEP)
  end
  if op == 'a' then
    local function big(e, l) return l > 0 and e > l end
    local function fits(c, e, l) return l == 0 or (c < l and c + e <= l) end
    if redis.call('HDEL', gkey, xfield) == 1 then
      status = 3 -- given up by the caller before it arrived
    elseif big(et, tpm) or big(et, tpd) or big(er, rpm) or big(er, rpd) then
      status = 2
    elseif not (fits(m.dt, et, tpd) and fits(m.dr, er, rpd)) then
      status, retry = 0, (sliding and (m.dfree or now + 1) or dstart + DAY) - now
    elseif not (fits(m.mt, et, tpm) and fits(m.mr, er, rpm)) then
      status, retry = 0, (sliding and (m.mfree or now + 1) or mstart + MIN) - now
    elseif conc > 0 and m.inflight >= conc then
      status = 0
    else
      m.mt, m.mr, m.dt, m.dr = m.mt + et, m.mr + er, m.dt + et, m.dr + er
      m.inflight = m.inflight + 1
      if sliding then
        bump(key, 'b1:' .. string.format('%d', now - now % B1), et, er)
        bump(key, 'b2:' .. string.format('%d', now - now % B2), et, er)
        mstart = now -- the grant: the reservation time
      end
      save(key, m)
      redis.call('HINCRBY', key, 'c:' .. me, 1)
      redis.call('HSET', gkey, gfield, string.format('%d:%d:%d', sliding and now or mstart, et, er))
      redis.call('PEXPIRE', gkey, KEEP)
    end
  else
    local at, ar = tonumber(ARGV[13]), tonumber(ARGV[14])
    local granted = tonumber(ARGV[15])
    local slot = ARGV[16] == '1'
    if slot then
      local g = redis.call('HGET', gkey, gfield)
      if g then
        granted = tonumber(string.match(g, '^%d+'))
        redis.call('HDEL', gkey, gfield)
      else
        status = 3
      end
    elseif id ~= '0' and redis.call('HEXISTS', gkey, xfield) == 1 then
      status = 3
    end
    if status == 3 then
      -- Settled before, or never granted: mark it and change nothing else.
      mark()
      local s = state(m)
      return {status, mstart, retry, registered, s[1], s[2], s[3], s[4], s[5], s[6]}
    end
    if not slot and id ~= '0' then mark() end
    local function settle(c, e, a, same)
      if same then return math.max(0, c + a - e) end
      return c + math.max(0, a - e)
    end
    if sliding then
      for _, w in ipairs({{'b1:', B1, MIN}, {'b2:', B2, DAY}}) do
        local start = granted - granted % w[2]
        local f = w[1] .. string.format('%d', start)
        local live = start + w[2] + w[3] > now and redis.call('HEXISTS', key, f) == 1
        local dt, dr = at - et, ar - er
        if not live then
          f = w[1] .. string.format('%d', now - now % w[2])
          dt, dr = math.max(0, dt), math.max(0, dr)
        end
        if dt ~= 0 or dr ~= 0 then bump(key, f, dt, dr) end
        if w[1] == 'b1:' then
          m.mt, m.mr = math.max(0, m.mt + dt), math.max(0, m.mr + dr)
        else
          m.dt, m.dr = math.max(0, m.dt + dt), math.max(0, m.dr + dr)
        end
      end
    else
      local sm, sd = granted == mstart, (granted - granted % DAY) == dstart
      m.mt, m.mr = settle(m.mt, et, at, sm), settle(m.mr, er, ar, sm)
      m.dt, m.dr = settle(m.dt, et, at, sd), settle(m.dr, er, ar, sd)
    end
    save(key, m)
    if slot then
      local left = redis.call('HINCRBY', key, 'c:' .. me, -1)
      if left <= 0 then redis.call('HDEL', key, 'c:' .. me) end
      if m.inflight > 0 then m.inflight = m.inflight - 1 end
    end
  end
  local s = state(m)
  return {status, mstart, retry, registered, s[1], s[2], s[3], s[4], s[5], s[6]}
elseif op == 'h' then
  register()
  redis.call('PEXPIRE', KEYS[2], KEEP) -- the grants hash lives while we do
  local out = {registered, count, #dropped}
  for k = 3, #KEYS do
    local s = state(load(KEYS[k]))
    for _, x in ipairs(s) do out[#out + 1] = x end
  end
  return out
elseif op == 'u' then
  local gone = redis.call('HDEL', ikey, me)
  for k = 3, #KEYS do redis.call('HDEL', KEYS[k], 'c:' .. me) end
  give_back(KEYS[2]) -- grants still open when it stops are given back, as a dead one's are
  return {gone}
end
return redis.error_reply('jobs.lua: unknown op ' .. tostring(op))
