-- SemanticCache.clear: removes every entry of the cache, and its log (so every process's
-- cursor leaves the log and each loads its index whole again: empty).
-- KEYS[1]  the cache's entry ZSET   KEYS[2] the change log STREAM
-- ARGV[1]  prefix of entry keys
-- Returns the number of entries removed.
local n = 0
while true do
  local ks = redis.call('ZRANGE', KEYS[1], 0, 999)
  if #ks == 0 then break end
  for _, k in ipairs(ks) do redis.call('DEL', ARGV[1] .. k) end
  redis.call('ZREM', KEYS[1], unpack(ks))
  n = n + #ks
end
redis.call('DEL', KEYS[2])
return n
