// Refunds end to end on real NATS JetStream, Redis and Postgres, through the real ingress:
// capture → partial refunds → the one that would exceed the captured amount is refused (409) →
// settlement writes refunds, postings (kind refund) and amount_refunded → the ledger equals Redis.
// Idempotent POSTs, 404 for another merchant, and bad input that publishes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { creditAccount } from '../../scripts/ops.ts';
import { startHarness, type Harness } from '../harness.ts';
import { uniqueId, waitFor } from '../helpers.ts';

let h: Harness;
let merchant: { id: string; secret: string };
const accountId = 'acc_refund';
const CREDIT = 100_000;

beforeAll(async () => {
  h = await startHarness();
  merchant = await h.newMerchant();
  const res = await h.call(merchant, 'POST', '/v1/accounts', { account_id: accountId, currency: 'CNY' });
  expect(res.statusCode).toBe(201);
  await creditAccount(h.ingress.ctx.client, merchant.id, accountId, CREDIT, 'CNY', 'initial float');
});
afterAll(async () => {
  await h?.stop();
});

async function pay(amount: number, capture: 'manual' | 'automatic' = 'automatic') {
  const res = await h.call(merchant, 'POST', '/v1/payments', {
    out_trade_no: uniqueId('T'), amount, currency: 'CNY', method: 'balance', account_id: accountId, capture, scene: 'pc',
  });
  expect(res.statusCode).toBe(201);
  return res.json() as { id: string; status: string };
}

const refundUrl = (paymentId: string) => `/v1/payments/${paymentId}/refunds`;

async function ledger(): Promise<Map<string, number>> {
  const r = await h.pool.query<{ ledger_account: string; b: number }>(
    'SELECT ledger_account, sum(amount)::bigint AS b FROM postings WHERE merchant_id = $1 GROUP BY ledger_account', [merchant.id]);
  return new Map(r.rows.map((x) => [x.ledger_account, x.b]));
}

async function redisAccount() {
  const a = await h.ingress.ctx.redis.hgetall(h.ingress.ctx.store.keys(merchant.id).account(accountId));
  return { available: Number(a.available), held: Number(a.held), credited: Number(a.credited), captured: Number(a.captured), refunded: Number(a.refunded) };
}

