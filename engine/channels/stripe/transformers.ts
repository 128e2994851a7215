// Pure mapping between our channel contract and Stripe's wire: amounts (ISO 4217 minor units ↔
// Stripe's unit of each currency), the Checkout Session we open, every Stripe status to ours by
// exhaustive switches, error answers to ChannelErrorCode, balance transactions to bill lines,
// and the form encoding of requests. No I/O here; adapter.ts does the HTTP.
import { ISO_MINOR_EXPONENT, divRoundHalfUp } from '../fx.ts';
import type { BillLine, ChannelErrorCode, ChannelOrderRequest, ChannelOrderState, ChannelOrderStatus, ChannelRefundStatus } from '../types.ts';
import {
  STRIPE_PAYMENT_INTENT_STATUSES,
  STRIPE_REFUND_STATUSES,
  STRIPE_SESSION_PAYMENT_STATUSES,
  STRIPE_SESSION_STATUSES,
  type StripeBalanceTransaction,
  type StripeCheckoutSession,
  type StripeCheckoutSessionCreate,
  type StripeErrorBody,
  type StripePaymentIntent,
  type StripePaymentIntentStatus,
  type StripeRefundStatus,
  type StripeSessionPaymentStatus,
  type StripeSessionStatus,
} from './wire.ts';

/** A Stripe value we cannot map (unknown status, amount not representable, missing field). */
export class StripeMappingError extends Error {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'StripeMappingError';
  }
}
export const isStripeMappingError = (e: unknown): e is StripeMappingError => e instanceof StripeMappingError;

// ---------------------------------------------------------------------------------------------
// Amounts. Stripe takes integers in "the currency's smallest unit", with documented exceptions
// (https://docs.stripe.com/currencies): its zero-decimal list, which includes currencies whose
// ISO exponent is not 0 (MGA); ISK, which ISO gives 0 decimals but Stripe keeps two-decimal and
// whole-krona only (amount divisible by 100); three-decimal currencies, whose last digit must be
// 0. HUF and TWD are two-decimal for charges (their zero-decimal rule is about payouts only).

/** Stripe's zero-decimal currencies. */
export const STRIPE_ZERO_DECIMAL = new Set(['BIF', 'CLP', 'DJF', 'GNF', 'JPY', 'KMF', 'KRW', 'MGA', 'PYG', 'RWF', 'UGX', 'VND', 'VUV', 'XAF', 'XOF', 'XPF']);
/** Stripe's three-decimal currencies: the amount's last digit must be 0. */
export const STRIPE_THREE_DECIMAL = new Set(['BHD', 'JOD', 'KWD', 'OMR', 'TND']);

export function stripeExponent(currency: string): number {
  if (STRIPE_ZERO_DECIMAL.has(currency)) return 0;
  if (STRIPE_THREE_DECIMAL.has(currency)) return 3;
  return 2; // every other currency, ISK included (two-decimal with whole units only)
}

function isoExponent(currency: string): number {
  const e = Object.hasOwn(ISO_MINOR_EXPONENT, currency) ? ISO_MINOR_EXPONENT[currency] : undefined;
  if (e === undefined) throw new StripeMappingError(`unsupported currency ${JSON.stringify(currency)}`);
  return e;
}

/** Our currency code → Stripe's (lower-case). */
export function toStripeCurrency(currency: string): string {
  isoExponent(currency);
  return currency.toLowerCase();
}

/** Stripe's currency code → ours (upper-case ISO 4217), refusing currencies we have no exponent for. */
export function fromStripeCurrency(currency: string): string {
  const c = currency.toUpperCase();
  isoExponent(c);
  return c;
}

/** Integer minor units (ISO 4217 exponent) → Stripe's amount; refuses what Stripe cannot charge. */
export function toStripeAmount(amount: number, currency: string): number {
  if (!Number.isSafeInteger(amount) || amount <= 0) throw new StripeMappingError(`amount must be a positive integer of minor units, got ${String(amount)}`);
  const shift = stripeExponent(currency) - isoExponent(currency);
  let out: number;
  if (shift >= 0) {
    out = amount * 10 ** shift;
  } else {
    const div = 10 ** -shift;
    if (amount % div !== 0) throw new StripeMappingError(`${currency} ${amount} is not a whole amount in Stripe's unit (multiple of ${div} needed)`);
    out = amount / div;
  }
  if (!Number.isSafeInteger(out)) throw new StripeMappingError(`${currency} ${amount} is too large`);
  if (currency === 'ISK' && out % 100 !== 0) throw new StripeMappingError('ISK amounts must be whole krona');
  if (STRIPE_THREE_DECIMAL.has(currency) && out % 10 !== 0) throw new StripeMappingError(`${currency} amounts must end in 0 at Stripe (got ${out})`);
  return out;
}

