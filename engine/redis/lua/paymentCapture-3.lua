--[[
  Capture (post) an authorized payment's hold, in full or in part; the rest is released at once.
  A hold past its deadline cannot be captured: it is expired here and then (HOLD_EXPIRED), so the
  answer never depends on whether the sweeper got there first. A payment waiting for its risk
  verification (requires_action) is not authorized yet: INVALID_TRANSITION. What is released (the
  rest of a partial capture, or an expired hold) is given back to the buyer's daily risk total on
  the day it was counted.

  Input:
    KEYS[1] payment hash   KEYS[2] open holds by deadline   KEYS[3] op record
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] amount to capture (0 = the whole hold)
    ARGV[4] account key prefix (pp:{m}:acct:) — the account key is derived, same hash tag

  Output: {replayed, msgpack{code, payment?, account?, effects, events}}
    code   0  captured (succeeded)
          -4  payment not found          -5  not authorized (invalid transition)
          -6  amount exceeds the hold    -10 the hold had expired: released, payment expired
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
if pay.status ~= 'authorized' then
  return opStore(KEYS[3], ARGV[1], { code = -5, payment = pay, effects = {}, events = {} })
end

local acctKey = ARGV[4] .. pay.account_id
local acct = readAccount(acctKey)
local hold = pay.hold_amount

if nowMs >= pay.hold_expires_at_ms then
  return opStore(KEYS[3], ARGV[1], expireHold(KEYS[1], KEYS[2], acctKey, acct, pay, nowMs, -10))
end

local amount = tonumber(ARGV[3])
if amount == 0 then amount = hold end
if amount > hold then
  return opStore(KEYS[3], ARGV[1], { code = -6, payment = pay, effects = {}, events = {} })
end

acct.held = redis.call('HINCRBY', acctKey, 'held', -amount)
redis.call('HINCRBY', acctKey, 'captured', amount)
local effects = { { 'capture', amount } }
if hold > amount then
  releaseHold(acctKey, acct, hold - amount)
  effects[2] = { 'release', hold - amount }
end
local bad = assertNonNegative(acct)
if bad then return bad end
redis.call('ZREM', KEYS[2], pay.id)
local fields = { status = 'succeeded', amount_captured = amount, hold_amount = 0 }
riskGiveBack(pay, hold - amount, nowMs, fields)
touchPayment(KEYS[1], pay, nowMs, fields)

return opStore(KEYS[3], ARGV[1], {
  code = 0, payment = pay, account = accountView(pay.account_id, acct),
  effects = effects, events = { 'payment.succeeded' },
})
