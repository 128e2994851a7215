// The settlement writer against the real Postgres: idempotent on the event id, also when a
// redelivery puts the same event twice into one batch, and across batches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type pg from 'pg';
import { pgPool } from '../../engine/infra.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import type { EngineEvent } from '../../engine/protocol/events.ts';
import { writeEvents } from '../../engine/settlement/writer.ts';
import { testConfig, uniqueId } from '../helpers.ts';

let pool: pg.Pool;
beforeAll(() => {
  pool = pgPool(testConfig(), 2);
});
afterAll(async () => {
  await pool.end();
});

function credit(merchant: string, id: string, amount: number): EngineEvent {
  return {
    v: PROTOCOL_VERSION, id, type: 'account.credited', merchant_id: merchant, cmd_id: `cmd_${id}`, ts_ms: Date.now(), payment: null,
    account: { account_id: 'acc', currency: 'CNY', available: amount, held: 0 },
    postings: [
      { kind: 'adjustment', ledger_account: 'merchant:adjustments', amount: -amount, currency: 'CNY' },
      { kind: 'adjustment', ledger_account: 'wallet:acc:available', amount, currency: 'CNY' },
    ],
    memo: 'test',
  };
}

const balance = async (merchant: string) =>
  (await pool.query<{ b: number }>(`SELECT coalesce(sum(amount), 0)::bigint AS b FROM postings WHERE merchant_id = $1 AND ledger_account = 'wallet:acc:available'`, [merchant])).rows[0]?.b;

