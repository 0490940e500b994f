-- SemanticCache.len: how many entries of the cache's expiry index are still live.
-- KEYS[1]  the cache's entry ZSET (score = expiry)
-- ARGV[1]  now in ms
-- Returns  the number of entries that expire after now
return redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
