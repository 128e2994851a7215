--[[
  Ingress idempotency (Stripe's model): claim an Idempotency-Key for one request fingerprint.

  Input:
    KEYS[1] idempotency record (hash)   pp:{m}:idem:<sha256(key)>
    ARGV[1] request fingerprint (sha256 of method, path and body)
    ARGV[2] running TTL (s): how long a claim lives if its request never finishes (a crashed ingress)

  Output: {state, fingerprint?, status?, headers?, body?}
    state 'new'          claimed: run the request
          'in_progress'  another request with this key is running
          'mismatch'     the key was used for a different request
          'done'         the stored response follows: status, headers JSON, body
  A record in state 'retryable' (the engine did not answer) is claimed again by the same request.
]]

local rec = redis.call('HMGET', KEYS[1], 'state', 'fp', 'status', 'headers', 'body')
local state = rec[1]
if not state then
  redis.call('HSET', KEYS[1], 'state', 'running', 'fp', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {'new'}
end
if rec[2] ~= ARGV[1] then return {'mismatch'} end
if state == 'running' then return {'in_progress'} end
if state == 'retryable' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {'new'}
end
return {'done', rec[2], rec[3], rec[4], rec[5]}
