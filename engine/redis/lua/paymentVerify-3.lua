--[[
  Verify a payment the risk rules challenged (requires_action, e.g. created in the merchant's
  unusual hours): the merchant confirms the buyer passed its second verification. The funds are
  already held, so this cannot fail for lack of funds: capture "manual" → authorized (the hold
  keeps its deadline); capture "automatic" → the hold is posted at once → succeeded (one event,
  payment.succeeded, as paymentCreate's automatic capture).
  A hold past its deadline cannot be verified: it is expired here and then (HOLD_EXPIRED), as
  paymentCapture does, and its amount given back to the buyer's daily risk total on the same day.

  Input:
    KEYS[1] payment hash   KEYS[2] open holds by deadline   KEYS[3] op record
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] account key prefix (pp:{m}:acct:)

  Output: {replayed, msgpack{code, payment?, account?, effects, events}}
    code   0  verified: authorized | succeeded
          -4  payment not found   -5  not requires_action (invalid transition)
          -10 the hold had expired: released, payment expired
]]
--@include "includes/common.lua"
--@include "includes/risk.lua"
--@include "includes/holds.lua"

local cached = opCached(KEYS[3])
if cached then return cached end

local nowMs = tonumber(ARGV[2])
local pay = readPayment(KEYS[1])
if not pay then
  return opStore(KEYS[3], ARGV[1], { code = -4, effects = {}, events = {} })
end
if pay.status ~= 'requires_action' then
  return opStore(KEYS[3], ARGV[1], { code = -5, payment = pay, effects = {}, events = {} })
end

local acctKey = ARGV[3] .. pay.account_id
local acct = readAccount(acctKey)
local hold = pay.hold_amount

if nowMs >= pay.hold_expires_at_ms then
  return opStore(KEYS[3], ARGV[1], expireHold(KEYS[1], KEYS[2], acctKey, acct, pay, nowMs, -10))
end

if pay.capture ~= 'automatic' then
  touchPayment(KEYS[1], pay, nowMs, { status = 'authorized' })
  return opStore(KEYS[3], ARGV[1], {
    code = 0, payment = pay, account = accountView(pay.account_id, acct), effects = {}, events = { 'payment.authorized' },
  })
end

acct.held = redis.call('HINCRBY', acctKey, 'held', -hold)
redis.call('HINCRBY', acctKey, 'captured', hold)
local bad = assertNonNegative(acct)
if bad then return bad end
redis.call('ZREM', KEYS[2], pay.id)
touchPayment(KEYS[1], pay, nowMs, { status = 'succeeded', amount_captured = hold, hold_amount = 0 })

return opStore(KEYS[3], ARGV[1], {
  code = 0, payment = pay, account = accountView(pay.account_id, acct),
  effects = { { 'capture', hold } }, events = { 'payment.succeeded' },
})
