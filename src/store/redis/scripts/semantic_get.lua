-- SemanticCache lookup: the exact request's entry, and the changes logged after the
-- caller's cursor (so a process's index follows the others' writes in the same round trip).
-- KEYS[1]  the exact request's entry HASH: v response JSON, q question, s scope, e vector, x expiry
-- KEYS[2]  the cache's change log STREAM: one entry {k = entry key suffix} per change
-- ARGV[1]  now in ms, or -1 to use the server's clock
-- ARGV[2]  cursor: the last log id applied, '0' for the log's start, '' to skip the log
-- ARGV[3]  most log entries to read
-- ARGV[4]  prefix of entry keys (entry key = prefix .. k)
-- Returns {v or false, q or false, status, next cursor, k1, s1, e1, k2, s2, e2, …}:
--   status 'ok', 'reset' (the cursor left the log: load the index whole) or 'skip';
--   per change the entry's current scope and vector, or '' and '' when it is gone.
local now = now_ms(ARGV[1])
local e = redis.call('HMGET', KEYS[1], 'v', 'q', 'x')
local v, q = false, false
local x = tonumber(e[3])
if e[1] and x and x > now then
  v = e[1]
  q = e[2] or ''
end
local cursor = ARGV[2]
if cursor == '' then return {v, q, 'skip', ''} end
if cursor ~= '0' and #redis.call('XRANGE', KEYS[2], cursor, cursor) == 0 then
  return {v, q, 'reset', ''}
end
local start = '-'
if cursor ~= '0' then start = '(' .. cursor end
local items = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', tonumber(ARGV[3]))
local out = {v, q, 'ok', cursor}
for _, item in ipairs(items) do
  out[4] = item[1]
  local k = item[2][2]
  local h = redis.call('HMGET', ARGV[4] .. k, 's', 'e', 'x')
  local hx = tonumber(h[3])
  out[#out + 1] = k
  if h[1] and h[2] and h[2] ~= '' and hx and hx > now then
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
  else
    out[#out + 1] = ''
    out[#out + 1] = ''
  end
end
return out
