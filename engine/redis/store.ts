// Typed wrappers over the Lua scripts: the only way the engine changes money in Redis.
// Each call is one EVALSHA; the actor issues a whole batch of them in one tick and ioredis sends
// them in one write (auto-pipelining), so a batch costs one round-trip and Redis runs them in order.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { unpackRaw } from '../protocol/codec.ts';
import {
  eventTypeSchema, accountSnapshotSchema, paymentRecordSchema, type AccountSnapshot, type EventType, type PaymentRecord,
} from '../protocol/events.ts';
import type { CommandOf } from '../protocol/commands.ts';
import { IDEMPOTENCY_TTL_S, merchantKeys } from './keys.ts';
import { registerScripts, SCRIPTS_VERSION } from './scripts.ts';
import { isScriptCode, ScriptCode } from './errors.ts';
import type { LuaMetrics } from '../metrics.ts';
import { BLACKLIST_ENTRIES_MAX, canonicalIp, shanghaiDay } from '../risk/rules.ts';
import {
  blacklistChangeSchema, effectiveFromLua, luaRiskSettingsSchema, settingsToFields, type RiskChange,
} from '../risk/settings.ts';

/** sale: an automatic capture, held and captured in the same script (one transfer, engine/ledger/postings.ts). */
export const EFFECT_KINDS = ['hold', 'release', 'capture', 'sale', 'credit', 'refund', 'channel_capture', 'topup', 'fee', 'channel_refund'] as const;
const effectSchema = z.tuple([z.enum(EFFECT_KINDS), z.number().int().positive()]);
export type Effect = z.infer<typeof effectSchema>;

/** The payment hash as Lua keeps it (see includes/common.lua). */
export const rawPaymentSchema = z.object({
  id: z.string(),
  merchant_id: z.string(),
  out_trade_no: z.string(),
  amount: z.number().int(),
  currency: z.string(),
  amount_captured: z.number().int(),
  amount_refunded: z.number().int(),
  method: z.string(),
  channel: z.string(),
  account_id: z.string(),
  scene: z.string(),
  subject: z.string(),
  buyer: z.string(),
  metadata: z.string(),
  notify_url: z.string(),
  status: z.string(),
  failure_code: z.string(),
  failure_message: z.string(),
  hold_amount: z.number().int(),
  hold_expires_at_ms: z.number().int(),
  created_at_ms: z.number().int(),
  updated_at_ms: z.number().int(),
  version: z.number().int(),
  // Channel payments (absent on records written before channels existed, and on balance payments).
  kind: z.enum(['payment', 'topup']).default('payment'),
  channel_order_id: z.string().default(''),
  next_action: z.string().default(''),
  channel_amount: z.number().int().default(0),
  channel_currency: z.string().default(''),
  fx_rate: z.string().default(''),
  fx_as_of: z.string().default(''),
  fee_bps: z.number().int().default(0),
  fee: z.number().int().default(0),
  channel_trade_no: z.string().default(''),
});
export type RawPayment = z.infer<typeof rawPaymentSchema>;
/** The channel fields of a record that has none (a balance payment). */
export const NO_CHANNEL_FIELDS = {
  kind: 'payment', channel_order_id: '', next_action: '', channel_amount: 0, channel_currency: '', fx_rate: '', fx_as_of: '',
  fee_bps: 0, fee: 0, channel_trade_no: '',
} as const satisfies Partial<RawPayment>;

/**
 * The refund hash as paymentRefund-4.lua keeps it (pp:{m}:refund:<refund_id>); refundChannelResult-4.lua
 * changes only the status of a channel refund (account_id '': no wallet is involved).
 */
export const rawRefundSchema = z.object({
  id: z.string(),
  merchant_id: z.string(),
  payment_id: z.string(),
  account_id: z.string(),
  amount: z.number().int(),
  currency: z.string(),
  status: z.string(),
  reason: z.string(),
  created_at_ms: z.number().int(),
});
export type RawRefund = z.infer<typeof rawRefundSchema>;

// cmsgpack packs an empty Lua table as an empty array or map; both mean "none".
const listOf = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.values(v) : v), z.array(item));

