--[[
  Claim an Idempotency-Key for one request fingerprint (Stripe's model), shared by
  idempotencyBegin-1 and admitClaim-3. The claim names the command the request will send (its id
  is derived from the key and the fingerprint), so that the engine, deciding that command, can
  complete the record itself (paymentCreate-11) and only that command can.
  Returns {state, ...}:
    'new'          claimed: run the request
    'in_progress'  another request with this key is running
    'mismatch'     the key was used for a different request
    'done'         the stored response follows: fingerprint, status, headers JSON, body
    'done_op'      the engine completed it: the response is rendered from the op record of the
                   command that follows (the command id)
  A record in state 'retryable' (the engine did not answer, or its op record was gone) is claimed
  again by the same request.
]]
local function claimIdempotency(key, fp, runningTtlS, cmdId)
  local rec = redis.call('HMGET', key, 'state', 'fp', 'status', 'headers', 'body', 'cmd')
  local state = rec[1]
  if not state then
    redis.call('HSET', key, 'state', 'running', 'fp', fp, 'cmd', cmdId)
    redis.call('EXPIRE', key, runningTtlS)
    return {'new'}
  end
  if rec[2] ~= fp then return {'mismatch'} end
  if state == 'running' then return {'in_progress'} end
  if state == 'retryable' then
    redis.call('HSET', key, 'state', 'running', 'cmd', cmdId)
    redis.call('EXPIRE', key, runningTtlS)
    return {'new'}
  end
  if not rec[3] then return {'done_op', rec[6]} end
  return {'done', rec[2], rec[3], rec[4], rec[5]}
end

--[[
  The engine completes the record of the request whose command it has just decided (paymentCreate-11):
  only while the record is that command's running claim (not one the ingress has completed with an
  answer of its own, such as a 202 past its deadline; not a later claim of the same key whose first
  claim expired). Returns 1 when completed, else 0. A key that holds nothing (pp:{m}:risk:unused,
  when the command names no record) completes nothing.
]]
local function completeIdempotency(key, cmdId, ttlS)
  local rec = redis.call('HMGET', key, 'state', 'cmd')
  if rec[1] ~= 'running' or rec[2] ~= cmdId then return 0 end
  redis.call('HSET', key, 'state', 'done')
  redis.call('EXPIRE', key, ttlS)
  return 1
end
