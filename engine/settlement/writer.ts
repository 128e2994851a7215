// Writes a batch of events into Postgres in one transaction, idempotently on the event id:
// events first (ON CONFLICT DO NOTHING RETURNING id), then postings, accounts and payment rows
// only for the events that were new. A redelivered batch changes nothing.
import type pg from 'pg';
import type { EngineEvent } from '../protocol/events.ts';
import { withCommandState } from '../protocol/command-state.ts';
import { isBalanced } from '../ledger/postings.ts';
import { writeRiskChanges } from './risk.ts';
import { writeRefunds } from './refunds.ts';
import { writeChannelSettlements } from './channels.ts';

export type StoredEvent = { seq: number; event: EngineEvent };

const iso = (ms: number) => new Date(ms).toISOString();

/** An event id already in Postgres for another event: a redelivery would be dropped and with it its postings. */
export class EventIdReusedError extends Error {
  override name = 'EventIdReusedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isEventIdReusedError = (err: unknown): err is EventIdReusedError => err instanceof EventIdReusedError;

/**
 * The events of the batch already in Postgres (a redelivery) must be the same events: same type,
 * same command. Else ON CONFLICT DO NOTHING would drop an event that was never written, postings
 * included (e.g. a command re-run under scripts of another event layout). Refused loudly: the
 * batch rolls back and is retried, and the settlement lag grows until an operator looks. Costs a
 * query only when a batch holds redelivered events.
 */
async function assertSameEvents(client: pg.PoolClient, seen: readonly StoredEvent[]): Promise<void> {
  if (seen.length === 0) return;
  const stored = await client.query<{ id: string; type: string; cmd_id: string }>({
    name: 'settle-seen-events',
    text: 'SELECT id, type, cmd_id FROM events WHERE id = ANY($1::text[])',
    values: [seen.map((s) => s.event.id)],
  });
  const byId = new Map(stored.rows.map((r) => [r.id, r]));
  for (const { event } of seen) {
    const row = byId.get(event.id);
    if (!row || row.type !== event.type || row.cmd_id !== event.cmd_id) {
      throw new EventIdReusedError(
        `event ${event.id} (${event.type} of ${event.cmd_id}) is in Postgres as ${row ? `${row.type} of ${row.cmd_id}` : 'nothing'}`,
      );
    }
  }
}

export async function writeEvents(pool: pg.Pool, delivered: readonly StoredEvent[]): Promise<{ inserted: number }> {
  // A redelivery can put the same event twice into one batch; ON CONFLICT only guards against rows
  // already in the table, so keep one copy here.
  const batch = [...new Map(delivered.map((d) => [d.event.id, d])).values()];
  if (batch.length === 0) return { inserted: 0 };
  // Each event with its command's state (carried by the command's last event, which is in the
  // same message): for the columns and tables below. The body is stored as the engine sent it.
  const hydrated = withCommandState(batch.map((b) => b.event));
  for (const { event } of batch) {
    if (!isBalanced(event.postings)) throw new Error(`assertion: unbalanced postings in ${event.id}`);
  }
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const eventRows = batch.map(({ seq, event: body }, i) => {
      const e = hydrated[i] as EngineEvent;
      return {
        id: e.id, stream_seq: seq, merchant_id: e.merchant_id, type: e.type, cmd_id: e.cmd_id,
        payment_id: e.payment?.id ?? null, account_id: e.account?.account_id ?? e.payment?.account_id ?? null,
        occurred_at: iso(e.ts_ms), body,
      };
    });
    // Named statements: parsed and planned once per connection, not once per batch. The rows go
    // as one JSON document read with json_to_recordset: casting it to jsonb first would convert the
    // whole batch to jsonb's binary form only to take it apart again (Postgres CPU, docs/BENCHMARKS.md).
    const res = await client.query<{ id: string }>({
      name: 'settle-events',
      text: `INSERT INTO events (id, stream_seq, merchant_id, type, cmd_id, payment_id, account_id, occurred_at, body)
       SELECT id, stream_seq, merchant_id, type, cmd_id, payment_id, account_id, occurred_at, body
       FROM json_to_recordset($1::json) AS x(id text, stream_seq bigint, merchant_id text, type text, cmd_id text,
            payment_id text, account_id text, occurred_at timestamptz, body json)
       ON CONFLICT (id) DO NOTHING RETURNING id`,
      values: [JSON.stringify(eventRows)],
    });
    const fresh = new Set(res.rows.map((r) => r.id));
    await assertSameEvents(client, batch.filter((b) => !fresh.has(b.event.id)));
    const events = hydrated.filter((e) => fresh.has(e.id));
    const freshStored = batch.flatMap((b, i) => (fresh.has(b.event.id) ? [{ seq: b.seq, event: hydrated[i] as EngineEvent }] : []));

    const postings = events.flatMap((e) =>
      e.postings.map((p) => ({
        event_id: e.id, merchant_id: e.merchant_id, ledger_account: p.ledger_account, currency: p.currency,
        amount: p.amount, kind: p.kind, memo: e.memo, created_at: iso(e.ts_ms),
      })),
    );
    if (postings.length > 0) {
      // Typed arrays, not one JSON document: postings are small rows with no JSON in them.
      await client.query({
        name: 'settle-postings',
        text: `INSERT INTO postings (event_id, merchant_id, ledger_account, currency, amount, kind, memo, created_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::timestamptz[])`,
        values: [
          postings.map((p) => p.event_id), postings.map((p) => p.merchant_id), postings.map((p) => p.ledger_account),
          postings.map((p) => p.currency), postings.map((p) => p.amount), postings.map((p) => p.kind), postings.map((p) => p.memo),
          postings.map((p) => p.created_at),
        ],
      });
    }

    const accounts = events
      .filter((e) => e.type === 'account.created' && e.account)
      .map((e) => ({ merchant_id: e.merchant_id, account_id: e.account?.account_id, currency: e.account?.currency, created_at: iso(e.ts_ms) }));
    if (accounts.length > 0) {
      await client.query({
        name: 'settle-accounts',
        text: `INSERT INTO accounts (merchant_id, account_id, currency, created_at)
         SELECT merchant_id, account_id, currency, created_at
         FROM json_to_recordset($1::json) AS x(merchant_id text, account_id text, currency text, created_at timestamptz)
         ON CONFLICT DO NOTHING`,
        values: [JSON.stringify(accounts)],
      });
    }

    // One row per payment: the highest version in this batch (an upsert may not touch a row twice).
    const latest = new Map<string, NonNullable<EngineEvent['payment']>>();
    for (const e of events) {
      const p = e.payment;
      if (p && (latest.get(p.id)?.version ?? 0) < p.version) latest.set(p.id, p);
    }
    if (latest.size > 0) {
      const rows = [...latest.values()].map((p) => ({
        id: p.id, merchant_id: p.merchant_id, out_trade_no: p.out_trade_no, amount: p.amount, currency: p.currency,
        amount_captured: p.amount_captured, amount_refunded: p.amount_refunded, method: p.method, channel: p.channel,
        scene: p.scene, subject: p.subject, account_id: p.account_id, status: p.status,
        failure_code: p.failure?.code ?? null, failure_message: p.failure?.message ?? null,
        buyer: p.buyer, metadata: p.metadata, hold_expires_at: p.hold_expires_at,
        created_at: p.created_at, updated_at: p.updated_at, version: p.version,
      }));
      await client.query({
        name: 'settle-payments',
        text: `INSERT INTO payments AS p (id, merchant_id, out_trade_no, amount, currency, amount_captured, amount_refunded, method,
            channel, scene, subject, account_id, status, failure_code, failure_message, buyer, metadata, hold_expires_at,
            created_at, updated_at, version)
         SELECT * FROM json_to_recordset($1::json) AS x(id text, merchant_id text, out_trade_no text, amount bigint,
            currency text, amount_captured bigint, amount_refunded bigint, method text, channel text, scene text, subject text,
            account_id text, status text, failure_code text, failure_message text, buyer jsonb, metadata jsonb,
            hold_expires_at timestamptz, created_at timestamptz, updated_at timestamptz, version integer)
         ON CONFLICT (id) DO UPDATE SET channel = EXCLUDED.channel, amount_captured = EXCLUDED.amount_captured, amount_refunded = EXCLUDED.amount_refunded,
            status = EXCLUDED.status, failure_code = EXCLUDED.failure_code, failure_message = EXCLUDED.failure_message,
            hold_expires_at = EXCLUDED.hold_expires_at, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version
         WHERE p.version < EXCLUDED.version`,
        values: [JSON.stringify(rows)],
      });
    }
    await writeRiskChanges(client, freshStored);
    await writeRefunds(client, freshStored);
    await writeChannelSettlements(client, freshStored);
    await client.query('COMMIT');
    return { inserted: events.length };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