describe('refunds', () => {
  it('refunds a partial capture in parts, refuses the refund that would exceed it, and settles into a ledger equal to Redis', async () => {
    const held = await pay(5000, 'manual');
    const capture = await h.call(merchant, 'POST', `/v1/payments/${held.id}/capture`, { amount: 4000 });
    expect(capture.json()).toMatchObject({ status: 'succeeded', amount_captured: 4000 });

    const first = await h.call(merchant, 'POST', refundUrl(held.id), { amount: 1500, reason: 'one card was faulty' });
    expect(first.statusCode).toBe(201);
    const r1 = first.json();
    expect(r1).toEqual({
      id: expect.stringMatching(/^re_/), payment_id: held.id, amount: 1500, currency: 'CNY', status: 'succeeded',
      reason: 'one card was faulty', created_at: expect.any(String),
    });
    expect(first.headers.location).toBe(`/v1/refunds/${r1.id}`);
    const read = await h.call(merchant, 'GET', `/v1/refunds/${r1.id}`);
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual(r1);

    const over = await h.call(merchant, 'POST', refundUrl(held.id), { amount: 2501 });
    expect(over.statusCode).toBe(409);
    expect(over.json()).toMatchObject({ code: 'payment.invalid_transition', payment_id: held.id });

    const second = await h.call(merchant, 'POST', refundUrl(held.id), { amount: 2500 });
    expect(second.statusCode).toBe(201);
    expect(second.json()).toMatchObject({ amount: 2500, status: 'succeeded', reason: null });
    const more = await h.call(merchant, 'POST', refundUrl(held.id), { amount: 1 });
    expect(more.statusCode).toBe(409);
    expect(more.json().code).toBe('payment.invalid_transition');

    // Fully refunded: still succeeded (API.md has no other status), amount_refunded = amount_captured.
    const payment = (await h.call(merchant, 'GET', `/v1/payments/${held.id}`)).json();
    expect(payment).toMatchObject({ status: 'succeeded', amount_captured: 4000, amount_refunded: 4000 });
    expect((await h.call(merchant, 'GET', `/v1/accounts/${accountId}`)).json()).toMatchObject({ available: CREDIT, held: 0 });

    await waitFor('refunds and amount_refunded in Postgres', async () => {
      const p = await h.pool.query('SELECT amount_refunded FROM payments WHERE id = $1', [held.id]);
      const r = await h.pool.query('SELECT count(*)::int AS n FROM refunds WHERE merchant_id = $1 AND payment_id = $2', [merchant.id, held.id]);
      return p.rows[0]?.amount_refunded === 4000 && r.rows[0]?.n === 2;
    });
    const rows = await h.pool.query(
      'SELECT id, amount, currency, status, reason, account_id FROM refunds WHERE payment_id = $1 ORDER BY created_at, amount', [held.id]);
    expect(rows.rows).toEqual([
      { id: r1.id, amount: 1500, currency: 'CNY', status: 'succeeded', reason: 'one card was faulty', account_id: accountId },
      { id: second.json().id, amount: 2500, currency: 'CNY', status: 'succeeded', reason: null, account_id: accountId },
    ]);
    const events = await h.pool.query(`SELECT body FROM events WHERE payment_id = $1 AND type = 'refund.succeeded'`, [held.id]);
    expect(events.rowCount).toBe(2);
    for (const e of events.rows) {
      expect(e.body.refund.payment_id).toBe(held.id);
      expect(e.body.payment_record.id).toBe(held.id);
      expect(e.body.postings.map((x: { kind: string }) => x.kind)).toEqual(['refund', 'refund']);
    }

    // The ledger equals Redis once everything is settled, and the wallet invariant holds.
    const account = await redisAccount();
    expect(account.available + account.held).toBe(account.credited - account.captured + account.refunded);
    await waitFor('ledger equal to Redis', async () => {
      const l = await ledger();
      const a = await redisAccount();
      return l.get(`wallet:${accountId}:available`) === a.available && (l.get(`wallet:${accountId}:held`) ?? 0) === a.held;
    });
    const l = await ledger();
    const refunded = await h.pool.query<{ b: number }>(
      `SELECT sum(amount)::bigint AS b FROM postings WHERE merchant_id = $1 AND ledger_account = $2 AND kind = 'refund'`,
      [merchant.id, `wallet:${accountId}:available`]);
    expect(refunded.rows[0]?.b).toBe(account.refunded);
    expect(l.get('merchant:settlement')).toBe(account.captured - account.refunded);
    expect(l.get('merchant:adjustments')).toBe(-account.credited);
    const unbalanced = await h.pool.query(
      'SELECT event_id FROM postings WHERE merchant_id = $1 GROUP BY event_id, currency HAVING sum(amount) <> 0', [merchant.id]);
    expect(unbalanced.rowCount).toBe(0);
  });

  it('replays a refund byte for byte under the same Idempotency-Key and applies it once', async () => {
    const p = await pay(800);
    const key = uniqueId('idem');
    const first = await h.call(merchant, 'POST', refundUrl(p.id), { amount: 300 }, { 'idempotency-key': key });
    const again = await h.call(merchant, 'POST', refundUrl(p.id), { amount: 300 }, { 'idempotency-key': key });
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(201);
    expect(again.body).toBe(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const reused = await h.call(merchant, 'POST', refundUrl(p.id), { amount: 301 }, { 'idempotency-key': key });
    expect(reused.statusCode).toBe(422);
    expect(reused.json().code).toBe('idempotency.key_reused');
    expect((await h.call(merchant, 'GET', `/v1/payments/${p.id}`)).json().amount_refunded).toBe(300);
  });

  it('refuses a payment that is not succeeded (409) and an unknown one (404)', async () => {
    const held = await pay(700, 'manual');
    const notCaptured = await h.call(merchant, 'POST', refundUrl(held.id), { amount: 100 });
    expect(notCaptured.statusCode).toBe(409);
    expect(notCaptured.json().code).toBe('payment.invalid_transition');
    const unknown = await h.call(merchant, 'POST', refundUrl('pay_nobody'), { amount: 100 });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('payment.not_found');
    const missing = await h.call(merchant, 'GET', '/v1/refunds/re_nobody');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('refund.not_found');
  });

  it("answers 404 for another merchant's payment and refund, and changes nothing", async () => {
    const p = await pay(900);
    const mine = await h.call(merchant, 'POST', refundUrl(p.id), { amount: 100 });
    expect(mine.statusCode).toBe(201);
    const other = await h.newMerchant();
    const refund = await h.call(other, 'POST', refundUrl(p.id), { amount: 100 });
    expect(refund.statusCode).toBe(404);
    expect(refund.json().code).toBe('payment.not_found');
    const read = await h.call(other, 'GET', `/v1/refunds/${mine.json().id}`);
    expect(read.statusCode).toBe(404);
    expect(read.json().code).toBe('refund.not_found');
    expect((await h.call(merchant, 'GET', `/v1/payments/${p.id}`)).json().amount_refunded).toBe(100);
  });

  it('reads a refund from Postgres when Redis no longer has it', async () => {
    const p = await pay(600);
    const made = (await h.call(merchant, 'POST', refundUrl(p.id), { amount: 250, reason: 'r' })).json();
    await waitFor('refund row', async () => {
      const r = await h.pool.query('SELECT 1 FROM refunds WHERE merchant_id = $1 AND id = $2', [merchant.id, made.id]);
      return r.rowCount === 1;
    });
    await h.ingress.ctx.redis.del(h.ingress.ctx.store.keys(merchant.id).refund(made.id));
    const read = await h.call(merchant, 'GET', `/v1/refunds/${made.id}`);
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual(made);
  });

  it('answers bad input with 400 validation.failed and publishes nothing', async () => {
    const p = await pay(500);
    const before = await h.streamMessages('cmd');
    const bodies: unknown[] = [
      { amount: 1.5 }, { amount: 0 }, { amount: -100 }, { amount: '100' }, {}, { amount: 100, tip: 1 },
      { amount: 100, reason: '' }, { amount: 100, reason: 'x'.repeat(201) }, { amount: 100, reason: 7 },
    ];
    for (const body of bodies) {
      const res = await h.call(merchant, 'POST', refundUrl(p.id), body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().code).toBe('validation.failed');
    }
    const malformed = await h.call(merchant, 'POST', refundUrl(p.id), '{"amount": 1');
    expect(malformed.json().code).toBe('request.malformed_json');
    expect(await h.streamMessages('cmd')).toBe(before);
    expect((await h.call(merchant, 'GET', `/v1/payments/${p.id}`)).json().amount_refunded).toBe(0);
  });
});
