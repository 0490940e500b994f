-- The meters of Guard (engine/guard.rs, the same steps): one decision over many meters, all or
-- nothing, for every meter of a decision at once (one hash slot on a single server; a Cluster
-- sends one meter per call, see store/redis/guard.rs).
-- KEYS[2i-1]    meter i's HASH: n next hold number, t total, p period, c entries in the window,
--               l newest entry's time, f oldest entry's time, u time until which the keys' TTL
--               is known to last, xe a time no later than the earliest hold's expiry (-1: no
--               hold), xl a time no earlier than the latest hold's expiry, hc holds outstanding
--               (the members of the ZSET);
--               e<number> "at amount" (window entries), h<number> "amount period expires" (holds)
-- KEYS[2i]      meter i's ZSET of hold numbers by expiry time
-- ARGV[1]       'a' acquire | 'e' end holds (settle or cancel) | 'p' peek | 'r' record (count
--               a call admitted while the store was away, at ARGV[2], without asking)
-- ARGV[2]       now (ms)
-- ARGV[3]       hold lifetime (ms)
-- ARGV[3+7(i-1)+1..7] of meter i: kind 'w' window | 'p' period | 'c' concurrent, max, window ms
--               or period id, period end (ms), amount (acquire: the estimate; end: the actual,
--               -1 to cancel), hold number (end), hold expiry (end)
-- Returns       'a': {ok 0|1, first refusing meter (0-based) or -1, wait ms or -1 (never),
--               remaining..., hold numbers... (when ok)}
--               'e': {1 if the hold was outstanding else 0, ...}   'p', 'r': {remaining, ...}
--
-- Cost: each command a script runs costs about as much Lua around it as the command itself, so
-- a meter's header carries what saves commands (its oldest entry's time, bounds of its holds'
-- expiries), reads go through the writes made so far, and each meter's writes are sent at the
-- end as one HSET and one HDEL.
local op = ARGV[1]
local now = tonumber(ARGV[2])
local hold_ms = tonumber(ARGV[3])
local F = 7
local n = #KEYS / 2
-- Time the keys outlive what they must hold, so their TTL is written about once a minute.
local SLACK = 60000
-- Entries a refused call's wait walks at most (engine/guard.rs WAIT_WALK).
local WAIT_WALK = 64

local function meter(i)
  local b = 3 + (i - 1) * F
  local h = redis.call('HMGET', KEYS[2 * i - 1], 'n', 't', 'p', 'c', 'l', 'f', 'u', 'xe', 'xl', 'hc')
  return {
    k = KEYS[2 * i - 1], x = KEYS[2 * i],
    kind = ARGV[b + 1], max = tonumber(ARGV[b + 2]), a = tonumber(ARGV[b + 3]),
    b = tonumber(ARGV[b + 4]), amount = tonumber(ARGV[b + 5]), number = tonumber(ARGV[b + 6]),
    expires = tonumber(ARGV[b + 7]),
    next = tonumber(h[1]) or 0, total = tonumber(h[2]) or 0, period = tonumber(h[3]) or 0,
    count = tonumber(h[4]) or 0, last = tonumber(h[5]) or 0, front = tonumber(h[6]),
    until_ = tonumber(h[7]) or 0, xe = tonumber(h[8]) or -1, xl = tonumber(h[9]) or 0,
    hc = tonumber(h[10]) or 0,
    dirty = false, set = {}, gone = {},
  }
end

-- A field as written so far in this call, else as stored.
local function get(m, f)
  local v = m.set[f]
  if v ~= nil then
    return v
  end
  if m.gone[f] then
    return nil
  end
  return redis.call('HGET', m.k, f)
end

local function put(m, f, v)
  m.set[f] = v
  m.gone[f] = nil
end

local function drop(m, f)
  m.set[f] = nil
  m.gone[f] = true
end

