--[[
  Expiring a hold: shared by capture, verify and expire, so a hold past its deadline ends the same
  way whichever command reaches it first. Needs common.lua and risk.lua included before it.
  Returns the result table to store under the op id (code as given: 0 for an expiry that was asked
  for, -10 HOLD_EXPIRED when the caller asked for something else).
]]
local function expireHold(payKey, holdsKey, acctKey, acct, pay, nowMs, code)
  local hold = pay.hold_amount
  releaseHold(acctKey, acct, hold)
  redis.call('ZREM', holdsKey, pay.id)
  local fields = { status = 'expired', hold_amount = 0 }
  riskGiveBack(pay, hold, nowMs, fields)
  touchPayment(payKey, pay, nowMs, fields)
  return {
    code = code, payment = pay, account = accountView(pay.account_id, acct),
    effects = { { 'release', hold } }, events = { 'payment.expired' },
  }
end
