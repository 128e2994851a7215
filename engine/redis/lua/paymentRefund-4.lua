--[[
  Refund (part of) a succeeded payment. Any number of refunds, while together they stay within
  what was captured (amount_refunded + amount <= amount_captured); one that would exceed it changes
  nothing. The payment stays `succeeded`, also when refunded in full (amount_refunded =
  amount_captured says so; API.md has no other status). Each refund is a record of its own under
  its refund id, kept without TTL so that it can be read back. A refund id seen before (its op
  record expired, or lost with a Redis rebuild) is reported as it is, with no second effect. The
  daily risk total is not given back: a refund is the merchant's decision after the fact
  (docs/RISK.md).

  Wallet (balance) payment: decided here. available += amount, the account's refunded += amount,
  the payment's amount_refunded += amount; the refund is `succeeded` (event refund.succeeded).

  Channel payment: the money goes back through the channel, which answers later
  (engine/shards/channel-work.ts asks it; refundChannelResult-4.lua books its answer). Here the
  refund is recorded `pending` and reserved at once (amount_refunded += amount), so refunds in
  flight can never add up to more than was captured; no money moves yet (event refund.pending).
  The refund id joins the merchant's watch set of channel refunds, scored by when to ask the
  channel again. Refused (invalid transition): a top-up (its money is in a wallet now), and a part
  refund of a payment converted at its channel (cross-border): only the whole captured amount, in
  one refund, maps exactly onto what the buyer paid in the channel's currency.

  Input:
    KEYS[1] payment hash   pp:{m}:pay:<payment_id>
    KEYS[2] refund hash    pp:{m}:refund:<refund_id>
    KEYS[3] op record      pp:{m}:op:<cmd_id>
    KEYS[4] channel refunds watch set   pp:{m}:chan:refunds
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] refund id   ARGV[4] amount (minor units, > 0)
    ARGV[5] reason ('' = none)   ARGV[6] account key prefix (pp:{m}:acct:) — same hash tag
    ARGV[7] channel refunds: when the watcher first asks the channel again (ms)

  Output: {replayed, msgpack{code, payment?, account?, refund?, effects, events}}
    code   0  refunded or reserved (or the refund id already names a refund of this payment: that
              refund, no effect)
          -4  payment not found
          -5  the payment is not succeeded, is a top-up, or the refund id names a refund of
              another payment (invalid transition; nothing changed)
          -11 the refunds would exceed the captured amount (nothing changed)
          -14 a part refund of a converted (cross-border) channel payment (nothing changed)
]]
--@include "includes/common.lua"

local REFUND_NUMERIC = { amount = true, created_at_ms = true }

local cached = opCached(KEYS[3])
if cached then return cached end

local nowMs = tonumber(ARGV[2])
local amount = tonumber(ARGV[4])
if not amount or amount <= 0 or amount % 1 ~= 0 then
  return redis.error_reply('ASSERT refund amount must be a positive integer')
end

local pay = readPayment(KEYS[1])
local existing = readHash(KEYS[2], REFUND_NUMERIC)
if existing then
  if pay and existing.payment_id == pay.id then
    return opStore(KEYS[3], ARGV[1], { code = 0, payment = pay, refund = existing, effects = {}, events = {} })
  end
  return opStore(KEYS[3], ARGV[1], { code = -5, payment = pay, effects = {}, events = {} })
end
if not pay then
  return opStore(KEYS[3], ARGV[1], { code = -4, effects = {}, events = {} })
end
local isChannel = pay.channel ~= 'balance'
if pay.status ~= 'succeeded' or (isChannel and (pay.channel == '' or pay.kind == 'topup')) then
  return opStore(KEYS[3], ARGV[1], { code = -5, payment = pay, effects = {}, events = {} })
end
if pay.amount_refunded + amount > pay.amount_captured then
  return opStore(KEYS[3], ARGV[1], { code = -11, payment = pay, effects = {}, events = {} })
end
if isChannel and pay.fx_rate ~= nil and pay.fx_rate ~= '' and (amount ~= pay.amount_captured or pay.amount_refunded ~= 0) then
  return opStore(KEYS[3], ARGV[1], { code = -14, payment = pay, effects = {}, events = {} })
end

local function writeRefund(refund)
  hsetAll(KEYS[2], refund)
end

if isChannel then
  local refund = {
    id = ARGV[3], merchant_id = pay.merchant_id, payment_id = pay.id, account_id = '',
    amount = amount, currency = pay.currency, status = 'pending', reason = ARGV[5], created_at_ms = nowMs,
  }
  writeRefund(refund)
  touchPayment(KEYS[1], pay, nowMs, { amount_refunded = pay.amount_refunded + amount })
  redis.call('ZADD', KEYS[4], tonumber(ARGV[7]), ARGV[3])
  return opStore(KEYS[3], ARGV[1], { code = 0, payment = pay, refund = refund, effects = {}, events = { 'refund.pending' } })
end

local acctKey = ARGV[6] .. pay.account_id
local acct = readAccount(acctKey)
if not acct then return redis.error_reply('ASSERT the account of a succeeded payment is missing') end
acct.available = redis.call('HINCRBY', acctKey, 'available', amount)
redis.call('HINCRBY', acctKey, 'refunded', amount)
local bad = assertNonNegative(acct)
if bad then return bad end

local refund = {
  id = ARGV[3], merchant_id = pay.merchant_id, payment_id = pay.id, account_id = pay.account_id,
  amount = amount, currency = pay.currency, status = 'succeeded', reason = ARGV[5], created_at_ms = nowMs,
}
writeRefund(refund)
touchPayment(KEYS[1], pay, nowMs, { amount_refunded = pay.amount_refunded + amount })

return opStore(KEYS[3], ARGV[1], {
  code = 0, payment = pay, account = accountView(pay.account_id, acct), refund = refund,
  effects = { { 'refund', amount } }, events = { 'refund.succeeded' },
})
