--[[
  A merchant's authenticated POST in one round-trip: the nonce must be new, the merchant's bucket
  must have a token (as rateLimitNonce-2), and then the Idempotency-Key is claimed (as
  idempotencyBegin-1). Three round-trips of the ingress become one; all keys are the merchant's.
  A refused request (nonce seen, rate limited) writes nothing; an admitted one has its nonce stored
  and its token taken whatever the claim says.
  Input:
    KEYS[1] merchant's bucket (hash)      pp:{m}:rl
    KEYS[2] nonce (string)                pp:{m}:nonce:<nonce>
    KEYS[3] idempotency record (hash)     pp:{m}:idem:<sha256(key)>
    ARGV[1] refill rate, tokens per second (0 = no limit: the bucket is not touched)
    ARGV[2] burst: the bucket's size (>= 1)
    ARGV[3] nonce TTL (s)
    ARGV[4] request fingerprint
    ARGV[5] running TTL (s) of a claim
    ARGV[6] the command id the request will send (derived from the key and the fingerprint)
  Output: {'nonce_reused'} | {'limited', ms until a token is there} | the claim (includes/idempotency.lua)
]]
--@include "includes/rateLimit.lua"
--@include "includes/idempotency.lua"
if redis.call('EXISTS', KEYS[2]) == 1 then return {'nonce_reused'} end
local rate = tonumber(ARGV[1])
if rate > 0 then
  local waitMs = takeToken(KEYS[1], rate, tonumber(ARGV[2]))
  if waitMs > 0 then return {'limited', waitMs} end
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
return claimIdempotency(KEYS[3], ARGV[4], ARGV[5], ARGV[6])
