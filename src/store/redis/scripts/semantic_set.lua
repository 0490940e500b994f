-- SemanticCache.set: stores an entry, logs the change, and evicts what expired and, beyond
-- max entries, the entries that expire first.
-- KEYS[1]  the entry HASH: v response JSON, q question, s scope, e vector (f32 LE), x expiry
-- KEYS[2]  the cache's entry ZSET (member = entry key suffix, score = expiry)
-- KEYS[3]  the cache's change log STREAM
-- ARGV[1]  now in ms, or -1 to use the server's clock
-- ARGV[2]  time to live in ms
-- ARGV[3]  max entries
-- ARGV[4]  log length kept (approximately)
-- ARGV[5]  prefix of entry keys
-- ARGV[6]  entry key suffix   ARGV[7] scope   ARGV[8] question   ARGV[9] response JSON
-- ARGV[10] vector bytes ('' when the entry is only found by the exact request)
-- Returns the number of entries evicted.
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
local cap = ARGV[4]
local function drop(k)
  redis.call('DEL', ARGV[5] .. k)
  redis.call('ZREM', KEYS[2], k)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', cap, '*', 'k', k)
end
for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 64)) do
  drop(k)
end
local x = now + ttl
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[9], 'q', ARGV[8], 's', ARGV[7], 'e', ARGV[10], 'x', string.format('%d', x))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], x, ARGV[6])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', cap, '*', 'k', ARGV[6])
local evicted = 0
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  for _, k in ipairs(oldest) do
    drop(k)
    evicted = evicted + 1
  end
end
-- The set and the log outlive the entries a little, then go too.
redis.call('PEXPIRE', KEYS[2], ttl + 60000)
redis.call('PEXPIRE', KEYS[3], ttl + 60000)
return evicted
