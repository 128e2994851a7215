--[[
  Cancel a payment that is not final: an authorized hold is voided (released in full); a payment
  still waiting on the buyer (requires_action, pending, processing) is closed without money moving.

  Input:
    KEYS[1] payment hash   KEYS[2] open holds by deadline   KEYS[3] op record
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] account key prefix (pp:{m}:acct:)

  Output: {replayed, msgpack{code, payment?, account?, effects, events}}
    code 0 canceled   -4 payment not found   -5 already final (invalid transition)
]]
--@include "includes/common.lua"

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
if s == 'authorized' and pay.hold_amount > 0 then
  local acctKey = ARGV[3] .. pay.account_id
  local acct = readAccount(acctKey)
  releaseHold(acctKey, acct, pay.hold_amount)
  effects[1] = { 'release', pay.hold_amount }
  account = accountView(pay.account_id, acct)
end
redis.call('ZREM', KEYS[2], pay.id)
touchPayment(KEYS[1], pay, nowMs, { status = 'canceled', hold_amount = 0 })

return opStore(KEYS[3], ARGV[1], {
  code = 0, payment = pay, account = account, effects = effects, events = { 'payment.canceled' },
})
