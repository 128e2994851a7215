--[[
  Credit a wallet's available balance (an operator adjustment or a settled top-up).

  Input:
    KEYS[1] account hash   KEYS[2] op record
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] account id   ARGV[4] amount (minor)   ARGV[5] currency

  Output: {replayed, msgpack{code, account?, effects, events}}
    code 0 credited   -1 account not found   -2 currency differs (nothing changed)
]]
--@include "includes/common.lua"

local cached = opCached(KEYS[2])
if cached then return cached end

local acct = readAccount(KEYS[1])
if not acct then
  return opStore(KEYS[2], ARGV[1], { code = -1, effects = {}, events = {} })
end
if acct.currency ~= ARGV[5] then
  return opStore(KEYS[2], ARGV[1], { code = -2, effects = {}, events = {} })
end
local amount = tonumber(ARGV[4])
acct.available = redis.call('HINCRBY', KEYS[1], 'available', amount)
redis.call('HINCRBY', KEYS[1], 'credited', amount)
return opStore(KEYS[2], ARGV[1], {
  code = 0, account = accountView(ARGV[3], acct), effects = { { 'credit', amount } }, events = { 'account.credited' },
})
