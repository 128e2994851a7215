// Stripe webhook verification over the raw bytes (https://docs.stripe.com/webhooks#verify-manually):
// Stripe-Signature: t=<unix s>,v1=<hex HMAC-SHA256(whsec, `${t}.${raw body}`)>[,v1=…]. The key is
// the endpoint's whole secret string ("whsec_…"); several v1 entries appear while a secret is
// rolled, and any one matching is enough. The signature is checked first, the timestamp second:
// a timestamp is only worth reading once we know Stripe wrote it. Then the event is mapped.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ChannelNotifyError, NOTIFY_BODY_BYTES_MAX, NOTIFY_WINDOW_MS, type ChannelNotification, type NotifyAnswer, type RawHeaders } from '../types.ts';
import {
  fromStripeAmount,
  fromStripeCurrency,
  isStripeMappingError,
  orderStatusOfPaymentIntent,
  orderStatusOfSession,
  outTradeNoOfSession,
  paymentIntentStatusOf,
  refundStatusOf,
  refundStatusOfStripe,
  sessionPaymentStatusOf,
  sessionStatusOf,
} from './transformers.ts';
import {
  STRIPE_HANDLED_EVENTS,
  STRIPE_SIGNATURE_HEADER,
  stripeCheckoutSessionSchema,
  stripeEventSchema,
  stripePaymentIntentSchema,
  stripeRefundSchema,
  type StripeEvent,
  type StripeHandledEvent,
} from './wire.ts';

/** Longest Stripe-Signature header and most entries in it we look at. */
export const SIGNATURE_HEADER_CHARS_MAX = 4096;
export const SIGNATURE_ENTRIES_MAX = 16;

const reject = (reason: ChannelNotifyError['reason'], message: string, cause?: unknown) =>
  new ChannelNotifyError('stripe', reason, message, cause === undefined ? {} : { cause });

/** hex HMAC-SHA256(secret, `${t}.${payload}`): what Stripe puts in v1. */
export function stripeSignature(secret: string, tSeconds: number, payload: Buffer | string): string {
  return createHmac('sha256', secret).update(`${tSeconds}.`).update(payload).digest('hex');
}

/** A Stripe-Signature header value for `payload` signed now (the sandbox's callbacks). */
export function stripeSignatureHeader(secret: string, tSeconds: number, payload: Buffer | string): string {
  return `t=${tSeconds},v1=${stripeSignature(secret, tSeconds, payload)}`;
}

export type ParsedSignature = { t: number; v1: string[] };

/** Parses `t=…,v1=…[,v1=…][,v0=…]`; null when it is not a usable header. Unknown schemes are ignored. */
export function parseSignatureHeader(h: string): ParsedSignature | null {
  if (h.length > SIGNATURE_HEADER_CHARS_MAX) return null;
  const parts = h.split(',');
  if (parts.length > SIGNATURE_ENTRIES_MAX) return null;
  let t: number | null = null;
  const v1: string[] = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) return null;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't') {
      if (t !== null || !/^[0-9]{1,12}$/.test(v)) return null;
      t = Number(v);
    } else if (k === 'v1') {
      if (/^[0-9a-f]{64}$/.test(v)) v1.push(v);
    }
  }
  return t === null || v1.length === 0 ? null : { t, v1 };
}

function headerOf(headers: RawHeaders): string {
  const h = headers[STRIPE_SIGNATURE_HEADER];
  if (h === undefined) throw reject('invalid_signature', 'no Stripe-Signature header');
  if (typeof h !== 'string') throw reject('invalid_signature', 'more than one Stripe-Signature header');
  return h;
}

/** Checks signature then timestamp window; returns the parsed, shape-checked event. */
export function verifyStripeEvent(raw: Buffer, headers: RawHeaders, secret: string, nowMs: number): StripeEvent {
  if (raw.length > NOTIFY_BODY_BYTES_MAX) throw reject('malformed', `body larger than ${NOTIFY_BODY_BYTES_MAX} bytes`);
  const sig = parseSignatureHeader(headerOf(headers));
  if (!sig) throw reject('invalid_signature', 'unparseable Stripe-Signature header');
  const expected = Buffer.from(stripeSignature(secret, sig.t, raw), 'hex');
  if (!sig.v1.some((v) => timingSafeEqual(Buffer.from(v, 'hex'), expected))) throw reject('invalid_signature', 'no v1 signature matches');
  if (Math.abs(nowMs - sig.t * 1000) > NOTIFY_WINDOW_MS) throw reject('timestamp_out_of_window', `signed at ${sig.t}, outside ±${NOTIFY_WINDOW_MS / 1000} s`);
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw reject('malformed', 'body is not JSON', err);
  }
  const ev = stripeEventSchema.safeParse(json);
  if (!ev.success) throw reject('malformed', 'not a Stripe event', ev.error);
  return ev.data;
}

