--[[
  Risk rules (MISSION §3.4), evaluated inside paymentCreate, atomically with the hold they guard:
  no other command of the merchant can run between the check and the hold. Reason codes and
  thresholds are documented in docs/RISK.md; engine/risk/rules.ts names the same constants.

  Settings hash pp:{m}:risk:cfg (written only by riskConfigure; absent field = default):
    cap:<CCY>            daily cap per buyer user_id in minor units; "0" = no cap for that currency
    velocity_max         payments per user per window; "0" = rule off
    velocity_window_s    the sliding window, seconds
    device_accounts_max  distinct user_ids per device per day; "0" = rule off
    unusual_hours        "from-to,from-to" in minutes of the local day, [from, to), wraps midnight

  The day is Asia/Shanghai (UTC+8, no DST): day = floor((nowMs + 8 h) / 1 day). Numbers are Lua
  doubles holding integers far below 2^53, and every division here is exact integer arithmetic.
]]

local RISK_DAY_MS = 86400000
local RISK_OFFSET_MS = 28800000
local RISK_COUNTER_TTL_S = 172800
local RISK_DEFAULT_CAPS = { CNY = 500000 }
local RISK_DEFAULT_VELOCITY_MAX = 20
local RISK_DEFAULT_VELOCITY_WINDOW_S = 60
local RISK_DEFAULT_DEVICE_ACCOUNTS_MAX = 3

local RISK_MESSAGES = {
  ['risk.blacklisted'] = 'the buyer (user, device or IP) is on the merchant blacklist',
  ['risk.device_multi_account'] = 'the device was used by too many accounts today',
  ['risk.velocity_exceeded'] = 'too many payments by this user in a short time',
  ['risk.daily_cap_exceeded'] = 'the payment would exceed the daily limit of this user',
}

local function localDay(nowMs)
  local t = nowMs + RISK_OFFSET_MS
  return (t - t % RISK_DAY_MS) / RISK_DAY_MS
end

local function localMinute(nowMs)
  local t = (nowMs + RISK_OFFSET_MS) % RISK_DAY_MS
  return (t - t % 60000) / 60000
end

local RISK_INT_FIELDS = { velocity_max = true, velocity_window_s = true, device_accounts_max = true }

-- The merchant's settings with the defaults applied.
local function riskSettings(cfgKey)
  local caps = {}
  for c, v in pairs(RISK_DEFAULT_CAPS) do caps[c] = v end
  local s = {
    caps = caps, velocity_max = RISK_DEFAULT_VELOCITY_MAX, velocity_window_s = RISK_DEFAULT_VELOCITY_WINDOW_S,
    device_accounts_max = RISK_DEFAULT_DEVICE_ACCOUNTS_MAX, unusual_hours = '',
  }
  local flat = redis.call('HGETALL', cfgKey)
  for i = 1, #flat, 2 do
    local k, v = flat[i], flat[i + 1]
    if string.sub(k, 1, 4) == 'cap:' then
      caps[string.sub(k, 5)] = tonumber(v)
    elseif k == 'unusual_hours' then
      s.unusual_hours = v
    elseif RISK_INT_FIELDS[k] then
      s[k] = tonumber(v)
    end
  end
  return s
end

-- Is this minute of the local day inside a window [from, to)? A window with from > to wraps midnight.
local function inUnusualHours(minute, windows)
  for from, to in string.gmatch(windows, '(%d+)-(%d+)') do
    from, to = tonumber(from), tonumber(to)
    if from < to then
      if minute >= from and minute < to then return true end
    elseif minute >= from or minute < to then
      return true
    end
  end
  return false
end

--[[
  The refusal reason for a payment, or nil. Reads only. Order: blacklist, device, velocity, daily cap
  (funds and unusual hours follow in paymentCreate). A rule whose input is absent is skipped.
    rk    = { blacklist, userDay, velocity, deviceDay } keys
    buyer = { user, device, ip }, '' when absent
]]
local function riskRefusal(s, rk, buyer, amount, currency, nowMs)
  if (buyer.user ~= '' and redis.call('SISMEMBER', rk.blacklist, 'user:' .. buyer.user) == 1)
    or (buyer.device ~= '' and redis.call('SISMEMBER', rk.blacklist, 'device:' .. buyer.device) == 1)
    or (buyer.ip ~= '' and redis.call('SISMEMBER', rk.blacklist, 'ip:' .. buyer.ip) == 1) then
    return 'risk.blacklisted'
  end
  if buyer.user == '' then return nil end
  if s.device_accounts_max > 0 and buyer.device ~= ''
    and redis.call('SISMEMBER', rk.deviceDay, buyer.user) == 0
    and redis.call('SCARD', rk.deviceDay) >= s.device_accounts_max then
    return 'risk.device_multi_account'
  end
  if s.velocity_max > 0 then
    local since = nowMs - s.velocity_window_s * 1000
    if redis.call('ZCOUNT', rk.velocity, string.format('(%d', since), '+inf') >= s.velocity_max then
      return 'risk.velocity_exceeded'
    end
  end
  local cap = s.caps[currency]
  if cap and cap > 0 then
    local total = tonumber(redis.call('HGET', rk.userDay, currency) or '0')
    if total + amount > cap then return 'risk.daily_cap_exceeded' end
  end
  return nil
end

--[[
  Counts an accepted payment (held, whether authorized, succeeded or requires_action): the user's
  daily total per currency (always, so a cap switched on mid-day sees the whole day), the velocity
  log and the device's users of the day (only while those rules are on, which bounds them).
  Returns the amount counted toward the daily total (0 without a user_id).
]]
local function riskRecord(s, rk, buyer, amount, currency, nowMs, paymentId)
  if buyer.user == '' then return 0 end
  redis.call('HINCRBY', rk.userDay, currency, amount)
  redis.call('EXPIRE', rk.userDay, RISK_COUNTER_TTL_S)
  if s.velocity_max > 0 then
    local windowMs = s.velocity_window_s * 1000
    redis.call('ZREMRANGEBYSCORE', rk.velocity, '-inf', string.format('%d', nowMs - windowMs))
    redis.call('ZADD', rk.velocity, string.format('%d', nowMs), paymentId)
    redis.call('PEXPIRE', rk.velocity, windowMs)
  end
  if s.device_accounts_max > 0 and buyer.device ~= '' then
    redis.call('SADD', rk.deviceDay, buyer.user)
    redis.call('EXPIRE', rk.deviceDay, RISK_COUNTER_TTL_S)
  end
  return amount
end

--[[
  Gives back to the buyer's daily total the released part of a counted hold (cancel, expiry, the
  unused rest of a partial capture), on the Asia/Shanghai day it was counted only: a later day
  starts from zero and never contained it. Sets fields.risk_counted for the payment update.
]]
local function riskGiveBack(pay, released, nowMs, fields)
  local counted = pay.risk_counted or 0
  local key = pay.risk_cap_key or ''
  if released <= 0 or counted <= 0 or key == '' or localDay(nowMs) ~= pay.risk_day then return 0 end
  local back = math.min(released, counted)
  fields.risk_counted = counted - back
  -- Lost with a Redis rebuild: nothing to give back to (and no key without a TTL is created).
  if redis.call('EXISTS', key) == 0 then return 0 end
  redis.call('HINCRBY', key, pay.currency, -back)
  return back
end
