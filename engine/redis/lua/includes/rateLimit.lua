--[[
  Token bucket shared by the ingress rate-limit scripts: a bucket holds up to `burst` tokens, refills
  at `rate` tokens per second, and each admitted request takes one. The clock is the Redis server's
  (TIME), so every ingress instance sees the same buckets whatever its own clock says.
  A bucket key is a hash {tokens, at_ms}; it expires once it would be full again, so an idle
  client leaves nothing behind. A refused request writes nothing.
]]

local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Returns 0 and takes a token, or the ms until a token is there (>= 1) and takes nothing.
local function takeToken(key, rate, burst)
  local now = nowMs()
  local b = redis.call('HMGET', key, 'tokens', 'at_ms')
  local tokens = tonumber(b[1]) or burst
  local at = tonumber(b[2]) or now
  if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000) end
  if tokens < 1 then return math.max(1, math.ceil((1 - tokens) * 1000 / rate)) end
  redis.call('HSET', key, 'tokens', tostring(tokens - 1), 'at_ms', now)
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
  return 0
end
