-- SemanticCache: the question and response of candidate entries, read back before serving.
-- KEYS[1]  the cache's entry ZSET (names the slot; not read)
-- ARGV[1]  now in ms, or -1 to use the server's clock
-- ARGV[2]  prefix of entry keys
-- ARGV[3…] entry key suffixes
-- Returns {q1, v1, q2, v2, …}, false for both of an entry that is gone or expired.
local now = now_ms(ARGV[1])
local out = {}
for i = 3, #ARGV do
  local h = redis.call('HMGET', ARGV[2] .. ARGV[i], 'q', 'v', 'x')
  local x = tonumber(h[3])
  if h[1] and h[2] and x and x > now then
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
  else
    out[#out + 1] = false
    out[#out + 1] = false
  end
end
return out
