--[[
  Cancel a payment that is not final: a hold (authorized, or requires_action waiting for its
  verification) is voided (released in full); a payment still waiting on the buyer without a hold
  (pending, processing) is closed without money moving. The released amount is given back to the
  buyer's daily risk total when the cancel happens on the (Asia/Shanghai) day it was counted.
  A hold already past its deadline is expired, not canceled (HOLD_EXPIRED), as capture and verify
  do: the outcome never depends on whether the sweeper's expiry arrived first.

  Input:
    KEYS[1] payment hash   KEYS[2] open holds by deadline   KEYS[3] op record
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] account key prefix (pp:{m}:acct:)

  Output: {replayed, msgpack{code, payment?, account?, effects, events}}
    code 0 canceled   -4 payment not found   -5 already final (invalid transition)
        -10 the hold had expired: released, payment expired
]]
--@include "includes/common.lua"
--@include "includes/risk.lua"

local cached = opCached(KEYS[3])
if cached then return cached end

local nowMs = tonumber(ARGV[2])
local pay = readPayment(KEYS[1])
if not pay then
  return opStore(KEYS[3], ARGV[1], { code = -4, effects = {}, events = {} })
end
local s = pay.status
if s ~= 'authorized' and s ~= 'requires_action' and s ~= 'pending' and s ~= 'processing' then
  return opStore(KEYS[3], ARGV[1], { code = -5, payment = pay, effects = {}, events = {} })
end

local effects, account = {}, nil
local fields = { status = 'canceled', hold_amount = 0 }
local code, event = 0, 'payment.canceled'
if pay.hold_amount > 0 and nowMs >= pay.hold_expires_at_ms then
  fields.status, code, event = 'expired', -10, 'payment.expired'
end
if pay.hold_amount > 0 then
  local acctKey = ARGV[3] .. pay.account_id
  local acct = readAccount(acctKey)
  releaseHold(acctKey, acct, pay.hold_amount)
  effects[1] = { 'release', pay.hold_amount }
  account = accountView(pay.account_id, acct)
  riskGiveBack(pay, pay.hold_amount, nowMs, fields)
end
redis.call('ZREM', KEYS[2], pay.id)
touchPayment(KEYS[1], pay, nowMs, fields)

return opStore(KEYS[3], ARGV[1], {
  code = code, payment = pay, account = account, effects = effects, events = { event },
})
