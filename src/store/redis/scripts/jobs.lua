-- Global limits of createLLMRateLimiter's Redis backend (engine/jobs.rs, the same steps).
-- Every key shares one {hash tag}, so a decision is one script on one Cluster slot.
-- KEYS[1]  the instances HASH: instance id -> last heartbeat (ms)
-- KEYS[2…] one HASH per model: ms/mt/mr = minute start, tokens, requests; ds/dt/dr = the
--          same for the UTC day; c:<instance id> = jobs of that instance in flight
-- ARGV[1]  op: 'a' acquire | 'r' release | 'h' heartbeat (registers) | 'u' unregister
-- ARGV[2]  now in ms, or -1 for the server's clock
-- ARGV[3]  instance id
-- ARGV[4]  instance timeout in ms (an instance silent longer is dropped, its jobs with it)
-- a, r:    ARGV[5..9] tpm, rpm, tpd, rpd, max concurrent (0 = none); ARGV[10..11] estimated
--          tokens, requests; r: ARGV[12..13] actual tokens, requests, ARGV[14] minute the job
--          reserved in, ARGV[15] 1 to give its concurrency slot back
-- Returns  a, r: {status (1 granted | 0 refused | 2 never fits), minute start, ms until the
--          blocking window resets (-1: only concurrency), 1 if the instance was (re)registered,
--          minute tokens, minute requests, day tokens, day requests, jobs in flight}
--          h: {1 if (re)registered, live instances, dropped instances, then per model the
--          minute tokens, minute requests, day tokens, day requests, jobs in flight}
--          u: {dropped 0|1}
local MIN, DAY = 60000, 86400000
local op = ARGV[1]
local now = tonumber(ARGV[2])
local me = ARGV[3]
local timeout = tonumber(ARGV[4])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ikey = KEYS[1]
local mstart = now - now % MIN
local dstart = now - now % DAY

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
  redis.call('PEXPIRE', ikey, timeout * 2 + MIN)
end

-- A model's windows, rolled to now, and its live jobs in flight.
local function load(key)
  local m = {ms = mstart, mt = 0, mr = 0, ds = dstart, dt = 0, dr = 0, inflight = 0}
  local h = redis.call('HGETALL', key)
  local stale = {}
  local raw = {}
  for i = 1, #h, 2 do
    local f = h[i]
    if string.sub(f, 1, 2) == 'c:' then
      if live[string.sub(f, 3)] then
        m.inflight = m.inflight + tonumber(h[i + 1])
      else
        stale[#stale + 1] = f
      end
    else
      raw[f] = tonumber(h[i + 1])
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  if raw.ms == mstart then m.mt, m.mr = raw.mt or 0, raw.mr or 0 end
  if raw.ds == dstart then m.dt, m.dr = raw.dt or 0, raw.dr or 0 end
  return m
end
local function save(key, m)
  redis.call('HSET', key, 'ms', string.format('%d', m.ms), 'mt', m.mt, 'mr', m.mr,
    'ds', string.format('%d', m.ds), 'dt', m.dt, 'dr', m.dr)
  redis.call('PEXPIRE', key, dstart + DAY + MIN - now)
end
local function state(m)
  return {m.mt, m.mr, m.dt, m.dr, m.inflight}
end

if op == 'a' or op == 'r' then
  register()
  local key = KEYS[2]
  local tpm, rpm, tpd, rpd, conc = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]),
    tonumber(ARGV[8]), tonumber(ARGV[9])
  local et, er = tonumber(ARGV[10]), tonumber(ARGV[11])
  local m = load(key)
  local status, retry = 1, -1
  if op == 'a' then
    local function big(e, l) return l > 0 and e > l end
    local function fits(c, e, l) return l == 0 or (c < l and c + e <= l) end
    if big(et, tpm) or big(et, tpd) or big(er, rpm) or big(er, rpd) then
      status = 2
    elseif not (fits(m.dt, et, tpd) and fits(m.dr, er, rpd)) then
      status, retry = 0, dstart + DAY - now
    elseif not (fits(m.mt, et, tpm) and fits(m.mr, er, rpm)) then
      status, retry = 0, mstart + MIN - now
    elseif conc > 0 and m.inflight >= conc then
      status = 0
    else
      m.mt, m.mr, m.dt, m.dr = m.mt + et, m.mr + er, m.dt + et, m.dr + er
      m.inflight = m.inflight + 1
      save(key, m)
      redis.call('HINCRBY', key, 'c:' .. me, 1)
    end
  else
    local at, ar = tonumber(ARGV[12]), tonumber(ARGV[13])
    local granted = tonumber(ARGV[14])
    local function settle(c, e, a, same)
      if same then return math.max(0, c + a - e) end
      return c + math.max(0, a - e)
    end
    local sm, sd = granted == mstart, (granted - granted % DAY) == dstart
    m.mt, m.mr = settle(m.mt, et, at, sm), settle(m.mr, er, ar, sm)
    m.dt, m.dr = settle(m.dt, et, at, sd), settle(m.dr, er, ar, sd)
    save(key, m)
    if ARGV[15] == '1' then
      local left = redis.call('HINCRBY', key, 'c:' .. me, -1)
      if left <= 0 then redis.call('HDEL', key, 'c:' .. me) end
      if m.inflight > 0 then m.inflight = m.inflight - 1 end
    end
  end
  return {status, mstart, retry, registered, m.mt, m.mr, m.dt, m.dr, m.inflight}
elseif op == 'h' then
  register()
  local out = {registered, count, #dropped}
  for k = 2, #KEYS do
    local s = state(load(KEYS[k]))
    for _, x in ipairs(s) do out[#out + 1] = x end
  end
  return out
elseif op == 'u' then
  local gone = redis.call('HDEL', ikey, me)
  for k = 2, #KEYS do redis.call('HDEL', KEYS[k], 'c:' .. me) end
  return {gone}
end
return redis.error_reply('jobs.lua: unknown op ' .. tostring(op))
