-- SessionStore load, touch and append (engine/session.rs, the same splice).
-- KEYS[1]  the session's HASH: d = JSON of the data without messages (or all of it),
--          m = JSON array text of the messages (absent when the data has no such array),
--          x = expiry (ms)
-- ARGV[1]  op: 'l' load | 't' touch | 'a' append
-- ARGV[2]  now in ms, or -1 to use the server's clock
-- ARGV[3]  time to live in ms (touch, append)
-- ARGV[4]  append: the new messages as comma-separated JSON values
-- ARGV[5]  append: the size cap in bytes, or -1 for none
-- Returns  load: {d, m or false} or false; touch: 1 or 0;
--          append: {1, size} appended, {0, size} over the cap, {-1, 0} not a message list
local key = KEYS[1]
local op = ARGV[1]
local now = now_ms(ARGV[2])
local ttl = tonumber(ARGV[3])

local s = redis.call('HMGET', key, 'd', 'm', 'x')
local x = tonumber(s[3])
local live = s[1] and x and x > now
if s[1] and not live then
  redis.call('DEL', key)
end

if op == 'l' then
  if not live then return false end
  return {s[1], s[2]}
end

if op == 't' then
  if not live then return 0 end
  redis.call('HSET', key, 'x', string.format('%d', now + ttl))
  redis.call('PEXPIRE', key, ttl)
  return 1
end

-- append
local items = ARGV[4]
local cap = tonumber(ARGV[5])
local d, m = '{}', '[]'
if live then d, m = s[1], s[2] end
if not m then return {-1, 0} end
local empty = string.match(m, '^%s*%[%s*%]%s*$') ~= nil
local size = #d + #m + #items
if not empty then size = size + 1 end
if cap >= 0 and size > cap then return {0, size} end
if empty then
  m = '[' .. items .. ']'
else
  m = string.gsub(m, '%]%s*$', '') .. ',' .. items .. ']'
end
redis.call('HSET', key, 'd', d, 'm', m, 'x', string.format('%d', now + ttl))
redis.call('PEXPIRE', key, ttl)
return {1, size}
