--[[
  Change a merchant's risk thresholds (a partial update of its settings hash; the fields and their
  meaning are listed in includes/risk.lua). Sent through the command stream like a payment, so it is
  ordered with the merchant's payments, logged (event risk.configured) and rebuildable.

  Input:
    KEYS[1] risk settings   pp:{m}:risk:cfg
    KEYS[2] op record       pp:{m}:op:<cmd_id>
    ARGV[1] op TTL (s)   ARGV[2] now (ms)   ARGV[3..] field, value, field, value …

  Output: {replayed, msgpack{code, at_ms, settings, effects, events}}
    code 0 configured; settings = the settings in force afterwards, defaults applied; at_ms = now
]]
--@include "includes/common.lua"
--@include "includes/risk.lua"

local cached = opCached(KEYS[2])
if cached then return cached end

local KNOWN = { velocity_max = true, velocity_window_s = true, device_accounts_max = true, unusual_hours = true }
if #ARGV < 4 or #ARGV % 2 ~= 0 then return redis.error_reply('ASSERT riskConfigure needs field/value pairs') end
for i = 3, #ARGV, 2 do
  local f, v = ARGV[i], ARGV[i + 1]
  if not (KNOWN[f] or string.match(f, '^cap:%u%u%u$')) then return redis.error_reply('ASSERT unknown risk field ' .. f) end
  if f == 'unusual_hours' then
    if not string.match(v, '^[%d,-]*$') then return redis.error_reply('ASSERT malformed unusual_hours') end
  elseif not string.match(v, '^%d+$') then
    return redis.error_reply('ASSERT risk field ' .. f .. ' must be a non-negative integer')
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))

return opStore(KEYS[2], ARGV[1], { code = 0, at_ms = tonumber(ARGV[2]), settings = riskSettings(KEYS[1]), effects = {}, events = { 'risk.configured' } })