const isHandled = (t: string): t is StripeHandledEvent => (STRIPE_HANDLED_EVENTS as readonly string[]).includes(t);

function parseObject<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: unknown } }, ev: StripeEvent): T {
  const r = schema.safeParse(ev.data.object);
  if (!r.success) throw reject('malformed', `${ev.type}: data.object is not the expected object`, r.error);
  return r.data;
}

const notOurs = (ev: StripeEvent, what: string) => reject('unsupported_event', `${ev.type} ${ev.data.object.id}: ${what} (not created by peakpay)`);

/** Maps a verified event to what the engine needs. Unknown or foreign events: unsupported_event. */
export function notificationOfEvent(ev: StripeEvent): ChannelNotification {
  if (!isHandled(ev.type)) throw reject('unsupported_event', `event type ${ev.type} is not handled`);
  const type: StripeHandledEvent = ev.type;
  try {
    switch (type) {
      case 'checkout.session.completed':
      case 'checkout.session.async_payment_succeeded':
      case 'checkout.session.async_payment_failed':
      case 'checkout.session.expired': {
        const s = parseObject(stripeCheckoutSessionSchema, ev);
        const outTradeNo = outTradeNoOfSession(s);
        if (outTradeNo === null) throw notOurs(ev, 'no client_reference_id');
        const fromSession = orderStatusOfSession(sessionStatusOf(s.status), sessionPaymentStatusOf(s.payment_status));
        const status =
          type === 'checkout.session.expired' ? 'closed' : type === 'checkout.session.async_payment_failed' ? 'failed' : fromSession;
        if (type === 'checkout.session.async_payment_succeeded' && status !== 'succeeded') throw reject('malformed', `${type} for a session that is not paid`);
        if (s.amount_total === null || s.currency === null) throw reject('malformed', `${type}: session without amount_total or currency`);
        const currency = fromStripeCurrency(s.currency);
        const pi = s.payment_intent;
        return {
          kind: 'payment',
          notification_id: ev.id,
          out_trade_no: outTradeNo,
          status,
          amount: fromStripeAmount(s.amount_total, currency),
          currency,
          channel_trade_no: pi === null || pi === undefined ? null : typeof pi === 'string' ? pi : pi.id,
          paid_at_ms: status === 'succeeded' ? ev.created * 1000 : null,
        };
      }
      case 'payment_intent.succeeded':
      case 'payment_intent.payment_failed':
      case 'payment_intent.processing':
      case 'payment_intent.canceled': {
        const pi = parseObject(stripePaymentIntentSchema, ev);
        const outTradeNo = pi.metadata?.out_trade_no;
        if (outTradeNo === undefined) throw notOurs(ev, 'no metadata.out_trade_no');
        const status = orderStatusOfPaymentIntent(paymentIntentStatusOf(pi.status));
        const currency = fromStripeCurrency(pi.currency);
        const charge = pi.latest_charge;
        return {
          kind: 'payment',
          notification_id: ev.id,
          out_trade_no: outTradeNo,
          status,
          amount: fromStripeAmount(pi.amount, currency),
          currency,
          channel_trade_no: pi.id,
          paid_at_ms: status !== 'succeeded' ? null : charge !== null && typeof charge === 'object' ? charge.created * 1000 : ev.created * 1000,
        };
      }
      case 'refund.created':
      case 'refund.updated':
      case 'refund.failed':
      case 'charge.refund.updated': {
        const r = parseObject(stripeRefundSchema, ev);
        const outTradeNo = r.metadata?.out_trade_no;
        const outRefundNo = r.metadata?.out_refund_no;
        if (outTradeNo === undefined || outRefundNo === undefined) throw notOurs(ev, 'no metadata.out_refund_no');
        const currency = fromStripeCurrency(r.currency);
        return {
          kind: 'refund',
          notification_id: ev.id,
          out_trade_no: outTradeNo,
          out_refund_no: outRefundNo,
          status: refundStatusOfStripe(refundStatusOf(r.status)),
          amount: fromStripeAmount(r.amount, currency),
          currency,
        };
      }
      default: {
        const never: never = type;
        throw new Error(`assertion: unhandled Stripe event ${String(never)}`);
      }
    }
  } catch (err) {
    if (isStripeMappingError(err)) throw reject('malformed', `${ev.type}: ${err.message}`, err);
    throw err;
  }
}

export function verifyStripeNotify(raw: Buffer, headers: RawHeaders, secret: string, nowMs: number): ChannelNotification {
  return notificationOfEvent(verifyStripeEvent(raw, headers, secret, nowMs));
}

/** Stripe only looks at the status: any 2xx is delivered, anything else is retried (up to 3 days). */
export function stripeNotifyAnswer(ok: boolean): NotifyAnswer {
  return ok
    ? { status: 200, headers: { 'content-type': 'application/json' }, body: '{"received":true}' }
    : { status: 400, headers: { 'content-type': 'application/json' }, body: '{"received":false}' };
}
