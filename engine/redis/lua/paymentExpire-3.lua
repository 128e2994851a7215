--[[
  Expire a hold whose deadline has passed (TigerBeetle's timeout): release it in full. The hold of
  an authorized payment, or of one still waiting for its risk verification (requires_action). The
  released amount is given back to the buyer's daily risk total on the day it was counted.
  Sent by the engine's sweeper through the command stream, so it is ordered with the merchant's
  other commands and as durable as they are.

  Input:
    KEYS[1] payment hash   KEYS[2] open holds by deadline   KEYS[3] op record
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] account key prefix (pp:{m}:acct:)

  Output: {replayed, msgpack{code, payment?, account?, effects, events}}
    code 0 expired   -4 payment not found   -5 no longer holding (resolved first)
         -9 deadline not reached yet (nothing changed)
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
if pay.status ~= 'authorized' and pay.status ~= 'requires_action' then
  redis.call('ZREM', KEYS[2], pay.id)
  return opStore(KEYS[3], ARGV[1], { code = -5, payment = pay, effects = {}, events = {} })
end
if nowMs < pay.hold_expires_at_ms then
  -- Not stored: the sweeper may ask again once the deadline has passed.
  return {0, cmsgpack.pack({ code = -9, payment = pay, effects = {}, events = {} })}
end

local acctKey = ARGV[3] .. pay.account_id
return opStore(KEYS[3], ARGV[1], expireHold(KEYS[1], KEYS[2], acctKey, readAccount(acctKey), pay, nowMs, 0))