const resultSchema = z.object({
  code: z.number().int().refine(isScriptCode, 'unknown script code'),
  payment: rawPaymentSchema.optional(),
  account: accountSnapshotSchema.optional(),
  refund: rawRefundSchema.optional(),
  effects: listOf(effectSchema),
  events: listOf(eventTypeSchema),
  existing: z.string().optional(),
  settings: luaRiskSettingsSchema.optional(),
  at_ms: z.number().int().positive().optional(),
  blacklist: blacklistChangeSchema.extend({ changed: z.number().int().min(0).max(1) }).optional(),
});

export type ScriptResult = {
  replayed: boolean;
  /** paymentCreate-11 completed the ingress's idempotency record: its answer is this op record. */
  idempotencyCompleted?: true;
  code: ScriptCode;
  payment: RawPayment | null;
  account: AccountSnapshot | null;
  /** paymentRefund: the refund it made, or the one its refund id already named; refundChannelResult: the refund after it. */
  refund?: RawRefund;
  effects: Effect[];
  events: EventType[];
  existing: string | null;
  /** What a risk command changed (riskConfigure, riskBlacklist), and when (the first time). */
  risk?: RiskChange;
  atMs?: number;
  /**
   * The payment hash as the script returned it, every field (`payment` keeps only the fields
   * rawPaymentSchema names): what events carry so that Redis can be rebuilt exactly (engine/rebuild).
   */
  paymentRecord?: PaymentRecord;
};

/** A script's answer, validated: `packed` is its op record (msgpack). */
function resultOf(replayed: boolean, packed: Buffer, idempotencyCompleted: boolean): ScriptResult {
  const raw = unpackRaw(packed);
  const parsed = resultSchema.parse(raw);
  return {
    replayed,
    ...(idempotencyCompleted && { idempotencyCompleted: true }),
    code: parsed.code as ScriptCode,
    payment: parsed.payment ?? null,
    account: parsed.account ?? null,
    ...(parsed.refund && { refund: parsed.refund }),
    effects: parsed.effects,
    events: parsed.events,
    existing: parsed.existing ?? null,
    ...(parsed.at_ms !== undefined && { atMs: parsed.at_ms }),
    ...(parsed.payment && { paymentRecord: paymentRecordSchema.parse((raw as { payment: unknown }).payment) }),
    ...(parsed.settings && { risk: { settings: effectiveFromLua(parsed.settings) } }),
    ...(parsed.blacklist && { risk: { blacklist: { ...parsed.blacklist, changed: parsed.blacklist.changed === 1 } } }),
  };
}

/** paymentCreate-11 answers a third element: whether it completed the ingress's idempotency record. */
type Invoke = (...args: (string | number)[]) => Promise<[number, Buffer, number?]>;

export class MoneyStore {
  readonly prefix: string;
  readonly opTtlS: number;
  private readonly redis: Redis;
  private readonly lua: LuaMetrics | null;

  constructor(redis: Redis, opts: { prefix: string; opTtlS: number; metrics?: LuaMetrics }) {
    this.redis = redis;
    this.prefix = opts.prefix;
    this.opTtlS = opts.opTtlS;
    this.lua = opts.metrics ?? null;
    registerScripts(redis);
  }

  keys(merchantId: string) {
    return merchantKeys(this.prefix, merchantId);
  }

  private async run(name: string, args: (string | number)[]): Promise<ScriptResult> {
    if (!this.lua) return this.runScript(name, args);
    this.lua.calls.labels(name).inc();
    try {
      return await this.runScript(name, args);
    } catch (err) {
      this.lua.errors.labels(name).inc();
      throw err;
    }
  }

  private async runScript(name: string, args: (string | number)[]): Promise<ScriptResult> {
    const fn = (this.redis as unknown as Record<string, Invoke>)[`${name}:${SCRIPTS_VERSION}Buffer`];
    if (!fn) throw new Error(`assertion: script ${name} not registered`);
    const [replayed, packed, idempotencyCompleted] = await fn.apply(this.redis, args);
    return resultOf(replayed === 1, packed, idempotencyCompleted === 1);
  }

  /**
   * The stored first result of a command (its op record), as the script answered it then; null
   * when there is none (never applied, or expired). For the ingress's replay of an Idempotency-Key
   * the engine completed (paymentCreate-11).
   */
  async readOpResult(merchantId: string, cmdId: string): Promise<ScriptResult | null> {
    const packed = await this.redis.getBuffer(this.keys(merchantId).op(cmdId));
    return packed === null ? null : resultOf(true, packed, false);
  }

