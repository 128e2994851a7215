// Every Redis key of a merchant carries the {merchantId} hash tag, so all of a merchant's keys live
// in one Redis Cluster slot and each Lua script runs there unchanged. Ids are SAFE_ID-checked
// before they get here, so they cannot contain '{', '}' or ':'.
import { SAFE_ID } from '../protocol/ids.ts';
import { keyPart } from '../risk/rules.ts';

/**
 * How long an answered Idempotency-Key replays its first answer (Stripe: 24 h). The ingress keeps
 * the answer, or the engine completes the record and the op record is the answer, so op records
 * are kept at least this long (PEAKPAY_OP_TTL_S).
 */
export const IDEMPOTENCY_TTL_S = 24 * 3600;

function assertSafe(what: string, id: string): void {
  if (!SAFE_ID.test(id)) throw new Error(`assertion: ${what} is not a safe id: ${JSON.stringify(id)}`);
}

/**
 * A class, not an object literal of arrow functions: the engine builds one per command, and tsx
 * (esbuild keepNames) wraps every arrow function created in an object literal in a __name call,
 * which cost 2.4% of the engine's busy time in a uniform run (docs/BENCHMARKS.md). Methods live
 * once on the prototype.
 */
export class MerchantKeys {
  readonly base: string;
  /** Prefix the Lua scripts append an account id to (same hash tag). */
  readonly accountPrefix: string;
  /** Sorted set: payment id of each pending channel payment, scored by when to look at it next (ms): 补单. */
  readonly channelWatch: string;
  /** Sorted set: refund id of each pending refund of a channel payment, scored by when to ask the channel again (ms). */
  readonly channelRefunds: string;
  /** Sorted set: payment id of each open hold, scored by its deadline (ms). */
  readonly holdsExpiring: string;
  /** Hash: the merchant's ingress rate-limit token bucket (includes/rateLimit.lua); expires when full. */
  readonly rateLimit: string;
  /** Hash: the merchant's risk thresholds (fields in includes/risk.lua; absent = default). */
  readonly riskConfig: string;
  /** Set: the merchant's blacklist, members `user:<id>`, `device:<id>`, `ip:<canonical ip>`. */
  readonly riskBlacklist: string;
  /** Never written: stands in the KEYS of paymentCreate for a rule whose buyer field is absent. */
  readonly riskUnused: string;

  constructor(prefix: string, merchantId: string) {
    assertSafe('merchantId', merchantId);
    const base = `${prefix}:{${merchantId}}:`;
    this.base = base;
    this.accountPrefix = `${base}acct:`;
    this.channelWatch = `${base}chan:watch`;
    this.channelRefunds = `${base}chan:refunds`;
    this.holdsExpiring = `${base}holds:exp`;
    this.rateLimit = `${base}rl`;
    this.riskConfig = `${base}risk:cfg`;
    this.riskBlacklist = `${base}risk:bl`;
    this.riskUnused = `${base}risk:unused`;
  }

  /** `<base><part>:<id>` for an id that must be a safe id (it comes from a command or a request). */
  private checked(what: string, part: string, id: string): string {
    assertSafe(what, id);
    return `${this.base}${part}:${id}`;
  }

  /** Hash: currency, available, held, credited, captured, refunded, created_at_ms. */
  account(accountId: string): string {
    return this.checked('accountId', 'acct', accountId);
  }
  /** Hash: the payment record (see includes/payment.lua for the fields). */
  payment(paymentId: string): string {
    return this.checked('paymentId', 'pay', paymentId);
  }
  /** Hash: a refund (id, payment_id, account_id ('' for a channel refund), amount, currency, status, reason, created_at_ms); no TTL. */
  refund(refundId: string): string {
    return this.checked('refundId', 'refund', refundId);
  }
  /** String: out_trade_no → payment id; no TTL (unique per merchant for ever). */
  outTradeNo(outTradeNo: string): string {
    return `${this.base}otn:${outTradeNo}`;
  }
  /** String: the stored first result of an op (command) id, msgpack; TTL = op retention. */
  op(opId: string): string {
    return this.checked('opId', 'op', opId);
  }
  /** String: JSON {cmd_id, payment} of a create the ingress answered 202 before the engine decided it (ingress/queued.ts). */
  queued(paymentId: string): string {
    return this.checked('paymentId', 'queued', paymentId);
  }
  /** String: the payment id of the first create answered 202 for an out_trade_no, until the engine decides (ingress/queued.ts). */
  queuedOutTradeNo(outTradeNo: string): string {
    return `${this.base}queued:otn:${outTradeNo}`;
  }
  /** Hash: an ingress idempotency record (includes/idempotency.lua); TTL IDEMPOTENCY_TTL_S once answered. */
  idempotency(keyHash: string): string {
    return `${this.base}idem:${keyHash}`;
  }
  /** String: a nonce seen in the last 10 minutes. */
  nonce(nonce: string): string {
    return `${this.base}nonce:${nonce}`;
  }
  /** Hash: a buyer's counted (held, not given back) amounts of one Asia/Shanghai day, by currency; 2-day TTL. */
  riskUserDay(day: number, userId: string): string {
    return `${this.base}risk:day:${day}:u:${keyPart(userId)}`;
  }
  /** Sorted set: a buyer's recent payment ids scored by creation time (ms): the sliding velocity window. */
  riskUserVelocity(userId: string): string {
    return `${this.base}risk:vel:u:${keyPart(userId)}`;
  }
  /** Set: the user_ids that paid from a device in one Asia/Shanghai day; 2-day TTL. */
  riskDeviceDay(day: number, deviceId: string): string {
    return `${this.base}risk:day:${day}:d:${keyPart(deviceId)}`;
  }
}

export const merchantKeys = (prefix: string, merchantId: string): MerchantKeys => new MerchantKeys(prefix, merchantId);

/**
 * Keys of a client address (the ingress's per-IP rate limit), each under its own {ip:…} hash tag:
 * no merchant is known yet when it is checked. The address comes canonical (ingress/rate-limit.ts).
 */
export function clientKeys(prefix: string, address: string) {
  if (!/^[0-9a-f.:/]{2,45}$/.test(address)) throw new Error(`assertion: not a canonical address: ${JSON.stringify(address)}`);
  return {
    /** Hash: the address's token bucket (includes/rateLimit.lua); expires when full. */
    rateLimit: `${prefix}:{ip:${address}}:rl`,
  };
}
