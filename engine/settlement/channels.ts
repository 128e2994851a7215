// Channel settlements: one row per succeeded channel payment, from the `settlement` its
// payment.succeeded event carries (channel, channel trade no, fee, conversion). Written in the
// event's own transaction, once (the event is written once; the payment id is the key).
import type pg from 'pg';
import type { StoredEvent } from './writer.ts';

export async function writeChannelSettlements(client: pg.PoolClient, fresh: readonly StoredEvent[]): Promise<void> {
  const rows = fresh.flatMap(({ event: e }) => {
    const s = e.settlement;
    if (!s || !e.payment) return [];
    return [{
      payment_id: e.payment.id, merchant_id: e.merchant_id, event_id: e.id, channel: s.channel, channel_trade_no: s.channel_trade_no,
      amount: s.amount, currency: s.currency, channel_amount: s.channel_amount, channel_currency: s.channel_currency,
      fx_rate: s.fx_rate, fx_as_of: s.fx_as_of, fee: s.fee, fee_bps: s.fee_bps, settled_at: new Date(e.ts_ms).toISOString(),
    }];
  });
  if (rows.length === 0) return;
  await client.query(
    `INSERT INTO channel_settlements (payment_id, merchant_id, event_id, channel, channel_trade_no, amount, currency,
        channel_amount, channel_currency, fx_rate, fx_as_of, fee, fee_bps, settled_at)
     SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(payment_id text, merchant_id text, event_id text, channel text,
        channel_trade_no text, amount bigint, currency text, channel_amount bigint, channel_currency text, fx_rate text,
        fx_as_of text, fee bigint, fee_bps integer, settled_at timestamptz)
     ON CONFLICT (payment_id) DO NOTHING`,
    [JSON.stringify(rows)],
  );
}
