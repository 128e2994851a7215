--[[
  A merchant's authenticated request, in the one round-trip authentication already makes: the nonce
  must be new (API.md: never accepted twice within 10 minutes) and the merchant's bucket must have a
  token. A refused request stores neither, so it changed nothing and its nonce may be used again.

  Input:
    KEYS[1] merchant's bucket (hash)   pp:{m}:rl
    KEYS[2] nonce (string)             pp:{m}:nonce:<nonce>
    ARGV[1] refill rate, tokens per second (0 = no limit: the bucket is not touched)
    ARGV[2] burst: the bucket's size (>= 1)
    ARGV[3] nonce TTL (s)

  Output: -1 the nonce was seen; 0 admitted (nonce stored, token taken);
          > 0 rate limited: ms until a token is there (nothing written).
]]
--@include "includes/rateLimit.lua"

if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local rate = tonumber(ARGV[1])
if rate > 0 then
  local waitMs = takeToken(KEYS[1], rate, tonumber(ARGV[2]))
  if waitMs > 0 then return waitMs end
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
return 0
