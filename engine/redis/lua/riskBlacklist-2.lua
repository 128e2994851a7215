--[[
  Add an entry to, or remove one from, the merchant's blacklist (a set of `user:<user_id>`,
  `device:<device_id>`, `ip:<canonical ip>`). Sent through the command stream, so it is ordered
  with the merchant's payments, logged (event risk.blacklist_changed) and rebuildable.

  Input:
    KEYS[1] blacklist   pp:{m}:risk:bl
    KEYS[2] op record   pp:{m}:op:<cmd_id>
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3] add|remove   ARGV[4] user|device|ip
    ARGV[5] value        ARGV[6] the most entries the set may hold

  Output: {replayed, msgpack{code, at_ms, blacklist, effects, events}}
    code   0  done; blacklist = {action, kind, value, changed (1 = the set changed), size}; at_ms = now
         -20  the blacklist is full (nothing changed)
]]
--@include "includes/common.lua"

local cached = opCached(KEYS[2])
if cached then return cached end

local action, kind, value = ARGV[3], ARGV[4], ARGV[5]
if kind ~= 'user' and kind ~= 'device' and kind ~= 'ip' then return redis.error_reply('ASSERT unknown blacklist kind') end
local entry = kind .. ':' .. value
local changed
if action == 'add' then
  if redis.call('SISMEMBER', KEYS[1], entry) == 0 and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[6]) then
    return opStore(KEYS[2], ARGV[1], { code = -20, effects = {}, events = {} })
  end
  changed = redis.call('SADD', KEYS[1], entry)
elseif action == 'remove' then
  changed = redis.call('SREM', KEYS[1], entry)
else
  return redis.error_reply('ASSERT unknown blacklist action')
end

return opStore(KEYS[2], ARGV[1], {
  code = 0, at_ms = tonumber(ARGV[2]), effects = {}, events = { 'risk.blacklist_changed' },
  blacklist = { action = action, kind = kind, value = value, changed = changed, size = redis.call('SCARD', KEYS[1]) },
})
