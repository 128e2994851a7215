--[[
  Book what a channel answered about a pending refund of a channel payment (paymentRefund-4.lua
  recorded and reserved it): the answer to our refund call, to asking again (the watcher), or a
  verified refund callback. At most once per op id, and idempotent in effect: a refund that is no
  longer pending is left as it is, so the first answer decides. The channel must be the payment's
  and the currency its channel currency; the amount, when the channel states the single refund's
  amount, must be what we asked it to refund. A mismatch changes nothing.

  succeeded: the refund is succeeded and the money leaves through the channel: effect
             channel_refund (merchant:settlement → channel:<name>:clearing), event refund.succeeded.
  failed:    the refund is failed and its reservation given back (amount_refunded -= amount), so
             the amount can be refunded again; no money moved; event refund.failed.
  Both take the refund out of the watch set and bump the payment's version.

  Input:
    KEYS[1] payment hash   KEYS[2] refund hash   KEYS[3] op record   KEYS[4] channel refunds watch set
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] channel   ARGV[4] succeeded|failed
    ARGV[5] amount (channel minor units; '' = the channel did not state the single refund's)
    ARGV[6] currency (channel)   ARGV[7] refund id

  Output: {replayed, msgpack{code, payment?, refund?, effects, events}}
    code 0 applied (or already decided: nothing changed)   -4 payment or refund not found
        -12 the refund is not of this payment, or channel, amount or currency differ (nothing changed)
]]
--@include "includes/common.lua"

local REFUND_NUMERIC = { amount = true, created_at_ms = true }

local cached = opCached(KEYS[3])
if cached then return cached end

local nowMs = tonumber(ARGV[2])
if ARGV[4] ~= 'succeeded' and ARGV[4] ~= 'failed' then
  return redis.error_reply('ASSERT refund result must be succeeded or failed')
end
local pay = readPayment(KEYS[1])
local refund = readHash(KEYS[2], REFUND_NUMERIC)
if not pay or not refund then
  return opStore(KEYS[3], ARGV[1], { code = -4, payment = pay, effects = {}, events = {} })
end
-- What the channel was asked to refund: the refund's amount, or for a converted payment (refunded
-- in full only) what the buyer paid in the channel's currency.
local channelAmount = refund.amount
if pay.fx_rate ~= nil and pay.fx_rate ~= '' then channelAmount = pay.channel_amount end
if refund.payment_id ~= pay.id or pay.channel ~= ARGV[3] or ARGV[6] ~= pay.channel_currency
    or (ARGV[5] ~= '' and tonumber(ARGV[5]) ~= channelAmount) then
  return opStore(KEYS[3], ARGV[1], { code = -12, payment = pay, refund = refund, effects = {}, events = {} })
end
if refund.status ~= 'pending' then
  redis.call('ZREM', KEYS[4], ARGV[7])
  return opStore(KEYS[3], ARGV[1], { code = 0, payment = pay, refund = refund, effects = {}, events = {} })
end

if ARGV[4] == 'succeeded' then
  refund.status = 'succeeded'
  redis.call('HSET', KEYS[2], 'status', 'succeeded')
  redis.call('ZREM', KEYS[4], ARGV[7])
  touchPayment(KEYS[1], pay, nowMs, {})
  return opStore(KEYS[3], ARGV[1], {
    code = 0, payment = pay, refund = refund, effects = { { 'channel_refund', refund.amount } }, events = { 'refund.succeeded' },
  })
end
local left = pay.amount_refunded - refund.amount
if left < 0 then return redis.error_reply('ASSERT a failed refund would leave amount_refunded negative') end
refund.status = 'failed'
redis.call('HSET', KEYS[2], 'status', 'failed')
redis.call('ZREM', KEYS[4], ARGV[7])
touchPayment(KEYS[1], pay, nowMs, { amount_refunded = left })
return opStore(KEYS[3], ARGV[1], { code = 0, payment = pay, refund = refund, effects = {}, events = { 'refund.failed' } })
