--[[
  Claim an Idempotency-Key for one request fingerprint (Stripe's model), shared by
  idempotencyBegin-1 and admitClaim-3.
  Returns {state, fingerprint?, status?, headers?, body?}:
    'new'          claimed: run the request
    'in_progress'  another request with this key is running
    'mismatch'     the key was used for a different request
    'done'         the stored response follows: status, headers JSON, body
  A record in state 'retryable' (the engine did not answer) is claimed again by the same request.
]]
local function claimIdempotency(key, fp, runningTtlS)
  local rec = redis.call('HMGET', key, 'state', 'fp', 'status', 'headers', 'body')
  local state = rec[1]
  if not state then
    redis.call('HSET', key, 'state', 'running', 'fp', fp)
    redis.call('EXPIRE', key, runningTtlS)
    return {'new'}
  end
  if rec[2] ~= fp then return {'mismatch'} end
  if state == 'running' then return {'in_progress'} end
  if state == 'retryable' then
    redis.call('HSET', key, 'state', 'running')
    redis.call('EXPIRE', key, runningTtlS)
    return {'new'}
  end
  return {'done', rec[2], rec[3], rec[4], rec[5]}
end
