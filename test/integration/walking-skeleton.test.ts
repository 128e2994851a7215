// The walking skeleton, end to end on real NATS JetStream, Redis and Postgres:
// signed HTTP → ingress → JetStream → engine actor → Lua hold → reply → capture → event →
// settlement consumer → Postgres payment + balanced double-entry postings → GET shows succeeded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { creditAccount } from '../../scripts/ops.ts';
import { startHarness, type Harness } from '../harness.ts';
import { uniqueId, waitFor } from '../helpers.ts';

let h: Harness;
let merchant: { id: string; secret: string };
const accountId = 'acc_42';

beforeAll(async () => {
  h = await startHarness();
  merchant = await h.newMerchant();
  const res = await h.call(merchant, 'POST', '/v1/accounts', { account_id: accountId, currency: 'CNY' });
  expect(res.statusCode).toBe(201);
  await creditAccount(h.ingress.ctx.client, merchant.id, accountId, 100_000, 'CNY', 'initial float');
});
afterAll(async () => {
  await h?.stop();
});

async function ledgerBalance(ledgerAccount: string): Promise<number> {
  const r = await h.pool.query<{ b: number | null }>(
    'SELECT sum(amount)::bigint AS b FROM postings WHERE merchant_id = $1 AND ledger_account = $2',
    [merchant.id, ledgerAccount],
  );
  return r.rows[0]?.b ?? 0;
}

describe('walking skeleton', () => {
  it('authorizes, captures, settles into Postgres and reads back succeeded', async () => {
    const create = await h.call(merchant, 'POST', '/v1/payments', {
      out_trade_no: uniqueId('T'), amount: 1999, currency: 'CNY', method: 'balance', account_id: accountId,
      capture: 'manual', hold_ttl_s: 900, scene: 'pc', subject: 'Game card 100',
      buyer: { user_id: 'u_9', device_id: 'd_77', ip: '203.0.113.9' }, metadata: { sku: 'card-100' },
    });
    expect(create.statusCode).toBe(201);
    const payment = create.json();
    expect(payment).toMatchObject({ status: 'authorized', amount: 1999, currency: 'CNY', amount_captured: 0, merchant_id: merchant.id });
    expect(create.headers.location).toBe(`/v1/payments/${payment.id}`);

    const held = await h.call(merchant, 'GET', `/v1/accounts/${accountId}`);
    expect(held.json()).toMatchObject({ available: 100_000 - 1999, held: 1999 });

    const capture = await h.call(merchant, 'POST', `/v1/payments/${payment.id}/capture`, {});
    expect(capture.statusCode).toBe(200);
    expect(capture.json()).toMatchObject({ id: payment.id, status: 'succeeded', amount_captured: 1999 });

    const row = await waitFor('payment row succeeded', async () => {
      const r = await h.pool.query('SELECT status, amount_captured, version FROM payments WHERE id = $1', [payment.id]);
      return r.rows[0]?.status === 'succeeded' ? r.rows[0] : null;
    });
    expect(row).toMatchObject({ status: 'succeeded', amount_captured: 1999 });

    // Every event's postings sum to zero; wallet balances in the ledger equal Redis.
    const unbalanced = await h.pool.query(
      `SELECT event_id FROM postings WHERE merchant_id = $1 GROUP BY event_id, currency HAVING sum(amount) <> 0`, [merchant.id]);
    expect(unbalanced.rowCount).toBe(0);
    const acct = (await h.call(merchant, 'GET', `/v1/accounts/${accountId}`)).json();
    expect(acct).toMatchObject({ available: 100_000 - 1999, held: 0 });
    expect(await ledgerBalance(`wallet:${accountId}:available`)).toBe(acct.available);
    expect(await ledgerBalance(`wallet:${accountId}:held`)).toBe(0);
    expect(await ledgerBalance('merchant:settlement')).toBe(1999);
    expect(await ledgerBalance('merchant:adjustments')).toBe(-100_000);

    const adjustments = await h.pool.query(`SELECT kind, memo FROM postings WHERE merchant_id = $1 AND kind = 'adjustment'`, [merchant.id]);
    expect(adjustments.rows).toContainEqual({ kind: 'adjustment', memo: 'initial float' });

    const got = await h.call(merchant, 'GET', `/v1/payments/${payment.id}`);
    expect(got.statusCode).toBe(200);
    expect(got.json()).toMatchObject({ id: payment.id, status: 'succeeded', amount_captured: 1999 });
  });

  it('replays a POST byte for byte under the same Idempotency-Key and refuses the key for another body', async () => {
    const body = { out_trade_no: uniqueId('T'), amount: 500, currency: 'CNY', method: 'balance', account_id: accountId, scene: 'app' };
    const key = uniqueId('idem');
    const first = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    const again = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(201);
    expect(again.body).toBe(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const other = await h.call(merchant, 'POST', '/v1/payments', { ...body, amount: 501 }, { 'idempotency-key': key });
    expect(other.statusCode).toBe(422);
    expect(other.json().code).toBe('idempotency.key_reused');
  });

  it('rejects a second create with the same out_trade_no and names the existing payment', async () => {
    const body = { out_trade_no: uniqueId('T'), amount: 100, currency: 'CNY', method: 'balance', account_id: accountId, scene: 'h5' };
    const first = await h.call(merchant, 'POST', '/v1/payments', body);
    const second = await h.call(merchant, 'POST', '/v1/payments', body);
    expect(second.statusCode).toBe(409);
    expect(second.json()).toMatchObject({ code: 'payment.duplicate_out_trade_no', payment_id: first.json().id });
    const byOtn = await h.call(merchant, 'GET', `/v1/payments?out_trade_no=${body.out_trade_no}`);
    expect(byOtn.json().id).toBe(first.json().id);
  });

  it("answers 404 for another merchant's payment", async () => {
    const other = await h.newMerchant();
    const create = await h.call(merchant, 'POST', '/v1/payments', {
      out_trade_no: uniqueId('T'), amount: 100, currency: 'CNY', method: 'balance', account_id: accountId, scene: 'pc',
    });
    const res = await h.call(other, 'GET', `/v1/payments/${create.json().id}`);
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('payment.not_found');
  });
});
