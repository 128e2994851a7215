--[[
  Create a payment. For method "balance": hold the amount on the buyer's wallet (a pending
  transfer, as in TigerBeetle), or for capture "automatic" capture it at once (a single-phase
  transfer: effect 'sale', one event payment.succeeded). An unfunded hold is
  not an error: the payment is recorded as failed (balance.insufficient_funds), so the out_trade_no
  is spent and the storefront sees why.

  Risk rules (includes/risk.lua, docs/RISK.md) run here, in this order, atomically with the hold:
  blacklist, device, velocity, daily cap, then funds, then unusual hours. A refusal records the
  payment as failed with failure_code = the reason, moves no money and counts nowhere. A payment in
  the merchant's unusual hours is held all the same but answered requires_action (next_action
  verify) until paymentVerify; its capture mode is kept for that moment.

  A channel payment (method other than balance) holds nothing: it is recorded pending (channel
  '' until the engine has opened the channel order, engine/channels/desk.ts) and watched in
  KEYS[4], the merchant's channel watch set, from now + ARGV[22] ms (补单). The same risk rules
  run; unusual hours do not apply (the channel authenticates the buyer). A top-up (ARGV[21]) is a
  channel payment whose success credits the wallet KEYS[3]; a plain one passes the unused key.

  Input:
    KEYS[1] payment hash          pp:{m}:pay:<payment_id>
    KEYS[2] out_trade_no index    pp:{m}:otn:<out_trade_no>
    KEYS[3] account hash          pp:{m}:acct:<account_id>   (channel, not top-up: risk:unused)
    KEYS[4] open holds by deadline pp:{m}:holds:exp          (channel: pp:{m}:chan:watch)
    KEYS[5] op record             pp:{m}:op:<cmd_id>
    KEYS[6] risk settings          pp:{m}:risk:cfg                       (hash)
    KEYS[7] blacklist              pp:{m}:risk:bl                        (set)
    KEYS[8] user's day totals      pp:{m}:risk:day:<day>:u:<user>        (hash currency → minor units)
    KEYS[9] user's velocity log    pp:{m}:risk:vel:u:<user>              (zset payment id → ms)
    KEYS[10] device's day users    pp:{m}:risk:day:<day>:d:<device>      (set of user_ids)
             (KEYS[8..10] are pp:{m}:risk:unused when the buyer field they need is absent)
    KEYS[11] ingress idempotency record pp:{m}:idem:<sha256(key)>      (pp:{m}:risk:unused: none)
    ARGV[1] op TTL (s)        ARGV[2] now (ms)          ARGV[3] payment id    ARGV[4] merchant id
    ARGV[5] out_trade_no      ARGV[6] amount (minor)    ARGV[7] currency      ARGV[8] method
    ARGV[9] account id        ARGV[10] manual|automatic ARGV[11] hold TTL (ms)
    ARGV[12] scene            ARGV[13] subject          ARGV[14] buyer JSON   ARGV[15] metadata JSON
    ARGV[16] notify_url
    ARGV[17] buyer user_id ('' = absent)   ARGV[18] buyer device_id ('')   ARGV[19] buyer ip, canonical ('')
    ARGV[20] Asia/Shanghai day of ARGV[2] (the day in KEYS[8] and KEYS[10])
    ARGV[21] kind: payment | topup    ARGV[22] channel: first 补单 look after (ms)
    ARGV[23] command id (of KEYS[5])  ARGV[24] idempotency record TTL (s): how long a response is replayed

  The ingress's idempotency record (KEYS[11]) is completed here, in the call that decides the
  payment, when the record is still the running claim of this very command and the payment is a
  balance one (its answer is this op record, rendered; a channel payment's answer also carries the
  channel order, opened later): the ingress then writes no response of its own, and a replay renders
  this op record (ingress/http.ts). One write less per payment, and no response body kept in Redis
  for 24 h. A refusal (code < 0) is answered as an error, which the ingress stores itself.

  Output: {replayed, msgpack{code, payment?, account?, effects, events, existing?}, idempotency completed 0|1}
    code  0  payment created: authorized | succeeded | requires_action | pending | failed (risk.* or funds)
         -1  account not found            (nothing changed)
         -2  account currency differs     (nothing changed)
         -3  out_trade_no already used    (existing = that payment's id; nothing changed)
]]
--@include "includes/common.lua"
--@include "includes/risk.lua"
--@include "includes/idempotency.lua"

local cached = opCached(KEYS[5])
if cached then return cached end

local nowMs = tonumber(ARGV[2])
local amount = tonumber(ARGV[6])
local currency = ARGV[7]
local day = tonumber(ARGV[20])
if day ~= localDay(nowMs) then return redis.error_reply('ASSERT risk day does not match now') end

-- A payment id seen before (its op record expired or was lost with a Redis rebuild): report the
-- payment as it is, with no second effect.
local existingPay = readPayment(KEYS[1])
if existingPay then
  return opStore(KEYS[5], ARGV[1], { code = 0, payment = existingPay, effects = {}, events = {} })
end

local otnOwner = redis.call('GET', KEYS[2])
if otnOwner then
  return opStore(KEYS[5], ARGV[1], { code = -3, existing = otnOwner, effects = {}, events = {} })
end

local buyer = { user = ARGV[17], device = ARGV[18], ip = ARGV[19] }
local rk = { blacklist = KEYS[7], userDay = KEYS[8], velocity = KEYS[9], deviceDay = KEYS[10] }

local function store(pay)
  hsetAll(KEYS[1], pay)
  redis.call('SET', KEYS[2], pay.id)
end

