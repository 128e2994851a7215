// The engine's raw payment and refund records (Redis hashes) as the public objects of API.md.
import { paymentSchema, type Payment } from './payment.ts';
import { refundSchema, type Refund } from './refund.ts';
import type { RawPayment, RawRefund } from '../redis/store.ts';

const iso = (ms: number) => new Date(ms).toISOString();
const jsonOrNull = (s: string): unknown => (s === '' ? null : JSON.parse(s));

/** What the buyer must do next: verify (risk), or pay at the channel (QR code / redirect) while pending. */
function nextActionOf(raw: RawPayment): unknown {
  if (raw.status === 'requires_action') return { type: 'verify' };
  if (raw.status === 'pending' && raw.next_action !== '') return JSON.parse(raw.next_action);
  return null;
}

export function toPayment(raw: RawPayment): Payment {
  return paymentSchema.parse(paymentViewOf(raw));
}

/**
 * toPayment() without validating what it built: for the engine's replies (validated by whoever
 * receives them, replySchema) and readers that derive the view of many events (the settlement
 * consumer, engine/protocol/command-state.ts). The ingress's reads validate the same builder's
 * output (toPayment), and every reply is validated on receipt, so a mistake in it cannot go unseen.
 */
export function paymentViewOf(raw: RawPayment): Payment {
  return ({
    id: raw.id,
    merchant_id: raw.merchant_id,
    out_trade_no: raw.out_trade_no,
    amount: raw.amount,
    currency: raw.currency,
    amount_captured: raw.amount_captured,
    amount_refunded: raw.amount_refunded,
    method: raw.method,
    channel: raw.channel === '' ? null : raw.channel,
    scene: raw.scene,
    subject: raw.subject === '' ? null : raw.subject,
    account_id: raw.account_id === '' ? null : raw.account_id,
    // A channel payment whose order is not open yet has nothing for the buyer to do: it reads
    // processing (as before the engine decided), so a storefront polling for pending always finds
    // its next_action.
    status: raw.status === 'pending' && raw.method !== 'balance' && raw.channel === '' ? 'processing' : raw.status,
    failure: raw.failure_code === '' ? null : { code: raw.failure_code, message: raw.failure_message },
    next_action: nextActionOf(raw),
    buyer: jsonOrNull(raw.buyer),
    metadata: jsonOrNull(raw.metadata),
    // Set while funds are held: authorized, or requires_action (held until verified).
    hold_expires_at: raw.hold_amount > 0 ? iso(raw.hold_expires_at_ms) : null,
    created_at: iso(raw.created_at_ms),
    updated_at: iso(raw.updated_at_ms),
    version: raw.version,
  }) as Payment;
}

export function toRefund(raw: RawRefund): Refund {
  return refundSchema.parse({
    id: raw.id,
    payment_id: raw.payment_id,
    amount: raw.amount,
    currency: raw.currency,
    status: raw.status,
    reason: raw.reason === '' ? null : raw.reason,
    created_at: iso(raw.created_at_ms),
  });
}
