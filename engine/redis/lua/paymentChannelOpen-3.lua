--[[
  Record the channel order of a pending channel payment (engine/channels/desk.ts opened it), or
  fail the payment when no route could open one. Only a pending payment without a channel
  changes: a second open (a redelivery, or the watcher racing the first open) reports the payment
  as it is, so the first channel chosen stays the payment's channel.

  Input:
    KEYS[1] payment hash   KEYS[2] op record   KEYS[3] channel watch set (pp:{m}:chan:watch)
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] 1 opened | 0 failed
    opened: ARGV[4] channel  ARGV[5] channel order id ('' = none)  ARGV[6] next_action JSON
            ARGV[7] channel amount (minor)  ARGV[8] channel currency  ARGV[9] fx rate ('' = none)
            ARGV[10] fx as-of ('')  ARGV[11] fee (basis points)
    failed: ARGV[4] failure code  ARGV[5] failure message

  Output: {replayed, msgpack{code, payment?, effects, events}}
    code 0 recorded, or nothing to record (payment no longer pending or already opened)
        -4 payment not found
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
if pay.status ~= 'pending' or pay.channel ~= '' then
  return opStore(KEYS[2], ARGV[1], { code = 0, payment = pay, effects = {}, events = {} })
end

if ARGV[3] == '1' then
  touchPayment(KEYS[1], pay, nowMs, {
    channel = ARGV[4], channel_order_id = ARGV[5], next_action = ARGV[6], channel_amount = tonumber(ARGV[7]),
    channel_currency = ARGV[8], fx_rate = ARGV[9], fx_as_of = ARGV[10], fee_bps = tonumber(ARGV[11]),
  })
  return opStore(KEYS[2], ARGV[1], { code = 0, payment = pay, effects = {}, events = { 'payment.pending' } })
end

local fields = { status = 'failed', failure_code = ARGV[4], failure_message = ARGV[5] }
riskGiveBack(pay, pay.amount, nowMs, fields)
redis.call('ZREM', KEYS[3], pay.id)
touchPayment(KEYS[1], pay, nowMs, fields)
return opStore(KEYS[2], ARGV[1], { code = 0, payment = pay, effects = {}, events = { 'payment.failed' } })
