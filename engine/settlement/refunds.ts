// The settlement side of refunds: one row of `refunds` per refund (migrations/1764600000000_refunds.sql,
// 1764800000000_channel_refunds.sql), inside the writer's transaction and only from events seen for
// the first time. A wallet refund is written once, succeeded (refund.succeeded). A channel refund
// is written pending (refund.pending) and then takes the status the channel decided
// (refund.succeeded / refund.failed), with the channel's refund id; it names no wallet (account_id
// NULL). The postings (kind refund / channel_refund) and the payment's amount_refunded are written
// by the writer like every other event's; this table is what GET /v1/refunds/{id} falls back to
// and what a Redis rebuild re-creates the refund hashes (and the watch set of pending channel
// refunds) from.
import type pg from 'pg';
import type { StoredEvent } from './writer.ts';

type RefundRow = {
  merchant_id: string; id: string; payment_id: string; account_id: string | null; amount: number; currency: string;
  status: string; reason: string | null; event_id: string; created_at: string; channel_refund_id: string | null;
};

const REFUND_EVENTS: ReadonlySet<string> = new Set(['refund.pending', 'refund.succeeded', 'refund.failed']);

export async function writeRefunds(client: pg.PoolClient, fresh: readonly StoredEvent[]): Promise<void> {
  // One row per refund of the batch: its last status (a pending refund and its decision may share a
  // batch; an upsert may not touch a row twice). Events come in stream order.
  const byRefund = new Map<string, RefundRow>();
  for (const { event: e } of fresh) {
    const r = REFUND_EVENTS.has(e.type) ? e.refund : undefined;
    if (!r) continue;
    if (!e.payment) throw new Error(`assertion: ${e.id} is a refund event without its payment`);
    const isChannel = e.payment.channel !== 'balance';
    if (!isChannel && !e.payment.account_id) throw new Error(`assertion: ${e.id} refunds a wallet payment without an account`);
    const before = byRefund.get(`${e.merchant_id}\0${r.id}`);
    byRefund.set(`${e.merchant_id}\0${r.id}`, {
      merchant_id: e.merchant_id, id: r.id, payment_id: r.payment_id, account_id: isChannel ? null : e.payment.account_id,
      amount: r.amount, currency: r.currency, status: r.status, reason: r.reason,
      // The row keeps the event that made the refund; its decision is the status.
      event_id: before?.event_id ?? e.id, created_at: r.created_at, channel_refund_id: e.channel_refund_id || before?.channel_refund_id || null,
    });
  }
  const rows = [...byRefund.values()];
  if (rows.length === 0) return;
  // A refund's row is inserted once (its first event is written once: ON CONFLICT on events.id
  // upstream); only a pending one changes afterwards, to the status the channel decided.
  await client.query(
    `INSERT INTO refunds AS r (merchant_id, id, payment_id, account_id, amount, currency, status, reason, event_id, created_at, channel_refund_id)
     SELECT merchant_id, id, payment_id, account_id, amount, currency, status, reason, event_id, created_at, channel_refund_id
     FROM jsonb_to_recordset($1::jsonb) AS x(merchant_id text, id text, payment_id text, account_id text, amount bigint,
          currency text, status text, reason text, event_id text, created_at timestamptz, channel_refund_id text)
     ON CONFLICT (merchant_id, id) DO UPDATE SET status = EXCLUDED.status, channel_refund_id = EXCLUDED.channel_refund_id
     WHERE r.status = 'pending' AND EXCLUDED.status <> 'pending'`,
    [JSON.stringify(rows)],
  );
}
