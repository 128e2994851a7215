--[[
  Shared helpers for every money script. Included once by the loader (scripts.ts).
  Results are tables packed with cmsgpack: integers stay integers (no float on the way back).
  Every script returns {replayed, packedResult}: replayed = 1 when the op id was seen before and
  the stored first result is returned unchanged, without a second effect.
]]

local PAYMENT_NUMERIC = {
  amount = true, amount_captured = true, amount_refunded = true, hold_amount = true,
  hold_expires_at_ms = true, created_at_ms = true, updated_at_ms = true, version = true,
  risk_day = true, risk_counted = true, channel_amount = true, fee_bps = true, fee = true, late_paid_amount = true,
}

local function opCached(opKey)
  local cached = redis.call('GET', opKey)
  if cached then return {1, cached} end
  return nil
end

local function opStore(opKey, ttlS, result)
  local packed = cmsgpack.pack(result)
  redis.call('SET', opKey, packed, 'EX', ttlS)
  return {0, packed}
end

local function readHash(key, numeric)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do
    local k, v = flat[i], flat[i + 1]
    if numeric[k] then t[k] = tonumber(v) else t[k] = v end
  end
  return t
end

local function readPayment(key)
  return readHash(key, PAYMENT_NUMERIC)
end

local ACCOUNT_NUMERIC = {
  available = true, held = true, credited = true, captured = true, refunded = true, created_at_ms = true,
}
local function readAccount(key)
  return readHash(key, ACCOUNT_NUMERIC)
end

local function accountView(accountId, acct)
  return { account_id = accountId, currency = acct.currency, available = acct.available, held = acct.held }
end

-- Programmer-error guard: a balance below zero means a bug, never an operating condition.
local function assertNonNegative(acct)
  if acct.available < 0 or acct.held < 0 then
    return redis.error_reply('ASSERT negative balance')
  end
  return nil
end

-- Write every field of a table into a hash, in one HSET.
local function hsetAll(key, t)
  local flat = {}
  for k, v in pairs(t) do
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  redis.call('HSET', key, unpack(flat))
end

-- Set payment fields and bump version/updated_at in one HSET.
local function touchPayment(key, pay, nowMs, fields)
  local flat = {}
  for k, v in pairs(fields) do
    pay[k] = v
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  pay.version = pay.version + 1
  pay.updated_at_ms = nowMs
  flat[#flat + 1] = 'version'
  flat[#flat + 1] = pay.version
  flat[#flat + 1] = 'updated_at_ms'
  flat[#flat + 1] = nowMs
  redis.call('HSET', key, unpack(flat))
end

-- Release (all or the rest of) a hold back to available.
local function releaseHold(acctKey, acct, amount)
  if amount > 0 then
    acct.held = redis.call('HINCRBY', acctKey, 'held', -amount)
    acct.available = redis.call('HINCRBY', acctKey, 'available', amount)
  end
end
