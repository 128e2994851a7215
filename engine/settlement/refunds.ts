// The settlement side of refunds: each refund.succeeded event becomes one row of `refunds`
// (migrations/1764600000000_refunds.sql), inside the writer's transaction and only for events seen
// for the first time. The postings (kind refund) and the payment's amount_refunded are written by
// the writer like every other event's; this table is what GET /v1/refunds/{id} falls back to and
// what a Redis rebuild re-creates the refund hashes from.
import type pg from 'pg';
import type { StoredEvent } from './writer.ts';

export async function writeRefunds(client: pg.PoolClient, fresh: readonly StoredEvent[]): Promise<void> {
  const rows = fresh.flatMap(({ event: e }) => {
    const r = e.type === 'refund.succeeded' ? e.refund : undefined;
    if (!r) return [];
    if (!e.payment?.account_id) throw new Error(`assertion: ${e.id} refunds a payment without an account`);
    return [{
      merchant_id: e.merchant_id, id: r.id, payment_id: r.payment_id, account_id: e.payment.account_id, amount: r.amount,
      currency: r.currency, status: r.status, reason: r.reason, event_id: e.id, created_at: r.created_at,
    }];
  });
  if (rows.length === 0) return;
  // A refund id is written once: its event is written once (ON CONFLICT on events.id upstream), and
  // a second refund.succeeded for the same id cannot exist (the script reports a known id instead).
  await client.query(
    `INSERT INTO refunds (merchant_id, id, payment_id, account_id, amount, currency, status, reason, event_id, created_at)
     SELECT merchant_id, id, payment_id, account_id, amount, currency, status, reason, event_id, created_at
     FROM jsonb_to_recordset($1::jsonb) AS x(merchant_id text, id text, payment_id text, account_id text, amount bigint,
          currency text, status text, reason text, event_id text, created_at timestamptz)
     ON CONFLICT (merchant_id, id) DO NOTHING`,
    [JSON.stringify(rows)],
  );
}