  /** channelWatchMs: for a channel payment, when the watcher (补单) first looks at it. */
  createPayment(cmd: CommandOf<'payment.create'>, nowMs: number, channelWatchMs = 0): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    const isChannel = cmd.method !== 'balance';
    const kind = cmd.kind ?? 'payment';
    if (!isChannel && cmd.account_id === undefined) throw new Error('assertion: balance payment without account_id');
    if (kind === 'topup' && (!isChannel || cmd.account_id === undefined)) throw new Error('assertion: top-up needs a channel and a wallet');
    const walletKey = cmd.account_id !== undefined && (!isChannel || kind === 'topup') ? k.account(cmd.account_id) : k.riskUnused;
    // Risk keys of the buyer (includes/risk.lua); a rule whose input is absent gets the unused key.
    const day = shanghaiDay(nowMs);
    const user = cmd.buyer?.user_id ?? '';
    const device = cmd.buyer?.device_id ?? '';
    const ip = cmd.buyer?.ip === undefined ? '' : canonicalIp(cmd.buyer.ip);
    return this.run('paymentCreate', [
      k.payment(cmd.payment_id), k.outTradeNo(cmd.out_trade_no), walletKey, isChannel ? k.channelWatch : k.holdsExpiring, k.op(cmd.cmd_id),
      k.riskConfig, k.riskBlacklist,
      user === '' ? k.riskUnused : k.riskUserDay(day, user),
      user === '' ? k.riskUnused : k.riskUserVelocity(user),
      device === '' ? k.riskUnused : k.riskDeviceDay(day, device),
      cmd.idempotency_key_sha256 === undefined ? k.riskUnused : k.idempotency(cmd.idempotency_key_sha256),
      this.opTtlS, nowMs, cmd.payment_id, cmd.merchant_id, cmd.out_trade_no, cmd.amount, cmd.currency, cmd.method,
      cmd.account_id ?? '', cmd.capture, cmd.hold_ttl_s * 1000, cmd.scene, cmd.subject ?? '',
      cmd.buyer ? JSON.stringify(cmd.buyer) : '', cmd.metadata ? JSON.stringify(cmd.metadata) : '', cmd.notify_url ?? '',
      user, device, ip, day, kind, channelWatchMs, cmd.cmd_id, IDEMPOTENCY_TTL_S,
    ]);
  }

  channelOpen(cmd: CommandOf<'payment.channel_open'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    const r = cmd.result;
    const tail = r.ok
      ? [1, r.channel, r.channel_order_id ?? '', JSON.stringify(r.next_action), r.channel_amount, r.channel_currency, r.fx_rate ?? '', r.fx_as_of ?? '', r.fee_bps]
      : [0, r.code, r.message];
    return this.run('paymentChannelOpen', [k.payment(cmd.payment_id), k.op(cmd.cmd_id), k.channelWatch, this.opTtlS, nowMs, ...tail]);
  }

  channelNotify(cmd: CommandOf<'payment.channel_notify'>, nowMs: number): Promise<ScriptResult> {
    const walletId = cmd.wallet_id;
    const k = this.keys(cmd.merchant_id);
    return this.run('paymentChannelNotify', [
      k.payment(cmd.payment_id), k.op(cmd.cmd_id), k.channelWatch, walletId ? k.account(walletId) : k.riskUnused,
      this.opTtlS, nowMs, cmd.channel, cmd.status, cmd.amount, cmd.currency, cmd.channel_trade_no ?? '', k.accountPrefix,
    ]);
  }

  verifyPayment(cmd: CommandOf<'payment.verify'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    return this.run('paymentVerify', [k.payment(cmd.payment_id), k.holdsExpiring, k.op(cmd.cmd_id), this.opTtlS, nowMs, k.accountPrefix]);
  }

  configureRisk(cmd: CommandOf<'risk.configure'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    return this.run('riskConfigure', [k.riskConfig, k.op(cmd.cmd_id), this.opTtlS, nowMs, ...settingsToFields(cmd.settings)]);
  }

  changeBlacklist(cmd: CommandOf<'risk.blacklist'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    const value = cmd.kind === 'ip' ? canonicalIp(cmd.value) : cmd.value;
    return this.run('riskBlacklist', [
      k.riskBlacklist, k.op(cmd.cmd_id), this.opTtlS, nowMs, cmd.action, cmd.kind, value, BLACKLIST_ENTRIES_MAX,
    ]);
  }

  capturePayment(cmd: CommandOf<'payment.capture'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    return this.run('paymentCapture', [
      k.payment(cmd.payment_id), k.holdsExpiring, k.op(cmd.cmd_id), this.opTtlS, nowMs, cmd.amount ?? 0, k.accountPrefix,
    ]);
  }

  cancelPayment(cmd: CommandOf<'payment.cancel'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    return this.run('paymentCancel', [k.payment(cmd.payment_id), k.holdsExpiring, k.op(cmd.cmd_id), this.opTtlS, nowMs, k.accountPrefix]);
  }

  expirePayment(cmd: CommandOf<'payment.expire'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    return this.run('paymentExpire', [k.payment(cmd.payment_id), k.holdsExpiring, k.op(cmd.cmd_id), this.opTtlS, nowMs, k.accountPrefix]);
  }

  /** channelRefundWatchMs: for a refund of a channel payment, when the watcher first asks the channel again. */
  refundPayment(cmd: CommandOf<'payment.refund'>, nowMs: number, channelRefundWatchMs = 0): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    return this.run('paymentRefund', [
      k.payment(cmd.payment_id), k.refund(cmd.refund_id), k.op(cmd.cmd_id), k.channelRefunds,
      this.opTtlS, nowMs, cmd.refund_id, cmd.amount, cmd.reason ?? '', k.accountPrefix, nowMs + channelRefundWatchMs,
    ]);
  }

  refundChannelResult(cmd: CommandOf<'refund.channel_result'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    return this.run('refundChannelResult', [
      k.payment(cmd.payment_id), k.refund(cmd.refund_id), k.op(cmd.cmd_id), k.channelRefunds,
      this.opTtlS, nowMs, cmd.channel, cmd.status, cmd.amount ?? '', cmd.currency, cmd.refund_id,
    ]);
  }

  createAccount(cmd: CommandOf<'account.create'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    return this.run('accountCreate', [k.account(cmd.account_id), k.op(cmd.cmd_id), this.opTtlS, nowMs, cmd.account_id, cmd.currency]);
  }

  creditAccount(cmd: CommandOf<'account.credit'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    return this.run('accountCredit', [
      k.account(cmd.account_id), k.op(cmd.cmd_id), this.opTtlS, nowMs, cmd.account_id, cmd.amount, cmd.currency,
    ]);
  }

  async readPayment(merchantId: string, paymentId: string): Promise<RawPayment | null> {
    const h = await this.redis.hgetall(this.keys(merchantId).payment(paymentId));
    if (Object.keys(h).length === 0) return null;
    return rawPaymentSchema.parse(numericFields(h));
  }

  async readAccount(merchantId: string, accountId: string): Promise<AccountSnapshot | null> {
    const h = await this.redis.hgetall(this.keys(merchantId).account(accountId));
    if (h.currency === undefined) return null;
    return accountSnapshotSchema.parse({ account_id: accountId, currency: h.currency, available: Number(h.available), held: Number(h.held) });
  }

  async readRefund(merchantId: string, refundId: string): Promise<RawRefund | null> {
    const h = await this.redis.hgetall(this.keys(merchantId).refund(refundId));
    if (h.id === undefined) return null;
    return rawRefundSchema.parse({ ...h, amount: Number(h.amount), created_at_ms: Number(h.created_at_ms) });
  }

  async paymentIdByOutTradeNo(merchantId: string, outTradeNo: string): Promise<string | null> {
    return this.redis.get(this.keys(merchantId).outTradeNo(outTradeNo));
  }
}

const NUMERIC = new Set([
  'channel_amount', 'fee_bps', 'fee',
  'amount', 'amount_captured', 'amount_refunded', 'hold_amount', 'hold_expires_at_ms', 'created_at_ms', 'updated_at_ms', 'version',
]);
function numericFields(h: Record<string, string>): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(h)) out[k] = NUMERIC.has(k) ? Number(v) : v;
  return out;
}