-- A hold's amount becomes `actual` where it is still counted (0 gives all back).
local function apply(m, number, amount, period, actual)
  if m.kind == 'w' then
    if number >= m.next - m.count then
      local f = 'e' .. int(number)
      local e = get(m, f)
      if e then
        local at, old = string.match(e, '^(%d+) (%d+)$')
        m.total = m.total - tonumber(old) + actual
        put(m, f, at .. ' ' .. int(actual))
      end
    end
  elseif m.kind == 'p' then
    -- An older period is over: what was counted in it is gone with it.
    if period == m.period then
      m.total = m.total - amount + actual
    end
  else
    m.total = m.total - 1
  end
  m.dirty = true
end

-- Expired holds give back what they took; entries that left the window go; a new period
-- starts from zero (a clock that went back never reopens an older one).
local function refresh(m)
  if m.xe >= 0 and m.xe <= now then
    local due = redis.call('ZRANGEBYSCORE', m.x, '-inf', now)
    for _, member in ipairs(due) do
      local f = 'h' .. member
      local h = get(m, f)
      if h then
        drop(m, f)
        local amount, period = string.match(h, '^(%d+) (%d+) ')
        apply(m, tonumber(member), tonumber(amount), tonumber(period), 0)
      end
    end
    if #due > 0 then
      m.hc = math.max(0, m.hc - redis.call('ZREMRANGEBYSCORE', m.x, '-inf', now))
    end
    local first = redis.call('ZRANGE', m.x, 0, 0, 'WITHSCORES')
    m.xe = #first > 0 and tonumber(first[2]) or -1
    m.dirty = true
  end
  if m.kind == 'w' then
    while m.count > 0 do
      local f = 'e' .. int(m.next - m.count)
      local at, amount = m.front, nil
      if at == nil or at + m.a <= now then
        local e = get(m, f)
        if e then
          at, amount = string.match(e, '^(%d+) (%d+)$')
          at, amount = tonumber(at), tonumber(amount)
        else
          at, amount = 0, 0
        end
      end
      if at + m.a > now then
        m.front = at
        break
      end
      drop(m, f)
      m.total = m.total - amount
      m.count = m.count - 1
      m.front = nil
      m.dirty = true
    end
  elseif m.kind == 'p' and m.a > m.period then
    m.period = m.a
    m.total = 0
    m.dirty = true
  end
end

local function need(m)
  if m.kind == 'c' then
    return 1
  end
  return m.amount
end

local function remaining(m)
  return math.max(0, m.max - m.total)
end

-- Milliseconds until the call may fit on `m`, or nil when it never can.
local function wait(m)
  local amount = need(m)
  if amount > m.max then
    return nil
  end
  if m.kind == 'w' then
    local short = m.total + amount - m.max
    local freed, at_last = 0, now
    local front = m.next - m.count
    for j = 0, math.min(m.count, WAIT_WALK) - 1 do
      local e = get(m, 'e' .. int(front + j))
      if e then
        local at, amt = string.match(e, '^(%d+) (%d+)$')
        freed = freed + tonumber(amt)
        at_last = tonumber(at)
      end
      if freed >= short then
        break
      end
    end
    return math.max(1, at_last + m.a - now)
  elseif m.kind == 'p' then
    return math.max(1, m.b - now)
  end
  local first = redis.call('ZRANGE', m.x, 0, 0, 'WITHSCORES')
  if #first == 0 then
    return 1
  end
  return math.max(1, tonumber(first[2]) - now)
end

-- A window entry of `amount` at `now` (entries stay in time order even when callers' clocks
-- disagree a little).
local function push(m, amount)
  local at = now
  if m.count > 0 and m.last > now then
    at = m.last
  end
  put(m, 'e' .. int(m.next), int(at) .. ' ' .. int(amount))
  if m.count == 0 then
    m.front = at
  end
  m.count = m.count + 1
  m.last = at
end

local function hold(m, expires)
  local number = m.next
  local amount = need(m)
  if m.kind == 'w' then
    push(m, amount)
  end
  m.next = m.next + 1
  m.total = m.total + amount
  put(m, 'h' .. int(number), int(amount) .. ' ' .. int(m.period) .. ' ' .. int(expires))
  if redis.call('ZADD', m.x, expires, int(number)) == 1 then
    -- The first member makes the set anew (a set is deleted once empty): it needs its TTL.
    if m.hc == 0 then
      m.made = true
    end
    m.hc = m.hc + 1
  end
  if m.xe < 0 or expires < m.xe then
    m.xe = expires
  end
  m.xl = math.max(m.xl, expires)
  m.dirty = true
  return number
