--[[
  Ingress rate limit of one client (an IP address): take a token from its bucket.

  Input:
    KEYS[1] bucket (hash)   pp:{ip:<address>}:rl
    ARGV[1] refill rate, tokens per second (> 0)
    ARGV[2] burst: the bucket's size (>= 1)

  Output: 0 admitted (one token taken); > 0 refused: ms until a token is there (nothing written).
]]
--@include "includes/rateLimit.lua"

return takeToken(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
