--[[
  Apply what a channel said about a channel payment: a verified callback, or the answer to a query
  (补单). At most once per op id, and idempotent in effect: a payment already in the state the
  channel reports is left as it is. The channel, amount and currency must be exactly those of the
  channel order; a mismatch changes nothing (a forged or tampered notification that somehow
  verified, or a channel bug: counted and shown to operators).

  succeeded: pending → succeeded, captured in full; the fee (basis points of the payment's amount,
             rounded half up to the minor unit) is taken from the merchant's settlement; a top-up
             credits the wallet instead of the merchant.
  failed | closed: pending → failed (channel.payment_failed / channel.order_closed), or expired
             when closed at or after the order's deadline; the daily risk total is given back.
  A success for a payment that is no longer pending (canceled or expired first) changes nothing
  here and answers LATE_PAYMENT, so the engine can flag it for a refund at the channel.

  Input:
    KEYS[1] payment hash   KEYS[2] op record   KEYS[3] channel watch set   KEYS[4] wallet (top-up) or unused
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] channel   ARGV[4] succeeded|failed|closed
    ARGV[5] amount (channel minor units)   ARGV[6] currency (channel)   ARGV[7] channel trade no ('')
    ARGV[8] account key prefix (pp:{m}:acct:)

  Output: {replayed, msgpack{code, payment?, account?, effects, events}}
    code 0 applied (or already so)   -4 payment not found   -1 a top-up without its wallet
        -12 channel, amount or currency differ from the channel order (nothing changed)
        -13 paid at the channel after the payment was closed here: no money is booked, the payment
            keeps its status, the late payment is recorded on it (late_channel_trade_no,
            late_paid_amount) with a payment.late_paid event, so it is never only in a log line
]]
--@include "includes/common.lua"
--@include "includes/risk.lua"

local cached = opCached(KEYS[2])
if cached then return cached end

local nowMs = tonumber(ARGV[2])
local pay = readPayment(KEYS[1])
if not pay then
  return opStore(KEYS[2], ARGV[1], { code = -4, effects = {}, events = {} })
end
if pay.channel ~= ARGV[3] then
  return opStore(KEYS[2], ARGV[1], { code = -12, payment = pay, effects = {}, events = {} })
end
local status = ARGV[4]

if status == 'succeeded' then
  if tonumber(ARGV[5]) ~= pay.channel_amount or ARGV[6] ~= pay.channel_currency then
    return opStore(KEYS[2], ARGV[1], { code = -12, payment = pay, effects = {}, events = {} })
  end
  if pay.status == 'succeeded' then
    return opStore(KEYS[2], ARGV[1], { code = 0, payment = pay, effects = {}, events = {} })
  end
  if pay.status ~= 'pending' then
    if (pay.late_channel_trade_no or '') ~= '' then
      return opStore(KEYS[2], ARGV[1], { code = -13, payment = pay, effects = {}, events = {} })
    end
    touchPayment(KEYS[1], pay, nowMs, { late_channel_trade_no = ARGV[7] ~= '' and ARGV[7] or 'unknown', late_paid_amount = tonumber(ARGV[5]) })
    return opStore(KEYS[2], ARGV[1], { code = -13, payment = pay, effects = {}, events = { 'payment.late_paid' } })
  end
  -- Half up of amount × fee_bps / 10,000, exact in doubles: amount × fee_bps can pass 2^53
  -- (amounts up to 10^12), so split amount = q × 10,000 + r; q × fee_bps and r × fee_bps are small.
  local q = math.floor(pay.amount / 10000)
  local r = pay.amount - q * 10000
  local fee = q * pay.fee_bps + math.floor((r * pay.fee_bps + 5000) / 10000)
  local effects, account = {}, nil
  if pay.kind == 'topup' then
    local wallet = readAccount(KEYS[4])
    -- The command named no wallet, or another one: refused, nothing changed (never a crash loop).
    if not wallet or KEYS[4] ~= ARGV[8] .. pay.account_id then
      return opStore(KEYS[2], ARGV[1], { code = -1, payment = pay, effects = {}, events = {} })
    end
    wallet.available = redis.call('HINCRBY', KEYS[4], 'available', pay.amount)
    redis.call('HINCRBY', KEYS[4], 'credited', pay.amount)
    effects[1] = { 'topup', pay.amount }
    account = accountView(pay.account_id, wallet)
  else
    effects[1] = { 'channel_capture', pay.amount }
  end
  if fee > 0 then effects[#effects + 1] = { 'fee', fee } end
  redis.call('ZREM', KEYS[3], pay.id)
  touchPayment(KEYS[1], pay, nowMs, {
    status = 'succeeded', amount_captured = pay.amount, fee = fee, channel_trade_no = ARGV[7],
  })
  return opStore(KEYS[2], ARGV[1], { code = 0, payment = pay, account = account, effects = effects, events = { 'payment.succeeded' } })
end

if pay.status ~= 'pending' then
  return opStore(KEYS[2], ARGV[1], { code = 0, payment = pay, effects = {}, events = {} })
end
local fields = { status = 'failed', failure_code = 'channel.payment_failed', failure_message = 'the channel reports the payment failed' }
local event = 'payment.failed'
if status == 'closed' then
  if nowMs >= pay.hold_expires_at_ms then
    fields = { status = 'expired' }
    event = 'payment.expired'
  else
    fields.failure_code, fields.failure_message = 'channel.order_closed', 'the channel closed the order unpaid'
  end
end
riskGiveBack(pay, pay.amount, nowMs, fields)
redis.call('ZREM', KEYS[3], pay.id)
touchPayment(KEYS[1], pay, nowMs, fields)
return opStore(KEYS[2], ARGV[1], { code = 0, payment = pay, effects = {}, events = { event } })
