-- Writes a whole value (ResponseCache.set, SessionStore.save), replacing what was there.
-- KEYS[1]  the value's HASH
-- ARGV[1]  now in ms, or -1 to use the server's clock
-- ARGV[2]  time to live in ms
-- ARGV[3..] field, value, field, value, … (the expiry field x is added here)
local key = KEYS[1]
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('DEL', key)
redis.call('HSET', key, 'x', string.format('%d', now + ttl), unpack(ARGV, 3))
redis.call('PEXPIRE', key, ttl)
return 1
