--[[
  Create a payment. For method "balance": hold the amount on the buyer's wallet (a pending
  transfer, as in TigerBeetle) and, for capture "automatic", post it at once. An unfunded hold is
  not an error: the payment is recorded as failed (balance.insufficient_funds), so the out_trade_no
  is spent and the storefront sees why.

  Input:
    KEYS[1] payment hash          pp:{m}:pay:<payment_id>
    KEYS[2] out_trade_no index    pp:{m}:otn:<out_trade_no>
    KEYS[3] account hash          pp:{m}:acct:<account_id>
    KEYS[4] open holds by deadline pp:{m}:holds:exp
    KEYS[5] op record             pp:{m}:op:<cmd_id>
    ARGV[1] op TTL (s)        ARGV[2] now (ms)          ARGV[3] payment id    ARGV[4] merchant id
    ARGV[5] out_trade_no      ARGV[6] amount (minor)    ARGV[7] currency      ARGV[8] method
    ARGV[9] account id        ARGV[10] manual|automatic ARGV[11] hold TTL (ms)
    ARGV[12] scene            ARGV[13] subject          ARGV[14] buyer JSON   ARGV[15] metadata JSON
    ARGV[16] notify_url

  Output: {replayed, msgpack{code, payment?, account?, effects, events, existing?}}
    code  0  payment created: authorized | succeeded | failed
         -1  account not found            (nothing changed)
         -2  account currency differs     (nothing changed)
         -3  out_trade_no already used    (existing = that payment's id; nothing changed)
]]
--@include "includes/common.lua"

local cached = opCached(KEYS[5])
if cached then return cached end

local nowMs = tonumber(ARGV[2])
local amount = tonumber(ARGV[6])
local currency = ARGV[7]

-- A payment id seen before (its op record expired or was lost with a Redis rebuild): report the
-- payment as it is, with no second effect.
local existingPay = readPayment(KEYS[1])
if existingPay then
  return opStore(KEYS[5], ARGV[1], { code = 0, payment = existingPay, effects = {}, events = {} })
end

local otnOwner = redis.call('GET', KEYS[2])
if otnOwner then
  return opStore(KEYS[5], ARGV[1], { code = -3, existing = otnOwner, effects = {}, events = {} })
end

local acct = readAccount(KEYS[3])
if not acct then
  return opStore(KEYS[5], ARGV[1], { code = -1, effects = {}, events = {} })
end
if acct.currency ~= currency then
  return opStore(KEYS[5], ARGV[1], { code = -2, effects = {}, events = {} })
end

local pay = {
  id = ARGV[3], merchant_id = ARGV[4], out_trade_no = ARGV[5], amount = amount, currency = currency,
  amount_captured = 0, amount_refunded = 0, method = ARGV[8], channel = 'balance', account_id = ARGV[9],
  scene = ARGV[12], subject = ARGV[13], buyer = ARGV[14], metadata = ARGV[15], notify_url = ARGV[16],
  status = 'authorized', failure_code = '', failure_message = '', hold_amount = 0, hold_expires_at_ms = 0,
  created_at_ms = nowMs, updated_at_ms = nowMs, version = 1,
}
local effects, events = {}, {}

if acct.available < amount then
  pay.status = 'failed'
  pay.failure_code = 'balance.insufficient_funds'
  pay.failure_message = 'the wallet does not hold enough available balance'
  events[1] = 'payment.failed'
else
  acct.available = redis.call('HINCRBY', KEYS[3], 'available', -amount)
  acct.held = redis.call('HINCRBY', KEYS[3], 'held', amount)
  effects[#effects + 1] = { 'hold', amount }
  if ARGV[10] == 'automatic' then
    acct.held = redis.call('HINCRBY', KEYS[3], 'held', -amount)
    redis.call('HINCRBY', KEYS[3], 'captured', amount)
    effects[#effects + 1] = { 'capture', amount }
    pay.status = 'succeeded'
    pay.amount_captured = amount
    events[1] = 'payment.authorized'
    events[2] = 'payment.succeeded'
  else
    pay.hold_amount = amount
    pay.hold_expires_at_ms = nowMs + tonumber(ARGV[11])
    redis.call('ZADD', KEYS[4], pay.hold_expires_at_ms, pay.id)
    events[1] = 'payment.authorized'
  end
end
local bad = assertNonNegative(acct)
if bad then return bad end

local flat = {}
for k, v in pairs(pay) do
  flat[#flat + 1] = k
  flat[#flat + 1] = v
end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('SET', KEYS[2], pay.id)

return opStore(KEYS[5], ARGV[1], {
  code = 0, payment = pay, account = accountView(ARGV[9], acct), effects = effects, events = events,
})