/** Stripe's amount → integer minor units (ISO 4217 exponent); refuses anything not exactly representable. */
export function fromStripeAmount(stripeAmount: number, currency: string): number {
  if (!Number.isSafeInteger(stripeAmount) || stripeAmount < 0) throw new StripeMappingError(`Stripe amount must be a non-negative integer, got ${String(stripeAmount)}`);
  const shift = stripeExponent(currency) - isoExponent(currency);
  if (shift <= 0) {
    const out = stripeAmount * 10 ** -shift;
    if (!Number.isSafeInteger(out)) throw new StripeMappingError(`${currency} ${stripeAmount} is too large`);
    return out;
  }
  const div = 10 ** shift;
  if (stripeAmount % div !== 0) throw new StripeMappingError(`${currency} ${stripeAmount} (Stripe's unit) is not a whole number of minor units`);
  return stripeAmount / div;
}

// ---------------------------------------------------------------------------------------------
// The Checkout Session we open for a payment.

export const OUT_TRADE_NO_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** Stripe lets a Checkout Session live 30 min … 24 h from its creation. */
export const SESSION_TTL_MIN_MS = 30 * 60_000;
export const SESSION_TTL_MAX_MS = 24 * 3600_000;
/** Slack for the time between our clock and Stripe's creation of the session. */
export const SESSION_TTL_MARGIN_MS = 60_000;
export const PRODUCT_NAME_CHARS_MAX = 250;

export type SessionOptions = {
  success_url: string;
  cancel_url?: string | undefined;
  payment_method_types?: string[] | undefined;
};

/**
 * Stripe's expires_at for a payment that expires at `expiresAtMs`. A retried create must send the
 * same parameters (its Idempotency-Key is derived from out_trade_no), so the value depends on the
 * payment's expiry, not on the clock, except near Stripe's bounds: an expiry sooner than Stripe's
 * 30 min minimum becomes expiry + 31 min (the engine closes the session at its own expiry), and
 * one past 24 h is capped.
 */
export function sessionExpiresAtS(expiresAtMs: number, nowMs: number): number {
  if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs <= nowMs) throw new StripeMappingError('the payment has already expired');
  let at = expiresAtMs;
  if (at - nowMs < SESSION_TTL_MIN_MS + SESSION_TTL_MARGIN_MS) at = expiresAtMs + SESSION_TTL_MIN_MS + SESSION_TTL_MARGIN_MS;
  at = Math.min(at, nowMs + SESSION_TTL_MAX_MS - SESSION_TTL_MARGIN_MS);
  return Math.ceil(at / 1000);
}

export function sessionCreateOf(req: ChannelOrderRequest, opts: SessionOptions, nowMs: number): StripeCheckoutSessionCreate {
  if (!OUT_TRADE_NO_RE.test(req.out_trade_no)) throw new StripeMappingError('out_trade_no must be 1-64 of [A-Za-z0-9_-]');
  if (req.scene === 'mini_program') throw new StripeMappingError('Stripe Checkout is a web page: it cannot run inside a WeChat mini program');
  const name = [...(req.subject.trim() || req.out_trade_no)].slice(0, PRODUCT_NAME_CHARS_MAX).join('');
  const body: StripeCheckoutSessionCreate = {
    mode: 'payment',
    line_items: [{ quantity: 1, price_data: { currency: toStripeCurrency(req.currency), unit_amount: toStripeAmount(req.amount, req.currency), product_data: { name } } }],
    client_reference_id: req.out_trade_no,
    metadata: { out_trade_no: req.out_trade_no },
    payment_intent_data: { metadata: { out_trade_no: req.out_trade_no } },
    success_url: req.return_url ?? opts.success_url,
    expires_at: sessionExpiresAtS(req.expires_at_ms, nowMs),
  };
  if (opts.cancel_url !== undefined) body.cancel_url = opts.cancel_url;
  if (opts.payment_method_types !== undefined && opts.payment_method_types.length > 0) {
    body.payment_method_types = opts.payment_method_types;
    // Stripe requires the client for WeChat Pay in Checkout; the hosted page is always web.
    if (opts.payment_method_types.includes('wechat_pay')) body.payment_method_options = { wechat_pay: { client: 'web' } };
  }
  return body;
}

