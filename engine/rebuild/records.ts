// From what Postgres holds (events with their bodies) back to what the Lua scripts keep in Redis:
// the payment hash and the stored first result of a command (its op record).
import { isDeepStrictEqual } from 'node:util';
import { postingsFor, walletAvailable } from '../ledger/postings.ts';
import type { AccountSnapshot, EngineEvent, EventType, PaymentRecord, Posting } from '../protocol/events.ts';
import type { Currency } from '../protocol/money.ts';
import type { Payment } from '../protocol/payment.ts';
import { rawPaymentSchema, type Effect, type RawRefund } from '../redis/store.ts';
import { RebuildError } from './preflight.ts';

/**
 * The payment hash of an event written before events carried `payment_record`, re-derived from
 * the public view. Inexact: notify_url is not in the view (written as ''), buyer/metadata JSON may
 * differ in key order, hold_expires_at_ms is 0 once the hold is resolved.
 */
export function recordFromView(p: Payment): PaymentRecord {
  const holding = p.hold_expires_at !== null;
  return {
    id: p.id, merchant_id: p.merchant_id, out_trade_no: p.out_trade_no, amount: p.amount, currency: p.currency,
    amount_captured: p.amount_captured, amount_refunded: p.amount_refunded, method: p.method, channel: p.channel ?? '',
    account_id: p.account_id ?? '', scene: p.scene, subject: p.subject ?? '',
    buyer: p.buyer ? JSON.stringify(p.buyer) : '', metadata: p.metadata ? JSON.stringify(p.metadata) : '', notify_url: '',
    status: p.status, failure_code: p.failure?.code ?? '', failure_message: p.failure?.message ?? '',
    hold_amount: holding ? p.amount - p.amount_captured : 0,
    hold_expires_at_ms: p.hold_expires_at ? Date.parse(p.hold_expires_at) : 0,
    created_at_ms: Date.parse(p.created_at), updated_at_ms: Date.parse(p.updated_at), version: p.version,
  };
}

/** The payment hash an event leaves behind, and whether it is exactly what Lua wrote. */
export function paymentRecordOf(e: EngineEvent): { record: PaymentRecord; exact: boolean } | null {
  if (e.payment_record) {
    const checked = rawPaymentSchema.safeParse(e.payment_record);
    if (!checked.success) throw new RebuildError(`event ${e.id}: payment_record is not a payment hash: ${checked.error.message}`);
    return { record: e.payment_record, exact: true };
  }
  if (e.payment) return { record: recordFromView(e.payment), exact: false };
  return null;
}

/** What the scripts store under the op key (packed): see opStore() in lua/includes/common.lua. */
export type OpResult = {
  code: number;
  payment?: PaymentRecord;
  account?: AccountSnapshot;
  refund?: RawRefund;
  effects: Effect[];
  events: EventType[];
};

/**
 * The refund hash paymentRefund-4.lua (or refundChannelResult-4.lua) left, from its refund.* event
 * (every field is in the event). A wallet refund names the payment's account; a channel refund none ('').
 */
export function refundRecordOf(e: EngineEvent): RawRefund | null {
  if (!e.refund) return null;
  const channel = e.payment_record?.channel ?? e.payment?.channel ?? 'balance';
  const accountId = channel === 'balance' ? e.payment_record?.account_id ?? e.payment?.account_id : '';
  if (typeof accountId !== 'string' || (channel === 'balance' && accountId === '')) {
    throw new RebuildError(`event ${e.id}: a refund without its payment's account`);
  }
  return {
    id: e.refund.id, merchant_id: e.merchant_id, payment_id: e.refund.payment_id, account_id: accountId, amount: e.refund.amount,
    currency: e.refund.currency, status: e.refund.status, reason: e.refund.reason ?? '', created_at_ms: Date.parse(e.refund.created_at),
  };
}

const EFFECT_OF_POSTING: Record<Posting['kind'], Effect[0]> = {
  hold: 'hold',
  release: 'release',
  capture: 'capture',
  adjustment: 'credit',
  refund: 'refund',
  channel_capture: 'channel_capture',
  topup: 'topup',
  fee: 'fee',
  channel_refund: 'channel_refund',
};

/** The event's index n in its id evt_<cmd_id>_<n> (see eventId() in shards/outcome.ts). */
export function eventIndex(e: EngineEvent): number {
  const prefix = `evt_${e.cmd_id}_`;
  const n = e.id.startsWith(prefix) ? Number(e.id.slice(prefix.length)) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new RebuildError(`event ${e.id} is not named evt_<cmd_id>_<n> for command ${e.cmd_id}`);
  return n;
}

/**
 * Re-creates a command's first result from all of its events (in index order). Exact for events
 * that carry result_code and payment_record; for older events the code is taken as 0 and the
 * payment from its public view (`exact: false`). Effects are read back from the postings and
 * checked by deriving the postings from them again.
 */
export function opResultOf(events: readonly EngineEvent[]): { result: OpResult; exact: boolean } {
  const last = events[events.length - 1];
  if (!last) throw new Error('assertion: op result of no events');
  const pay = paymentRecordOf(last);
  const postings = events.flatMap((e) => e.postings);
  if (postings.length % 2 !== 0) throw new RebuildError(`command ${last.cmd_id}: odd number of postings`);
  const effects: Effect[] = [];
  const accountId = (pay?.record.account_id as string | undefined) || last.account?.account_id || null;
  for (let i = 0; i < postings.length; i += 2) {
    const p = postings[i] as Posting;
    // A capture out of available is a sale (an automatic capture, engine/ledger/postings.ts).
    const sale = p.kind === 'capture' && accountId !== null && p.ledger_account === walletAvailable(accountId);
    effects.push([sale ? 'sale' : EFFECT_OF_POSTING[p.kind], -p.amount]);
  }
  if (effects.length > 0) {
    const currency = (pay?.record.currency ?? last.account?.currency) as Currency | undefined;
    const channel = (pay?.record.channel as string | undefined) || null;
    let derived: Posting[] | null = null;
    try {
      derived = currency ? postingsFor(accountId, currency, effects, channel) : null;
    } catch {
      derived = null; // an effect without its account or channel: not the postings of any effect list
    }
    if (!derived || !isDeepStrictEqual(derived, postings)) {
      throw new RebuildError(`command ${last.cmd_id}: its postings are not the postings of any effect list`);
    }
  }
  const refund = refundRecordOf(last);
  const result: OpResult = {
    code: last.result_code ?? 0,
    ...(pay ? { payment: pay.record } : {}),
    ...(last.account ? { account: last.account } : {}),
    ...(refund ? { refund } : {}),
    effects,
    events: events.map((e) => e.type),
  };
  return { result, exact: last.result_code !== undefined && (pay === null || pay.exact) };
}
