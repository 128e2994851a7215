--[[
  Open a wallet account. Opening an existing account in the same currency is a no-op that
  returns it (so a retried create is harmless); in another currency it is a conflict.

  Input:
    KEYS[1] account hash   KEYS[2] op record
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] account id   ARGV[4] currency

  Output: {replayed, msgpack{code, account?, effects, events}}
    code 0 created or already there   -7 exists in another currency (nothing changed)
]]
--@include "includes/common.lua"

local cached = opCached(KEYS[2])
if cached then return cached end

local acct = readAccount(KEYS[1])
if acct then
  if acct.currency ~= ARGV[4] then
    return opStore(KEYS[2], ARGV[1], { code = -7, account = accountView(ARGV[3], acct), effects = {}, events = {} })
  end
  return opStore(KEYS[2], ARGV[1], { code = 0, account = accountView(ARGV[3], acct), effects = {}, events = {} })
end
redis.call('HSET', KEYS[1], 'currency', ARGV[4], 'available', 0, 'held', 0, 'credited', 0, 'captured', 0,
  'refunded', 0, 'created_at_ms', ARGV[2])
return opStore(KEYS[2], ARGV[1], {
  code = 0, account = { account_id = ARGV[3], currency = ARGV[4], available = 0, held = 0 },
  effects = {}, events = { 'account.created' },
})
