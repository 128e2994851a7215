// PayPal webhooks, verified offline per PayPal's published scheme: the paypal-transmission-sig
// header is a SHA256withRSA signature of `<transmission_id>|<transmission_time>|<webhook_id>|
// <crc32 of the raw body, unsigned decimal>` made with the key of the certificate at
// paypal-cert-url. The certificate is fetched only from an allow-listed origin (adapter.ts caches
// it). transmission_time must be within the window; the event id is the dedup key.
import type { ChannelCrypto, ChannelNotification, NotifyAnswer, RawHeaders } from '../types.ts';
import { ChannelNotifyError, NOTIFY_BODY_BYTES_MAX } from '../types.ts';
import { isCaptureStatus, isOrderStatus, isRefundStatus, mapCaptureStatus, mapRefundStatus, moneyOf, orderState, webhookSigContent } from './transformers.ts';
import type { PaypalCapture, PaypalEventType, PaypalOrder, PaypalRefund, PaypalWebhookEvent } from './wire.ts';
import { PAYPAL_EVENT_TYPES } from './wire.ts';

export type PaypalWebhookKeys = {
  webhookId: string;
  /** Origins (scheme://host[:port]) certificates may come from. */
  certOrigins: readonly string[];
  windowMs: number;
  /** The public key (SPKI PEM) of the certificate at an allowed URL; throws when it cannot be had. */
  certPublicKey(certUrl: string): Promise<string>;
};

/** The only algorithm PayPal uses for webhook signatures. */
export const PAYPAL_AUTH_ALGO = 'SHA256withRSA';

const reject = (reason: ConstructorParameters<typeof ChannelNotifyError>[1], message: string): ChannelNotifyError => new ChannelNotifyError('paypal', reason, message);

function header(headers: RawHeaders, name: string): string {
  const v = headers[name];
  if (typeof v !== 'string' || v === '') throw reject('invalid_signature', `missing header ${name}`);
  return v;
}

/** An https (or, for the sandbox, an explicitly allowed http) URL on an allowed origin, without credentials. */
export function certUrlAllowed(certUrl: string, origins: readonly string[]): boolean {
  let u: URL;
  try {
    u = new URL(certUrl);
  } catch {
    return false;
  }
  return u.username === '' && u.password === '' && origins.includes(u.origin);
}

const ISO_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

export async function verifyPaypalWebhook(raw: Buffer, headers: RawHeaders, nowMs: number, keys: PaypalWebhookKeys, crypto: ChannelCrypto): Promise<ChannelNotification> {
  if (raw.length === 0 || raw.length > NOTIFY_BODY_BYTES_MAX) throw reject('malformed', `body of ${raw.length} bytes`);
  const transmissionId = header(headers, 'paypal-transmission-id');
  const transmissionTime = header(headers, 'paypal-transmission-time');
  const sig = header(headers, 'paypal-transmission-sig');
  const certUrl = header(headers, 'paypal-cert-url');
  const algo = header(headers, 'paypal-auth-algo');
  if (algo !== PAYPAL_AUTH_ALGO) throw reject('invalid_signature', `paypal-auth-algo ${algo}`);

  const sentMs = ISO_TIME_RE.test(transmissionTime) ? Date.parse(transmissionTime) : NaN;
  if (!Number.isFinite(sentMs)) throw reject('malformed', 'paypal-transmission-time is not an ISO 8601 time');
  if (Math.abs(nowMs - sentMs) > keys.windowMs) throw reject('timestamp_out_of_window', 'paypal-transmission-time outside the window');

  // Never fetch a key from where the sender says unless it is PayPal's: otherwise anyone could
  // point us at their own certificate.
  if (!certUrlAllowed(certUrl, keys.certOrigins)) throw reject('invalid_signature', 'paypal-cert-url is not on an allowed origin');
  const publicKey = await keys.certPublicKey(certUrl);
  if (!(await crypto.rsaVerify(publicKey, webhookSigContent(transmissionId, transmissionTime, keys.webhookId, raw), sig))) {
    throw reject('invalid_signature', 'signature does not verify');
  }

  let event: PaypalWebhookEvent;
  try {
    event = JSON.parse(raw.toString('utf8')) as PaypalWebhookEvent;
  } catch {
    throw reject('malformed', 'body is not JSON');
  }
  if (typeof event !== 'object' || event === null || typeof event.id !== 'string' || typeof event.event_type !== 'string' || typeof event.resource !== 'object' || event.resource === null) {
    throw reject('malformed', 'not a webhook event');
  }
  if (!(PAYPAL_EVENT_TYPES as readonly string[]).includes(event.event_type)) throw reject('unsupported_event', `event_type ${event.event_type}`);
  return mapEvent(event.id, event.event_type as PaypalEventType, event.resource);
}

/** A verified event → ours, by an exhaustive switch over the event types we handle. */
export function mapEvent(id: string, type: PaypalEventType, resource: Record<string, unknown>): ChannelNotification {
  switch (type) {
    case 'CHECKOUT.ORDER.APPROVED':
    case 'CHECKOUT.ORDER.COMPLETED': {
      const order = resource as unknown as PaypalOrder;
      const pu = order.purchase_units?.[0];
      const outTradeNo = pu?.invoice_id ?? pu?.reference_id;
      if (!outTradeNo || !isOrderStatus(order.status)) throw reject('malformed', `${type}: no invoice_id or status`);
      const state = orderState(order, outTradeNo);
      if (!state) throw reject('malformed', `${type}: unreadable order`);
      return { kind: 'payment', notification_id: id, ...state };
    }
    case 'PAYMENT.CAPTURE.COMPLETED':
    case 'PAYMENT.CAPTURE.PENDING':
    case 'PAYMENT.CAPTURE.DENIED': {
      const cap = resource as unknown as PaypalCapture;
      const money = moneyOf(cap.amount);
      if (typeof cap.id !== 'string' || !cap.invoice_id || !isCaptureStatus(cap.status) || !money) throw reject('malformed', `${type}: unreadable capture`);
      const status = mapCaptureStatus(cap.status);
      const paidAt = status === 'succeeded' && cap.create_time ? Date.parse(cap.create_time) : NaN;
      return {
        kind: 'payment',
        notification_id: id,
        out_trade_no: cap.invoice_id,
        status,
        amount: money.amount,
        currency: money.currency,
        channel_trade_no: cap.id,
        paid_at_ms: Number.isFinite(paidAt) ? paidAt : null,
      };
    }
    case 'PAYMENT.CAPTURE.REFUNDED': {
      const r = resource as unknown as PaypalRefund;
      const money = moneyOf(r.amount);
      if (!r.invoice_id || !r.custom_id || !isRefundStatus(r.status) || !money) throw reject('malformed', `${type}: unreadable refund`);
      return { kind: 'refund', notification_id: id, out_trade_no: r.custom_id, out_refund_no: r.invoice_id, status: mapRefundStatus(r.status), amount: money.amount, currency: money.currency };
    }
    default: {
      const never: never = type;
      throw new Error(`assertion: unmapped PayPal event ${String(never)}`);
    }
  }
}

/** PayPal retries a webhook (up to 25 times over 3 days) until it gets a 2xx; the body is ignored. */
export function paypalNotifyAnswer(ok: boolean): NotifyAnswer {
  return ok ? { status: 200, headers: { 'content-type': 'application/json' }, body: '{}' } : { status: 400, headers: { 'content-type': 'application/json' }, body: '{"error":"rejected"}' };
}
