-- SemanticCache.delete / reportFalseHit: removes an entry and logs the change.
-- KEYS[1]  the entry HASH   KEYS[2] the cache's entry ZSET   KEYS[3] the change log STREAM
-- ARGV[1]  now in ms, or -1 to use the server's clock
-- ARGV[2]  entry key suffix   ARGV[3] log length kept (approximately)
-- Returns 1 when a live entry was removed, else 0.
local now = now_ms(ARGV[1])
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if n == 0 then return 0 end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'k', ARGV[2])
if x and x > now then return 1 end
return 0
