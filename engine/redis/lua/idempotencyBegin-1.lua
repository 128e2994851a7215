--[[
  Ingress idempotency (Stripe's model): claim an Idempotency-Key for one request fingerprint.
  Input:
    KEYS[1] idempotency record (hash)   pp:{m}:idem:<sha256(key)>
    ARGV[1] request fingerprint (sha256 of method, path and body)
    ARGV[2] running TTL (s): how long a claim lives if its request never finishes (a crashed ingress)
    ARGV[3] the command id the request will send (derived from the key and the fingerprint)
  Output: {state, ...} (includes/idempotency.lua)
]]
--@include "includes/idempotency.lua"
return claimIdempotency(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
