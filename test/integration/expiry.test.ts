// The engine releases expired holds by itself: the shard's sweeper publishes payment.expire
// through the command stream; after a restart the new owner finds open holds in Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type RunningEngine } from '../../engine/service.ts';
import { creditAccount } from '../../scripts/ops.ts';
import { startHarness, type Harness } from '../harness.ts';
import { uniqueId, waitFor } from '../helpers.ts';

let h: Harness;
let merchant: { id: string; secret: string };
let restarted: RunningEngine | null = null;

beforeAll(async () => {
  h = await startHarness();
  merchant = await h.newMerchant();
  expect((await h.call(merchant, 'POST', '/v1/accounts', { account_id: 'acc_1', currency: 'CNY' })).statusCode).toBe(201);
  await creditAccount(h.ingress.ctx.client, merchant.id, 'acc_1', 10_000, 'CNY', 'float');
});
afterAll(async () => {
  await restarted?.stop();
  await h?.stop();
});

const hold = (ttlS: number) =>
  h.call(merchant, 'POST', '/v1/payments', {
    out_trade_no: uniqueId('T'), amount: 1500, currency: 'CNY', method: 'balance', account_id: 'acc_1', capture: 'manual', hold_ttl_s: ttlS, scene: 'pc',
  });

const statusOf = async (id: string) => (await h.call(merchant, 'GET', `/v1/payments/${id}`)).json().status as string;

describe('hold expiry', () => {
  it('expires a hold at its deadline without being asked, releases it, and refuses a late capture', async () => {
    const created = await hold(1);
    expect(created.json().status).toBe('authorized');
    expect((await h.call(merchant, 'GET', '/v1/accounts/acc_1')).json()).toMatchObject({ held: 1500 });
    const id = created.json().id as string;
    await waitFor('payment expired', async () => (await statusOf(id)) === 'expired', 10_000);
    expect((await h.call(merchant, 'GET', '/v1/accounts/acc_1')).json()).toMatchObject({ available: 10_000, held: 0 });
    const late = await h.call(merchant, 'POST', `/v1/payments/${id}/capture`, {});
    expect(late.statusCode).toBe(409);
    expect(late.json().code).toBe('payment.invalid_transition');
    const row = await waitFor('expired in Postgres', async () => {
      const r = await h.pool.query('SELECT status FROM payments WHERE id = $1', [id]);
      return r.rows[0]?.status === 'expired' ? r.rows[0] : null;
    });
    expect(row.status).toBe('expired');
    const events = await h.pool.query(`SELECT type FROM events WHERE payment_id = $1 ORDER BY stream_seq`, [id]);
    expect(events.rows.map((r) => r.type)).toEqual(['payment.authorized', 'payment.expired']);
  });

  it('a new engine finds the open holds of its shards in Redis and expires them', async () => {
    const created = await hold(3);
    const id = created.json().id as string;
    await h.engine?.stop();
    restarted = await startEngine(h.config, { engineId: uniqueId('e2') });
    await waitFor('payment expired after restart', async () => (await statusOf(id)) === 'expired', 15_000);
    expect((await h.call(merchant, 'GET', '/v1/accounts/acc_1')).json()).toMatchObject({ available: 10_000, held: 0 });
  });
});
