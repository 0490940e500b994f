-- ResponseCache.get: the cached JSON text, or nil.
-- KEYS[1]  the entry's HASH: v = JSON text of the response, x = expiry (ms)
-- ARGV[1]  now in ms, or -1 to use the server's clock
-- Anything that is not such a hash (a corrupt or foreign value) is deleted and is a miss.
local key = KEYS[1]
local now = now_ms(ARGV[1])
local kind = redis.call('TYPE', key).ok
if kind == 'none' then return false end
if kind ~= 'hash' then
  redis.call('DEL', key)
  return false
end
local entry = redis.call('HMGET', key, 'v', 'x')
local x = tonumber(entry[2])
if not entry[1] or not x or x <= now then
  redis.call('DEL', key)
  return false
end
return entry[1]
