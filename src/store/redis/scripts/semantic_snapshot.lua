-- SemanticCache: one page of the live entries' vectors, to load a process's index whole
-- (no KEYS scan: the entry set is a sorted set). Paged by member, so entries removed while
-- paging never make a page skip another entry.
-- KEYS[1]  the cache's entry ZSET: member = entry key suffix, score = expiry (ms)
-- KEYS[2]  the cache's change log STREAM
-- ARGV[1]  now in ms, or -1 to use the server's clock
-- ARGV[2]  last member of the previous page ('' for the first page)
-- ARGV[3]  its score
-- ARGV[4]  page size
-- ARGV[5]  prefix of entry keys
-- Returns {log cursor now, last member, its score, k1, s1, e1, …} (live entries with a vector).
local now = now_ms(ARGV[1])
local start = 0
if ARGV[2] ~= '' then
  local rank = redis.call('ZRANK', KEYS[1], ARGV[2])
  local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if rank and score and tonumber(score) == tonumber(ARGV[3]) then
    start = rank + 1
  else
    start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[3])
  end
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local cursor = '0'
if #last > 0 then cursor = last[1][1] end
local count = tonumber(ARGV[4])
local page = redis.call('ZRANGE', KEYS[1], start, start + count - 1, 'WITHSCORES')
local out = {cursor, '', '', #page / 2}
for i = 1, #page, 2 do
  local k = page[i]
  out[2] = k
  out[3] = page[i + 1]
  local h = redis.call('HMGET', ARGV[5] .. k, 's', 'e', 'x')
  local hx = tonumber(h[3])
  if h[1] and h[2] and h[2] ~= '' and hx and hx > now then
    out[#out + 1] = k
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
  end
end
return out
