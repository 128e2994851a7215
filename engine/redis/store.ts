// Typed wrappers over the Lua scripts: the only way the engine changes money in Redis.
// Each call is one EVALSHA; the actor issues a whole batch of them in one tick and ioredis sends
// them in one write (auto-pipelining), so a batch costs one round-trip and Redis runs them in order.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { unpackRaw } from '../protocol/codec.ts';
import { eventTypeSchema, accountSnapshotSchema, type AccountSnapshot, type EventType } from '../protocol/events.ts';
import type { CommandOf } from '../protocol/commands.ts';
import { merchantKeys } from './keys.ts';
import { registerScripts, SCRIPTS_VERSION } from './scripts.ts';
import { isScriptCode, ScriptCode } from './errors.ts';

const effectSchema = z.tuple([z.enum(['hold', 'release', 'capture', 'credit']), z.number().int().positive()]);
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
});
export type RawPayment = z.infer<typeof rawPaymentSchema>;

// cmsgpack packs an empty Lua table as an empty array or map; both mean "none".
const listOf = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.values(v) : v), z.array(item));

const resultSchema = z.object({
  code: z.number().int().refine(isScriptCode, 'unknown script code'),
  payment: rawPaymentSchema.optional(),
  account: accountSnapshotSchema.optional(),
  effects: listOf(effectSchema),
  events: listOf(eventTypeSchema),
  existing: z.string().optional(),
});

export type ScriptResult = {
  replayed: boolean;
  code: ScriptCode;
  payment: RawPayment | null;
  account: AccountSnapshot | null;
  effects: Effect[];
  events: EventType[];
  existing: string | null;
};

type Invoke = (...args: (string | number)[]) => Promise<[number, Buffer]>;

export class MoneyStore {
  readonly prefix: string;
  readonly opTtlS: number;
  private readonly redis: Redis;

  constructor(redis: Redis, opts: { prefix: string; opTtlS: number }) {
    this.redis = redis;
    this.prefix = opts.prefix;
    this.opTtlS = opts.opTtlS;
    registerScripts(redis);
  }

  keys(merchantId: string) {
    return merchantKeys(this.prefix, merchantId);
  }

  private async run(name: string, args: (string | number)[]): Promise<ScriptResult> {
    const fn = (this.redis as unknown as Record<string, Invoke>)[`${name}:${SCRIPTS_VERSION}Buffer`];
    if (!fn) throw new Error(`assertion: script ${name} not registered`);
    const reply = await fn.apply(this.redis, args);
    const [replayed, packed] = reply;
    const parsed = resultSchema.parse(unpackRaw(packed));
    return {
      replayed: replayed === 1,
      code: parsed.code as ScriptCode,
      payment: parsed.payment ?? null,
      account: parsed.account ?? null,
      effects: parsed.effects,
      events: parsed.events,
      existing: parsed.existing ?? null,
    };
  }

  createPayment(cmd: CommandOf<'payment.create'>, nowMs: number): Promise<ScriptResult> {
    const k = this.keys(cmd.merchant_id);
    if (cmd.account_id === undefined) throw new Error('assertion: balance payment without account_id');
    return this.run('paymentCreate', [
      k.payment(cmd.payment_id), k.outTradeNo(cmd.out_trade_no), k.account(cmd.account_id), k.holdsExpiring, k.op(cmd.cmd_id),
      this.opTtlS, nowMs, cmd.payment_id, cmd.merchant_id, cmd.out_trade_no, cmd.amount, cmd.currency, cmd.method,
      cmd.account_id, cmd.capture, cmd.hold_ttl_s * 1000, cmd.scene, cmd.subject ?? '',
      cmd.buyer ? JSON.stringify(cmd.buyer) : '', cmd.metadata ? JSON.stringify(cmd.metadata) : '', cmd.notify_url ?? '',
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

  async paymentIdByOutTradeNo(merchantId: string, outTradeNo: string): Promise<string | null> {
    return this.redis.get(this.keys(merchantId).outTradeNo(outTradeNo));
  }
}

const NUMERIC = new Set([
  'amount', 'amount_captured', 'amount_refunded', 'hold_amount', 'hold_expires_at_ms', 'created_at_ms', 'updated_at_ms', 'version',
]);
function numericFields(h: Record<string, string>): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(h)) out[k] = NUMERIC.has(k) ? Number(v) : v;
  return out;
}