/** Idempotency-Keys derived from our ids, so a retry never opens a second session or refunds twice. */
export const idempotencyKeys = {
  createSession: (outTradeNo: string) => `peakpay-checkout-${outTradeNo}`,
  expireSession: (sessionId: string) => `peakpay-expire-${sessionId}`,
  cancelPaymentIntent: (paymentIntentId: string) => `peakpay-cancel-${paymentIntentId}`,
  refund: (outRefundNo: string) => `peakpay-refund-${outRefundNo}`,
};

/** Stripe search query for the PaymentIntent of one of our payments (out_trade_no is [A-Za-z0-9_-] only). */
export function paymentIntentSearchQuery(outTradeNo: string): string {
  if (!OUT_TRADE_NO_RE.test(outTradeNo)) throw new StripeMappingError('out_trade_no must be 1-64 of [A-Za-z0-9_-]');
  return `metadata['out_trade_no']:'${outTradeNo}'`;
}

// ---------------------------------------------------------------------------------------------
// Statuses.

const oneOf = <T extends string>(all: readonly T[], v: string | null | undefined, what: string): T => {
  if (v === null || v === undefined || !(all as readonly string[]).includes(v)) throw new StripeMappingError(`unknown ${what} ${JSON.stringify(v)}`);
  return v as T;
};
export const paymentIntentStatusOf = (s: string | null | undefined) => oneOf(STRIPE_PAYMENT_INTENT_STATUSES, s, 'PaymentIntent status');
export const sessionStatusOf = (s: string | null | undefined) => oneOf(STRIPE_SESSION_STATUSES, s, 'Checkout Session status');
export const sessionPaymentStatusOf = (s: string | null | undefined) => oneOf(STRIPE_SESSION_PAYMENT_STATUSES, s, 'Checkout Session payment_status');
export const refundStatusOf = (s: string | null | undefined) => oneOf(STRIPE_REFUND_STATUSES, s, 'Refund status');

function unreachable(v: never): never {
  throw new Error(`assertion: unhandled Stripe status ${String(v)}`);
}

/**
 * A PaymentIntent on its own. Everything short of succeeded or canceled is pending: a failed
 * attempt leaves requires_payment_method, and the buyer may still pay with another method on the
 * same Checkout page, so a failed attempt is not a failed order.
 */
export function orderStatusOfPaymentIntent(status: StripePaymentIntentStatus): ChannelOrderStatus {
  switch (status) {
    case 'requires_payment_method':
    case 'requires_confirmation':
    case 'requires_action':
    case 'processing':
    case 'requires_capture': // sessions capture automatically; an uncaptured authorisation is not money yet
      return 'pending';
    case 'canceled':
      return 'closed';
    case 'succeeded':
      return 'succeeded';
    default:
      return unreachable(status);
  }
}

/**
 * A Checkout Session on its own. complete + unpaid is an asynchronous method still settling.
 * complete + no_payment_required means nothing was collected (only a 100% discount does that,
 * and we never send one): failed, so no money is ever booked for it.
 */
export function orderStatusOfSession(status: StripeSessionStatus, paymentStatus: StripeSessionPaymentStatus): ChannelOrderStatus {
  switch (status) {
    case 'open':
      return 'pending';
    case 'expired':
      return 'closed';
    case 'complete':
      switch (paymentStatus) {
        case 'paid':
          return 'succeeded';
        case 'unpaid':
          return 'pending';
        case 'no_payment_required':
          return 'failed';
        default:
          return unreachable(paymentStatus);
      }
    default:
      return unreachable(status);
  }
}

/** The order's state from what we know: the session, its PaymentIntent, or both. */
export function orderStatusOf(session: StripeCheckoutSession | null, pi: StripePaymentIntent | null): ChannelOrderStatus {
  const sessionSays = session ? orderStatusOfSession(sessionStatusOf(session.status), sessionPaymentStatusOf(session.payment_status)) : null;
  if (!pi) {
    if (sessionSays === null) throw new Error('assertion: orderStatusOf needs a session or a PaymentIntent');
    return sessionSays;
  }
  const piSays = orderStatusOfPaymentIntent(paymentIntentStatusOf(pi.status));
  if (piSays !== 'pending' || session === null) return piSays;
  // A pending PaymentIntent under a finished session: an expired session cannot be paid any more,
  // and a complete one whose asynchronous payment failed went back to requires_payment_method.
  if (sessionSays === 'closed') return 'closed';
  if (session.status === 'complete' && pi.status === 'requires_payment_method') return 'failed';
  return 'pending';
}

export function refundStatusOfStripe(status: StripeRefundStatus): ChannelRefundStatus {
  switch (status) {
    case 'pending':
    case 'requires_action': // the buyer must give bank details (some non-card methods)
      return 'pending';
    case 'succeeded':
      return 'succeeded';
    case 'failed':
    case 'canceled':
      return 'failed';
    default:
      return unreachable(status);
  }
}

