-- Leases (lib/lease.js, docs/leases.md): a process takes a share of a limit for a short time in
-- one call, answers decisions against it in-process, and gives back what it did not use.
-- One call returns the caller's previous lease (if any) and takes a new one (if it wants one).
-- KEYS[1]   the limit's HASH (one key: every field under one slot).
--           'w' (RateLimiter, sliding window):
--             g:<n>   a lease: '<units>:<expires at>:<holder>'; counts <units> until expiry +
--                     window
--             t:<at>:<holder>  units a holder used under returned leases, counted until <at>
--                     (a used unit's time + window, rounded up to the grid)
--           'b' (TokenBudget, period; the layout of budget.lua, so plain and leased callers
--             share a bucket): s, u, q, r, m, x as there; a lease is the hold h:<start>-<n>
--             whose expiry is the period's end, so an unreturned lease counts as used
--           both: w:<holder> '<want>:<expires at>:<demand>' the units each live holder asked
--             for last and its demand per window (it expires 2 lease times after it was
--             asked); q the sequence of lease numbers
-- ARGV[1]   mode 'w' | 'b'
-- ARGV[2]   max (requests per window | tokens per period)
-- ARGV[3]   window | period (ms)
-- ARGV[4]   lease time (ms)
-- ARGV[5]   now (ms), or -1 for the server's clock
-- ARGV[6]   holder (a process-unique id)
-- ARGV[7]   '<units wanted for the new lease>[:<demand per window>]' (0: return only, the
--           holder's last want expires; '0:0': return and forget the want, the holder is
--           done); without a demand, want × window / lease time
-- ARGV[8]   most units one lease may hold
-- ARGV[9]   number of the lease given back, or 0 for none
-- ARGV[10]  'w': the given-back lease's start (server ms, as this script returned it; -1: now)
--           'b': the period start the given-back lease belonged to
-- ARGV[11]  'w': the use-time grid (ms); 'b': fewest units worth a lease (a reservation's size)
-- ARGV[12…] 'w': pairs (use time offset from the lease's start, rounded up to the grid; units)
--           'b': tokens used under the lease; tokens of its open reservations carried into
--               the new lease (granted in full, on top of what is asked, in the same period);
--               then pairs (held tokens; ms until the hold expires) of open reservations that
--               become holds of their own
-- Returns   {lease number or 0, units granted, now, lease expiry (ms; for 'b' never past the
--           period's end), ms until a unit frees (when nothing is left), units left unleased
--           and unused, 'b': period start, tokens used, tokens reserved (leases included),
--           then the numbers of the holds made from ARGV[14…] (0 for a hold of a finished
--           period)}
local key = KEYS[1]
local mode = ARGV[1]
local max = tonumber(ARGV[2])
local span = tonumber(ARGV[3])
local lease_ms = tonumber(ARGV[4])
local now = now_ms(ARGV[5])
local holder = ARGV[6]
local want, demand = string.match(ARGV[7], '^(%d+):?(%d*)$')
want = tonumber(want)
demand = tonumber(demand) or want * span / lease_ms
local share = tonumber(ARGV[8])
local back = tonumber(ARGV[9])
local back_start = tonumber(ARGV[10])
local extra = tonumber(ARGV[11])

-- Max-min fair share of `avail` for a holder wanting `mine` while the others want `others`
-- (Doorman's "fair share"): the smallest wants are met first, the rest split evenly.
local function fair(avail, mine, others)
  local all = { mine }
  for _, w in ipairs(others) do all[#all + 1] = w end
  table.sort(all)
  local left, n = avail, #all
  for i, w in ipairs(all) do
    local even = left / (n - i + 1)
    if w >= mine then return math.min(mine, math.floor(even)) end
    left = left - math.min(w, even)
  end
  return mine
end

-- One pass over the hash: drops what expired, sums what counts, reads the others' wants.
local flat = redis.call('HGETALL', key)
local fields = {}
for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
local dead, others, demands = {}, {}, {}
local latest = now
for name, v in pairs(fields) do
  if string.sub(name, 1, 2) == 'w:' then
    local w, e, d = string.match(v, '^(%d+):(%d+):?(%d*)$')
    e = tonumber(e)
    if e <= now then
      dead[#dead + 1] = name
    elseif string.sub(name, 3) ~= holder then
      others[#others + 1] = tonumber(w)
      demands[string.sub(name, 3)] = tonumber(d) or tonumber(w) * span / lease_ms
      if e > latest then latest = e end
    end
  end
end

local seq = tonumber(fields['q']) or 0
local granted, number, expires, wait, left, out = 0, 0, 0, 0, 0, {}

if mode == 'w' then
  local counted, first, used = 0, nil, {}
  local function counts(name, units, until_at, h)
    if until_at <= now then
      dead[#dead + 1] = name
      return
    end
    counted = counted + units
    used[h] = (used[h] or 0) + units
    if not first or until_at < first then first = until_at end
    if until_at > latest then latest = until_at end
  end
  for name, v in pairs(fields) do
    local p = string.sub(name, 1, 2)
    if p == 't:' then
      local at, h = string.match(name, '^t:(%d+):(.*)$')
      counts(name, tonumber(v), tonumber(at), h)
    elseif p == 'g:' then
      local u, e, h = string.match(v, '^(%d+):(%d+):(.*)$')
      counts(name, tonumber(u), tonumber(e) + span, h)
      -- The lease given back stops counting as a whole; its uses are counted below.
      if tonumber(string.sub(name, 3)) == back and tonumber(e) + span > now then
        counted = counted - tonumber(u)
        used[h] = used[h] - tonumber(u)
        dead[#dead + 1] = name
      end
    end
  end
  -- Each use counts until its (rounded-up) time + window. A lease that had already expired
  -- has no use left to count: its uses were before its expiry, so before now - window.
  -- (Uses made with no lease, counted after the fact, come with lease 0 and start -1: now.)
  if back_start < 0 then back_start = now end
  local grid = {}
  -- Rounded up to the grid again, now on the server's clock, so every holder's uses share the
  -- same few fields (at most (window + lease) / grid of them).
  for i = 12, #ARGV - 1, 2 do
    local at = math.ceil((back_start + tonumber(ARGV[i]) + span) / extra) * extra
    local units = tonumber(ARGV[i + 1])
    if at > now and units > 0 then
      grid[at] = (grid[at] or 0) + units
      counted = counted + units
      if not first or at < first then first = at end
      if at > latest then latest = at end
    end
  end
  for at, units in pairs(grid) do redis.call('HINCRBY', key, 't:' .. int(at) .. ':' .. holder, units) end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  local avail = max - counted
  -- Each live holder's max-min fair share of the window (by the demand it reported) that it has
  -- not used yet is kept for it: a holder that asks now and then (a slow one) would otherwise
  -- find every unit taken, as units free, by holders asking all the time.
  local all = { demand }
  for _, d in pairs(demands) do all[#all + 1] = d end
  local water = fair(max, math.huge, all)
  local owed = 0
  for h, d in pairs(demands) do owed = owed + math.max(0, math.min(d, water) - (used[h] or 0)) end
  local free = avail - owed
  if want > 0 and free > 0 then
    granted = math.max(1, math.min(fair(free, math.min(want, share), others), free))
    seq = seq + 1
    number = seq
    expires = now + lease_ms
    redis.call('HSET', key, 'q', int(seq), 'g:' .. int(number), int(granted) .. ':' .. int(expires) .. ':' .. holder)
    if expires + span > latest then latest = expires + span end
  elseif want > 0 then
    wait = math.max(1, (first or (now + span)) - now)
  end
  left = avail - granted
else
  -- 'b': budget.lua's period and holds, then the lease as a hold that lasts the period.
  local start = tonumber(fields['s'])
  local used = tonumber(fields['u']) or 0
  if start and now >= start + span then
    redis.call('DEL', key)
    fields, dead, start, used, seq = {}, {}, nil, 0, 0
  end
  local reserved, earliest, top = 0, nil, nil
  local function hold(e)
    if not earliest or e < earliest then earliest = e end
    if not top or e > top then top = e end
  end
  for name, v in pairs(fields) do
    if string.sub(name, 1, 2) == 'h:' then
      local t, e = string.match(v, '^(%d+):(%d+)$')
      t, e = tonumber(t), tonumber(e)
      if e <= now or (back > 0 and start and name == 'h:' .. int(start) .. '-' .. int(back)) then
        dead[#dead + 1] = name
      else
        reserved = reserved + t
        hold(e)
      end
    end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  local function begin()
    if not start then
      start = now
      redis.call('HSET', key, 's', int(start))
    end
  end
  -- What the given-back lease used counts in its period only (a finished period is gone).
  local same = back > 0 and start ~= nil and back_start == start
  if back > 0 and same then
    used = used + tonumber(ARGV[12])
  end
  -- Reservations still open under the given-back lease move into the new one (they were
  -- granted already: carrying them grants nothing new), or become holds of their own.
  local carry = same and tonumber(ARGV[13]) or 0
  local made = {}
  for i = 14, #ARGV - 1, 2 do
    local n = 0
    if same then
      seq = seq + 1
      n = seq
      local e = now + math.max(1, tonumber(ARGV[i + 1]))
      reserved = reserved + tonumber(ARGV[i])
      hold(e)
      redis.call('HSET', key, 'h:' .. int(start) .. '-' .. int(n), int(tonumber(ARGV[i])) .. ':' .. int(e))
    end
    made[#made + 1] = n
  end
  local avail = max - used - reserved
  local more = avail - carry
  if want > 0 and more >= math.max(1, extra) then
    granted = carry + math.max(1, extra, math.min(fair(more, math.min(want, share), others), more))
  elseif want > 0 then
    wait = start and math.max(1, start + span - now) or span
    granted = carry
  else
    granted = carry
  end
  if granted > 0 then
    begin()
    seq = seq + 1
    number = seq
    expires = math.min(now + lease_ms, start + span)
    hold(start + span)
    reserved = reserved + granted
    redis.call('HSET', key, 'h:' .. int(start) .. '-' .. int(number), int(granted) .. ':' .. int(start + span))
  end
  if start then
    redis.call('HSET', key, 's', int(start), 'u', int(used), 'q', int(seq), 'r', int(reserved))
    if earliest then redis.call('HSET', key, 'm', int(earliest), 'x', int(top)) else redis.call('HDEL', key, 'm', 'x') end
    local until_ms = start + span
    if top and top > until_ms then until_ms = top end
    if until_ms > latest then latest = until_ms end
  end
  left = avail - granted
  out[1] = start or 0
  out[2] = used
  out[3] = reserved
  for _, n in ipairs(made) do out[#out + 1] = n end
end

-- The holder's want: what the fair shares of later calls weigh. A return alone leaves it to
-- expire (a slow holder gives back between asks, and is still owed its share meanwhile).
if want > 0 then
  local e = now + 2 * lease_ms
  redis.call('HSET', key, 'w:' .. holder, int(want) .. ':' .. int(e) .. ':' .. int(math.ceil(demand)))
  if e > latest then latest = e end
elseif ARGV[7] == '0:0' then
  redis.call('HDEL', key, 'w:' .. holder)
end
if latest > now then redis.call('PEXPIRE', key, latest - now) end

local reply = { number, granted, now, expires, wait, math.max(0, left) }
for _, x in ipairs(out) do reply[#reply + 1] = x end
return reply