if ARGV[8] ~= 'balance' then
  if ARGV[21] == 'topup' then
    local wallet = readAccount(KEYS[3])
    if not wallet then return opStore(KEYS[5], ARGV[1], { code = -1, effects = {}, events = {} }) end
    if wallet.currency ~= currency then return opStore(KEYS[5], ARGV[1], { code = -2, effects = {}, events = {} }) end
  end
  local pay = {
    id = ARGV[3], merchant_id = ARGV[4], out_trade_no = ARGV[5], amount = amount, currency = currency,
    amount_captured = 0, amount_refunded = 0, method = ARGV[8], channel = '', account_id = ARGV[9],
    scene = ARGV[12], subject = ARGV[13], buyer = ARGV[14], metadata = ARGV[15], notify_url = ARGV[16],
    status = 'pending', failure_code = '', failure_message = '', hold_amount = 0,
    hold_expires_at_ms = nowMs + tonumber(ARGV[11]),
    created_at_ms = nowMs, updated_at_ms = nowMs, version = 1,
    capture = 'automatic', risk_day = day, risk_cap_key = '', risk_counted = 0, kind = ARGV[21],
  }
  local settings = riskSettings(KEYS[6])
  local refused = riskRefusal(settings, rk, buyer, amount, currency, nowMs)
  local event = 'payment.pending'
  if refused then
    pay.status, pay.failure_code, pay.failure_message = 'failed', refused, RISK_MESSAGES[refused]
    event = 'payment.failed'
  else
    -- Counted while pending, so parallel top-ups cannot pass the daily cap together; given
    -- back when the channel order fails or expires (paymentChannelNotify).
    pay.risk_counted = riskRecord(settings, rk, buyer, amount, currency, nowMs, pay.id)
    if pay.risk_counted > 0 then pay.risk_cap_key = KEYS[8] end
    redis.call('ZADD', KEYS[4], nowMs + tonumber(ARGV[22]), pay.id)
  end
  store(pay)
  return opStore(KEYS[5], ARGV[1], { code = 0, payment = pay, effects = {}, events = { event } })
end

local acct = readAccount(KEYS[3])
if not acct then
  return opStore(KEYS[5], ARGV[1], { code = -1, effects = {}, events = {} })
end
if acct.currency ~= currency then
  return opStore(KEYS[5], ARGV[1], { code = -2, effects = {}, events = {} })
end

local pay = {
  id = ARGV[3], merchant_id = ARGV[4], out_trade_no = ARGV[5], amount = amount, currency = currency,
  amount_captured = 0, amount_refunded = 0, method = ARGV[8], channel = 'balance', account_id = ARGV[9],
  scene = ARGV[12], subject = ARGV[13], buyer = ARGV[14], metadata = ARGV[15], notify_url = ARGV[16],
  status = 'authorized', failure_code = '', failure_message = '', hold_amount = 0, hold_expires_at_ms = 0,
  created_at_ms = nowMs, updated_at_ms = nowMs, version = 1,
  capture = ARGV[10], risk_day = day, risk_cap_key = '', risk_counted = 0,
}
local effects, events = {}, {}
local settings = riskSettings(KEYS[6])
local refused = riskRefusal(settings, rk, buyer, amount, currency, nowMs)

if refused then
  pay.status = 'failed'
  pay.failure_code = refused
  pay.failure_message = RISK_MESSAGES[refused]
  events[1] = 'payment.failed'
elseif acct.available < amount then
  pay.status = 'failed'
  pay.failure_code = 'balance.insufficient_funds'
  pay.failure_message = 'the wallet does not hold enough available balance'
  events[1] = 'payment.failed'
else
  acct.available = redis.call('HINCRBY', KEYS[3], 'available', -amount)
  pay.risk_counted = riskRecord(settings, rk, buyer, amount, currency, nowMs, pay.id)
  if pay.risk_counted > 0 then pay.risk_cap_key = KEYS[8] end
  -- A pending transfer: available → held until captured, canceled or expired.
  local function hold()
    acct.held = redis.call('HINCRBY', KEYS[3], 'held', amount)
    effects[#effects + 1] = { 'hold', amount }
    pay.hold_amount = amount
    pay.hold_expires_at_ms = nowMs + tonumber(ARGV[11])
    redis.call('ZADD', KEYS[4], pay.hold_expires_at_ms, pay.id)
  end
  if inUnusualHours(localMinute(nowMs), settings.unusual_hours) then
    -- Held so that a verified payment cannot fail for lack of funds; it expires like any hold.
    pay.status = 'requires_action'
    hold()
    events[1] = 'payment.requires_action'
  elseif ARGV[10] == 'automatic' then
    -- Captured in the call that checked the funds, so never held: available → captured, and the
    -- ledger books one transfer (effect 'sale', engine/ledger/postings.ts), as TigerBeetle a single-phase one.
    redis.call('HINCRBY', KEYS[3], 'captured', amount)
    effects[#effects + 1] = { 'sale', amount }
    pay.status = 'succeeded'
    pay.amount_captured = amount
    -- One event: the payment was never authorized where anyone could see it (the answer already
    -- says succeeded), so there is no authorized transition to tell the merchant about (Stripe
    -- sends only payment_intent.succeeded for an automatic capture). Until scripts v7 it was
    -- payment.authorized then payment.succeeded; stored op records replay what they stored.
    events[1] = 'payment.succeeded'
  else
    hold()
    events[1] = 'payment.authorized'
  end
end
local bad = assertNonNegative(acct)
if bad then return bad end

store(pay)

local out = opStore(KEYS[5], ARGV[1], {
  code = 0, payment = pay, account = accountView(ARGV[9], acct), effects = effects, events = events,
})
out[3] = completeIdempotency(KEYS[11], ARGV[23], ARGV[24])
return out
