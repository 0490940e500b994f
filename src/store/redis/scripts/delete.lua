-- Deletes a value written by put.lua (ResponseCache.invalidate, SessionStore.destroy), as the
-- MemoryStore does: only a live value counts as there.
-- KEYS[1]  the value's HASH (x = expiry in ms)
-- ARGV[1]  now in ms, or -1 to use the server's clock
-- Returns  1 when a live value was deleted; 0 when there was none or it had expired (it is
--          deleted all the same). A key that is not such a hash (a corrupt or foreign value)
--          is deleted and counts as there.
local key = KEYS[1]
local now = now_ms(ARGV[1])
local kind = redis.call('TYPE', key).ok
if kind == 'none' then return 0 end
local x = nil
if kind == 'hash' then x = tonumber(redis.call('HGET', key, 'x')) end
redis.call('DEL', key)
if x and x <= now then return 0 end
return 1