describe('settlement writer', () => {
  it('writes an event delivered twice in one batch once', async () => {
    const m = uniqueId('m');
    const e = credit(m, uniqueId('evt'), 700);
    const r = await writeEvents(pool, [{ seq: 1, event: e }, { seq: 1, event: e }]);
    expect(r.inserted).toBe(1);
    expect(await balance(m)).toBe(700);
  });

  it('ignores an event already written by an earlier batch', async () => {
    const m = uniqueId('m');
    const a = credit(m, uniqueId('evt'), 100);
    const b = credit(m, uniqueId('evt'), 50);
    await writeEvents(pool, [{ seq: 1, event: a }]);
    const r = await writeEvents(pool, [{ seq: 1, event: a }, { seq: 2, event: b }]);
    expect(r.inserted).toBe(1);
    expect(await balance(m)).toBe(150);
  });

  it('refuses a different event under an id already written (its postings would be dropped), and writes nothing of its batch', async () => {
    const m = uniqueId('m');
    const id = uniqueId('evt');
    await writeEvents(pool, [{ seq: 1, event: credit(m, id, 100) }]);
    const other = { ...credit(m, id, 300), type: 'payment.succeeded' as const };
    const neighbour = credit(m, uniqueId('evt'), 5);
    await expect(writeEvents(pool, [{ seq: 2, event: neighbour }, { seq: 3, event: other }])).rejects.toThrow(
      expect.objectContaining({ name: 'EventIdReusedError', message: expect.stringMatching(/is in Postgres as account.credited/) }),
    );
    expect(await balance(m)).toBe(100);
    // The same event again is a redelivery: nothing new, no error.
    expect((await writeEvents(pool, [{ seq: 4, event: credit(m, id, 100) }])).inserted).toBe(0);
    expect(await balance(m)).toBe(100);
  });

  it('refuses an unbalanced event and writes nothing of its batch', async () => {
    const m = uniqueId('m');
    const bad = { ...credit(m, uniqueId('evt'), 10), postings: [{ kind: 'adjustment' as const, ledger_account: 'wallet:acc:available', amount: 10, currency: 'CNY' as const }] };
    await expect(writeEvents(pool, [{ seq: 1, event: credit(m, uniqueId('evt'), 5) }, { seq: 2, event: bad }])).rejects.toThrow(/unbalanced/);
    expect(await balance(m)).toBe(0);
  });

  // postings has no foreign key to events (migration 1765100000000): the writer alone keeps every
  // posting with its event. Model: an event is written once it was in a batch that committed.
  it('keeps every posting with its event, once, through duplicates, redeliveries and failed batches', async () => {
    const batchArb = fc.record({
      picks: fc.array(fc.nat({ max: 7 }), { minLength: 1, maxLength: 6 }),
      fails: fc.boolean(),
    });
    await fc.assert(fc.asyncProperty(fc.array(batchArb, { minLength: 1, maxLength: 6 }), async (batches) => {
      const m = uniqueId('m');
      const pool8 = Array.from({ length: 8 }, (_, i) => credit(m, uniqueId('evt'), 10 + i));
      const written = new Set<string>();
      for (const [seq, b] of batches.entries()) {
        const events = b.picks.map((i) => pool8[i] as EngineEvent);
        const bad = { ...credit(m, uniqueId('evt'), 1), postings: [{ kind: 'adjustment' as const, ledger_account: 'wallet:acc:available', amount: 1, currency: 'CNY' as const }] };
        const delivered = [...events, ...(b.fails ? [bad] : [])].map((event) => ({ seq: seq + 1, event }));
        if (b.fails) {
          await expect(writeEvents(pool, delivered)).rejects.toThrow(/unbalanced/);
        } else {
          const fresh = new Set(events.map((e) => e.id).filter((id) => !written.has(id)));
          expect((await writeEvents(pool, delivered)).inserted).toBe(fresh.size);
          for (const id of fresh) written.add(id);
        }
      }
      const rows = await pool.query<{ events: number; postings: number; orphans: number; unbalanced: number }>(
        `SELECT (SELECT count(*) FROM events WHERE merchant_id = $1) AS events,
                (SELECT count(*) FROM postings WHERE merchant_id = $1) AS postings,
                (SELECT count(*) FROM postings p LEFT JOIN events e ON e.id = p.event_id WHERE p.merchant_id = $1 AND e.id IS NULL) AS orphans,
                (SELECT count(*) FROM (SELECT event_id FROM postings WHERE merchant_id = $1 GROUP BY event_id HAVING sum(amount) <> 0) u) AS unbalanced`,
        [m],
      );
      expect(rows.rows[0]).toEqual({ events: written.size, postings: written.size * 2, orphans: 0, unbalanced: 0 });
      const expected = pool8.filter((e) => written.has(e.id)).reduce((a, e) => a + (e.account?.available ?? 0), 0);
      expect(Number(await balance(m))).toBe(expected);
    }), { numRuns: 30 });
  });

  it("fills a command's first events' payment and account columns from its last event, and stores the bodies as sent", async () => {
    const m = uniqueId('m');
    const cmd = uniqueId('cmd');
    const now = Date.now();
    const payment = {
      id: uniqueId('pay'), merchant_id: m, out_trade_no: uniqueId('T'), amount: 900, currency: 'CNY' as const, amount_captured: 900,
      amount_refunded: 0, method: 'balance' as const, channel: 'balance', scene: 'pc' as const, subject: null, account_id: 'acc',
      status: 'succeeded' as const, failure: null, next_action: null, buyer: null, metadata: null, hold_expires_at: null,
      created_at: new Date(now).toISOString(), updated_at: new Date(now).toISOString(), version: 1,
    };
    const base = { v: PROTOCOL_VERSION, merchant_id: m, cmd_id: cmd, ts_ms: now, account: null, memo: null, result_code: 0, cmd_events: 2 };
    // As the engine makes them (engine/shards/outcome.ts): the state after the command on the last event only.
    const authorized: EngineEvent = { ...base, id: `evt_${cmd}_0`, type: 'payment.authorized', payment: null, postings: [] };
    const succeeded: EngineEvent = {
      ...base, id: `evt_${cmd}_1`, type: 'payment.succeeded', payment, payment_record: { id: payment.id, status: 'succeeded', notify_url: '' },
      postings: [
        { kind: 'hold', ledger_account: 'wallet:acc:available', amount: -900, currency: 'CNY' },
        { kind: 'hold', ledger_account: 'wallet:acc:held', amount: 900, currency: 'CNY' },
        { kind: 'capture', ledger_account: 'wallet:acc:held', amount: -900, currency: 'CNY' },
        { kind: 'capture', ledger_account: 'merchant:settlement', amount: 900, currency: 'CNY' },
      ],
    };
    expect((await writeEvents(pool, [{ seq: 7, event: authorized }, { seq: 7, event: succeeded }])).inserted).toBe(2);
    const rows = await pool.query<{ id: string; payment_id: string | null; account_id: string | null; has_payment: boolean }>(
      `SELECT id, payment_id, account_id, json_typeof(body->'payment') <> 'null' AS has_payment FROM events WHERE merchant_id = $1 ORDER BY id`, [m],
    );
    expect(rows.rows).toEqual([
      { id: authorized.id, payment_id: payment.id, account_id: 'acc', has_payment: false },
      { id: succeeded.id, payment_id: payment.id, account_id: 'acc', has_payment: true },
    ]);
    const paid = await pool.query<{ status: string; amount_captured: string }>('SELECT status, amount_captured FROM payments WHERE id = $1', [payment.id]);
    expect(paid.rows.map((r) => [r.status, Number(r.amount_captured)])).toEqual([['succeeded', 900]]);
  });
});
