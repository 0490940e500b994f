-- The script library's base, put before every script (src/store/redis/scripts.rs assembles
-- them): what every engine's script needs the same way.

-- The time a call is decided at, in ms: the caller's clock when `arg` is a time (≥ 0; tests and
-- replays inject one), else the Redis server's (TIME), so every process agrees on the clock.
local function now_ms(arg)
  local now = tonumber(arg)
  if now >= 0 then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integer as Redis stores it (no exponent, no decimal point).
local function int(x) return string.format('%d', x) end
