-- SemanticCache.clear: removes every entry of the cache, and its log (so every process's
-- cursor leaves the log and each loads its index whole again: empty).
-- KEYS[1]  the cache's entry ZSET (score = expiry)   KEYS[2] the change log STREAM
-- ARGV[1]  prefix of entry keys
-- ARGV[2]  now in ms, or -1 to use the server's clock
-- Returns the number of entries removed that were live at now (an expired one is removed too,
-- and not counted: as the in-process cache).
local now = now_ms(ARGV[2])
local n = redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now), '+inf')
while true do
  local ks = redis.call('ZRANGE', KEYS[1], 0, 999)
  if #ks == 0 then break end
  for _, k in ipairs(ks) do redis.call('DEL', ARGV[1] .. k) end
  redis.call('ZREM', KEYS[1], unpack(ks))
end
redis.call('DEL', KEYS[2])
return n