end

-- Writes what changed in one HSET and one HDEL, and makes the keys outlive what they hold
-- (engine: keep_until).
local function save(m)
  if not m.dirty then
    return
  end
  local keep = m.xe >= 0 and m.xl or 0
  if m.kind == 'w' and m.count > 0 then
    keep = math.max(keep, m.last + m.a)
  elseif m.kind == 'p' and m.total > 0 then
    keep = math.max(keep, m.b)
  end
  -- A new hash always gets a TTL, even when it holds nothing yet (a period peeked once).
  local ttl = false
  if keep > m.until_ or m.until_ == 0 then
    m.until_ = math.max(keep, now) + SLACK
    ttl = true
  end
  local args = {
    'n', int(m.next), 't', int(m.total), 'p', int(m.period), 'c', int(m.count), 'l', int(m.last),
    'f', m.front and int(m.front) or '', 'u', int(m.until_), 'xe', int(m.xe), 'xl', int(m.xl),
    'hc', int(m.hc),
  }
  for f, v in pairs(m.set) do
    args[#args + 1] = f
    args[#args + 1] = v
  end
  redis.call('HSET', m.k, unpack(args))
  local gone = {}
  for f in pairs(m.gone) do
    gone[#gone + 1] = f
  end
  if #gone > 0 then
    redis.call('HDEL', m.k, unpack(gone))
  end
  if ttl then
    redis.call('PEXPIRE', m.k, math.max(1, m.until_ - now))
    redis.call('PEXPIRE', m.x, math.max(1, m.until_ - now))
  elseif m.made then
    redis.call('PEXPIRE', m.x, math.max(1, m.until_ - now))
  end
end

local meters = {}
for i = 1, n do
  meters[i] = meter(i)
  refresh(meters[i])
end

local out = {}
if op == 'a' then
  local refused, longest = -1, 0
  for i, m in ipairs(meters) do
    if m.total + need(m) > m.max then
      if refused < 0 then
        refused = i - 1
      end
      local w = wait(m)
      if w == nil or longest == nil then
        longest = nil
      else
        longest = math.max(longest, w)
      end
    end
  end
  local numbers = {}
  if refused < 0 then
    local expires = now + hold_ms
    for i, m in ipairs(meters) do
      numbers[i] = hold(m, expires)
    end
  end
  out[1] = refused < 0 and 1 or 0
  out[2] = refused
  out[3] = refused < 0 and -1 or (longest or -1)
  for i, m in ipairs(meters) do
    out[3 + i] = remaining(m)
  end
  for i = 1, #numbers do
    out[3 + n + i] = numbers[i]
  end
elseif op == 'e' then
  for i, m in ipairs(meters) do
    local f = 'h' .. int(m.number)
    local h = get(m, f)
    local done = 0
    if h then
      local amount, period, expires = string.match(h, '^(%d+) (%d+) (%d+)$')
      if tonumber(expires) == m.expires then
        drop(m, f)
        m.hc = math.max(0, m.hc - redis.call('ZREM', m.x, int(m.number)))
        local actual = m.amount
        if actual < 0 then
          actual = 0
        end
        apply(m, m.number, tonumber(amount), tonumber(period), actual)
        done = 1
      end
    end
    out[i] = done
  end
else
  for i, m in ipairs(meters) do
    if op == 'r' then
      if m.kind == 'w' then
        push(m, m.amount)
        m.next = m.next + 1
        m.total = m.total + m.amount
        m.dirty = true
      elseif m.kind == 'p' and m.a == m.period then
        m.total = m.total + m.amount
        m.dirty = true
      end
    end
    out[i] = remaining(m)
  end
end
for _, m in ipairs(meters) do
  save(m)
end
return out
