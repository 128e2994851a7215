// The settlement writer against the real Postgres: idempotent on the event id, also when a
// redelivery puts the same event twice into one batch, and across batches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

  it('refuses an unbalanced event and writes nothing of its batch', async () => {
    const m = uniqueId('m');
    const bad = { ...credit(m, uniqueId('evt'), 10), postings: [{ kind: 'adjustment' as const, ledger_account: 'wallet:acc:available', amount: 10, currency: 'CNY' as const }] };
    await expect(writeEvents(pool, [{ seq: 1, event: credit(m, uniqueId('evt'), 5) }, { seq: 2, event: bad }])).rejects.toThrow(/unbalanced/);
    expect(await balance(m)).toBe(0);
  });
});