const idOf = (v: string | { id: string } | null | undefined): string | null => (v === null || v === undefined ? null : typeof v === 'string' ? v : v.id);

/** The out_trade_no a session carries (client_reference_id and metadata must agree when both are set). */
export function outTradeNoOfSession(s: StripeCheckoutSession): string | null {
  const a = s.client_reference_id ?? null;
  const b = s.metadata?.out_trade_no ?? null;
  if (a !== null && b !== null && a !== b) throw new StripeMappingError(`session ${s.id}: client_reference_id and metadata.out_trade_no differ`);
  return a ?? b;
}

/** Unix seconds when the PaymentIntent's charge was made, if Stripe gave us the expanded charge. */
function paidAtMsOf(pi: StripePaymentIntent): number | null {
  const c = pi.latest_charge;
  return c !== null && c !== undefined && typeof c === 'object' ? c.created * 1000 : null;
}

export function orderStateOf(outTradeNo: string, session: StripeCheckoutSession | null, pi: StripePaymentIntent | null): ChannelOrderState {
  const status = orderStatusOf(session, pi);
  const stripeAmount = pi ? pi.amount : session?.amount_total;
  const currency = pi ? pi.currency : session?.currency;
  if (stripeAmount === null || stripeAmount === undefined || !currency) throw new StripeMappingError(`order ${outTradeNo}: Stripe gave no amount or currency`);
  const ours = fromStripeCurrency(currency);
  const piId = pi?.id ?? idOf(session?.payment_intent);
  return {
    out_trade_no: outTradeNo,
    status,
    amount: fromStripeAmount(stripeAmount, ours),
    currency: ours,
    channel_trade_no: piId,
    paid_at_ms: status === 'succeeded' && pi ? paidAtMsOf(pi) : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Errors: Stripe's {error: {type, code, message}} and HTTP status → our error codes.

export function channelErrorCodeOf(httpStatus: number, body: StripeErrorBody | null): ChannelErrorCode {
  if (body === null) return httpStatus >= 500 ? 'unavailable' : 'bad_response';
  const { type, code } = body.error;
  if (type === 'api_error' || httpStatus >= 500) return 'unavailable';
  // Too many requests, a lock held by a concurrent request on the same object, or the same
  // Idempotency-Key still in flight: all pass if retried later.
  if (httpStatus === 429 || code === 'rate_limit' || code === 'lock_timeout' || code === 'idempotency_key_in_use') return 'unavailable';
  if (httpStatus === 404 && code === 'resource_missing') return 'not_found';
  // card_error, invalid_request_error, idempotency_error (same key, other parameters), auth errors.
  return 'rejected';
}

/** Secrets never reach an error message, even when Stripe echoes part of a key. */
export function redactSecrets(s: string): string {
  return s.replace(/\b(sk|rk|pk|whsec)_(test_|live_)?[A-Za-z0-9*_]+/g, '$1_$2[redacted]');
}

// ---------------------------------------------------------------------------------------------
// Bills: balance transactions (GET /v1/balance_transactions, expand data.source and
// data.source.payment_intent) → one line per payment and refund of ours.

/** Balance transaction types whose source is a charge (payment lines) or a refund (refund lines). */
export const BILL_PAYMENT_TYPES = ['charge', 'payment'] as const;
export const BILL_REFUND_TYPES = ['refund', 'payment_refund'] as const;

type Source = { id: string; object: string; amount?: unknown; currency?: unknown; metadata?: unknown; payment_intent?: unknown };

const metaOf = (v: unknown, key: string): string | null => {
  if (v === null || typeof v !== 'object') return null;
  const x = (v as Record<string, unknown>)[key];
  return typeof x === 'string' ? x : null;
};

/**
 * The fee in minor units of the line's own (presentment) currency. Stripe books the fee in the
 * balance currency; when that differs, the fee is scaled by Stripe's own ratio of the source
 * amount to the balance amount, in integers, rounded half-up (same rule as fx.ts).
 */
export function feeOf(bt: StripeBalanceTransaction, sourceStripeAmount: number, currency: string): number {
  if (bt.fee === 0 || bt.amount === 0) return 0;
  const sign = bt.fee < 0 ? -1n : 1n;
  const fee = BigInt(Math.abs(bt.fee));
  const n = fee * BigInt(Math.abs(sourceStripeAmount)) * 10n ** BigInt(isoExponent(currency));
  const d = BigInt(Math.abs(bt.amount)) * 10n ** BigInt(stripeExponent(currency));
  return Number(sign * divRoundHalfUp(n, d));
}

/** One bill line, or null for a transaction that is not one of our payments or refunds. */
export function billLineOf(bt: StripeBalanceTransaction): BillLine | null {
  const src = bt.source;
  if (src === null || typeof src === 'string') return null;
  const s = src as Source;
  if (typeof s.amount !== 'number' || typeof s.currency !== 'string') return null;
  const pi = s.payment_intent;
  const piId = typeof pi === 'string' ? pi : pi !== null && typeof pi === 'object' ? metaOf(pi, 'id') : null;
  const piMetadata = pi !== null && typeof pi === 'object' ? (pi as { metadata?: unknown }).metadata : null;
  const outTradeNo = metaOf(s.metadata, 'out_trade_no') ?? metaOf(piMetadata, 'out_trade_no');
  if (outTradeNo === null) return null;
  const currency = fromStripeCurrency(s.currency);
  const base = {
    out_trade_no: outTradeNo,
    channel_trade_no: piId ?? s.id,
    amount: fromStripeAmount(s.amount, currency),
    currency,
    fee: feeOf(bt, s.amount, currency),
    at_ms: bt.created * 1000,
  };
  if (s.object === 'charge' && (BILL_PAYMENT_TYPES as readonly string[]).includes(bt.type)) return { ...base, kind: 'payment', out_refund_no: null };
  if (s.object === 'refund' && (BILL_REFUND_TYPES as readonly string[]).includes(bt.type)) return { ...base, kind: 'refund', out_refund_no: metaOf(s.metadata, 'out_refund_no') };
  return null;
}

/** [gte, lt) in unix seconds of one calendar day at a fixed UTC offset. */
export function dayRangeS(day: string, utcOffsetMinutes: number): { gte: number; lt: number } {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) throw new StripeMappingError(`day must be YYYY-MM-DD, got ${JSON.stringify(day)}`);
  const startUtcMs = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  if (new Date(startUtcMs).toISOString().slice(0, 10) !== day) throw new StripeMappingError(`no such day ${day}`);
  const gte = startUtcMs / 1000 - utcOffsetMinutes * 60;
  return { gte, lt: gte + 86_400 };
}

// ---------------------------------------------------------------------------------------------
// application/x-www-form-urlencoded with Stripe's bracket notation: {a: {b: [1]}} → a[b][0]=1.

export type FormValue = string | number | boolean | null | undefined | FormValue[] | { [k: string]: FormValue };

export function formEncode(obj: Record<string, FormValue>): string {
  const p = new URLSearchParams();
  const walk = (key: string, v: FormValue): void => {
    if (v === undefined || v === null) return;
    if (Array.isArray(v)) v.forEach((x, i) => walk(`${key}[${i}]`, x));
    else if (typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(`${key}[${k}]`, x);
    else p.append(key, String(v));
  };
  for (const [k, v] of Object.entries(obj)) walk(k, v);
  return p.toString();
}

/** Nesting depth and key count a decoded form may have (Stripe's own objects are shallow). */
export const FORM_DEPTH_MAX = 8;
export const FORM_KEYS_MAX = 1_000;

/** The inverse of formEncode (indices become arrays, `a[]=x` appends); values stay strings. */
export function formDecode(body: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let count = 0;
  for (const [key, value] of new URLSearchParams(body)) {
    if (++count > FORM_KEYS_MAX) throw new StripeMappingError('too many form fields');
    const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
    if (!m || m[1] === undefined) throw new StripeMappingError(`bad form key ${JSON.stringify(key)}`);
    const path = [m[1], ...[...(m[2] ?? '').matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1] ?? '')];
    if (path.length > FORM_DEPTH_MAX) throw new StripeMappingError('form nesting too deep');
    if (path.some((p) => p === '__proto__' || p === 'constructor' || p === 'prototype')) throw new StripeMappingError('bad form key');
    let node: Record<string, unknown> | unknown[] = out;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i] as string;
      const last = i === path.length - 1;
      const nextIsIndex = !last && /^\d*$/.test(path[i + 1] as string);
      if (Array.isArray(node)) {
        const idx = seg === '' ? node.length : Number(seg);
        if (!Number.isSafeInteger(idx) || idx > FORM_KEYS_MAX) throw new StripeMappingError('bad form index');
        if (last) node[idx] = value;
        else node = (node[idx] ??= nextIsIndex ? [] : {}) as Record<string, unknown> | unknown[];
      } else {
        if (last) node[seg] = value;
        else node = (node[seg] ??= nextIsIndex ? [] : {}) as Record<string, unknown> | unknown[];
      }
    }
  }
  return out;
}
