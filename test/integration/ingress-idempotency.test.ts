// Idempotency under concurrency, through the real pipeline: 50 identical creates at once make one
// payment (in Redis and, once settled, in Postgres), and every other answer is 409
// idempotency.in_progress or a byte-for-byte replay of the 201; 50 creates with different keys but
// one out_trade_no make one payment and 49 × 409 payment.duplicate_out_trade_no naming it. A
// balance create's key is completed by the engine (paymentCreate-11): its replays are the op record
// rendered, byte for byte the first answer, and no answer is stored beside it.
import { setTimeout as sleep } from 'node:timers/promises';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForSettlement } from '../../engine/rebuild/index.ts';
import { merchantKeys } from '../../engine/redis/keys.ts';
import { idempotencyKeySha256 } from '../../ingress/idempotency.ts';
import { creditAccount } from '../../scripts/ops.ts';
import { startHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId } from '../helpers.ts';
import { namespaceKeys, startPrivateRedis, type PrivateServer } from './ingress-servers.ts';

const CONCURRENT = 50;
const FLOAT = 1_000_000;

let redisServer: PrivateServer;
let h: Harness;
let merchant: { id: string; secret: string };
const accountId = 'acc_idem';

beforeAll(async () => {
  // A private Redis: counting payment keys on the shared one (millions of keys) takes seconds.
  redisServer = await startPrivateRedis();
  h = await startHarness({ config: testConfig({ REDIS_URL: redisServer.url }) });
  merchant = await h.newMerchant();
  expect((await h.call(merchant, 'POST', '/v1/accounts', { account_id: accountId, currency: 'CNY' })).statusCode).toBe(201);
  await creditAccount(h.ingress.ctx.client, merchant.id, accountId, FLOAT, 'CNY', 'float');
});
afterAll(async () => {
  await h?.stop();
  await redisServer?.close();
});

const keys = () => merchantKeys(h.names.redisPrefix, merchant.id);

/** Payment ids in Redis for this merchant. */
async function redisPaymentIds(): Promise<string[]> {
  const prefix = `${keys().base}pay:`;
  return (await namespaceKeys(h.ingress.ctx.redis, h.names.redisPrefix)).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
}

async function postgresPayments(outTradeNo: string): Promise<{ id: string; status: string }[]> {
  await waitForSettlement(h.ingress.ctx.jsm, h.names, 30_000);
  const r = await h.pool.query<{ id: string; status: string }>('SELECT id, status FROM payments WHERE merchant_id = $1 AND out_trade_no = $2', [merchant.id, outTradeNo]);
  return r.rows;
}

async function available(): Promise<{ available: number; held: number }> {
  return (await h.call(merchant, 'GET', `/v1/accounts/${accountId}`)).json();
}

describe('idempotency under concurrency', () => {
  it('50 identical creates at once: one payment; the rest 409 in_progress or byte-for-byte replays', async () => {
    const before = new Set(await redisPaymentIds());
    const funds = await available();
    const body = JSON.stringify({ out_trade_no: uniqueId('T'), amount: 1234, currency: 'CNY', method: 'balance', account_id: accountId, capture: 'manual', scene: 'pc' });
    const key = uniqueId('idem');
    // Spread over ~500 ms so that some arrive while the first runs and some after it finished.
    const responses = await Promise.all(
      Array.from({ length: CONCURRENT }, async (_, i) => {
        await sleep((i % 25) * 20);
        return h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
      }),
    );

    const originals = responses.filter((r) => r.statusCode === 201 && r.headers['idempotent-replayed'] === undefined);
    expect(originals).toHaveLength(1);
    const first = originals[0] as LightMyRequestResponse;
    const payment = first.json();
    expect(payment.status).toBe('authorized');
    for (const r of responses) {
      if (r === first) continue;
      if (r.statusCode === 409) {
        expect(r.json().code).toBe('idempotency.in_progress');
        continue;
      }
      expect(r.statusCode).toBe(201);
      expect(r.headers['idempotent-replayed']).toBe('true');
      expect(r.rawPayload.equals(first.rawPayload)).toBe(true);
      expect([r.headers['content-type'], r.headers.location]).toEqual([first.headers['content-type'], first.headers.location]);
    }
    // After the storm, the same request is a replay again, byte for byte.
    const later = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(later.headers['idempotent-replayed']).toBe('true');
    expect(later.rawPayload.equals(first.rawPayload)).toBe(true);

    const created = (await redisPaymentIds()).filter((id) => !before.has(id));
    expect(created).toEqual([payment.id]);
    expect(await available()).toEqual({ ...funds, available: funds.available - 1234, held: funds.held + 1234 });
    expect(await postgresPayments(payment.out_trade_no)).toEqual([{ id: payment.id, status: 'authorized' }]);
    const events = await h.pool.query<{ type: string }>('SELECT type FROM events WHERE payment_id = $1', [payment.id]);
    expect(events.rowCount).toBeGreaterThan(0);
    expect(new Set(events.rows.map((e) => e.type)).size).toBe(events.rowCount); // the create's events, none twice
  });

  it('50 creates with different keys and one out_trade_no: one payment, 49 × 409 duplicate naming it', async () => {
    const before = new Set(await redisPaymentIds());
    const funds = await available();
    const outTradeNo = uniqueId('T');
    const body = JSON.stringify({ out_trade_no: outTradeNo, amount: 777, currency: 'CNY', method: 'balance', account_id: accountId, capture: 'manual', scene: 'app' });
    const responses = await Promise.all(Array.from({ length: CONCURRENT }, () => h.call(merchant, 'POST', '/v1/payments', body)));

    const created = responses.filter((r) => r.statusCode === 201);
    expect(created).toHaveLength(1);
    const payment = (created[0] as LightMyRequestResponse).json();
    const duplicates = responses.filter((r) => r.statusCode === 409);
    expect(duplicates).toHaveLength(CONCURRENT - 1);
    for (const d of duplicates) expect(d.json()).toMatchObject({ code: 'payment.duplicate_out_trade_no', payment_id: payment.id });

    expect((await redisPaymentIds()).filter((id) => !before.has(id))).toEqual([payment.id]);
    expect(await h.ingress.ctx.redis.get(keys().outTradeNo(outTradeNo))).toBe(payment.id);
    expect(await available()).toEqual({ ...funds, available: funds.available - 777, held: funds.held + 777 });
    expect(await postgresPayments(outTradeNo)).toEqual([{ id: payment.id, status: 'authorized' }]);
  });

  it('a balance create the engine completed replays its op record, byte for byte, for every outcome', async () => {
    const bodies = {
      succeeded: { amount: 321, capture: 'automatic', subject: '点卡 100', buyer: { user_id: 'u-1', device_id: 'd-1', ip: '10.0.0.1' }, metadata: { order: 'A-1', 备注: '中文' }, notify_url: 'https://shop.example/n' },
      authorized: { amount: 654, capture: 'manual', scene: 'h5' },
      failed: { amount: FLOAT + 1, capture: 'automatic' }, // more than the wallet holds: 201 failed
    };
    for (const [status, extra] of Object.entries(bodies)) {
      const body = JSON.stringify({ out_trade_no: uniqueId('T'), currency: 'CNY', method: 'balance', account_id: accountId, scene: 'pc', ...extra });
      const key = uniqueId('idem');
      const first = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
      expect([first.statusCode, first.body]).toEqual([201, expect.anything()]);
      expect(first.json().status).toBe(status);
      // Completed by the engine: the record names the command; no response of its own.
      const record = await h.ingress.ctx.redis.hgetall(keys().idempotency(idempotencyKeySha256(key)));
      expect(record).toMatchObject({ state: 'done' });
      expect(Object.keys(record).sort()).toEqual(['cmd', 'fp', 'state']);
      const funds = await available();
      const again = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
      expect(again.statusCode).toBe(201);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.rawPayload.toString()).toBe(first.rawPayload.toString());
      expect([again.headers['content-type'], again.headers.location]).toEqual([first.headers['content-type'], first.headers.location]);
      expect(await available()).toEqual(funds);
    }
  });

  it('a completed key whose op record is gone runs again under the same command: the payment as it is, nothing moved twice', async () => {
    const body = JSON.stringify({ out_trade_no: uniqueId('T'), amount: 432, currency: 'CNY', method: 'balance', account_id: accountId, capture: 'automatic', scene: 'pc' });
    const key = uniqueId('idem');
    const first = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(first.statusCode).toBe(201);
    const record = keys().idempotency(idempotencyKeySha256(key));
    const cmdId = await h.ingress.ctx.redis.hget(record, 'cmd');
    expect(await h.ingress.ctx.redis.del(keys().op(cmdId as string))).toBe(1);
    const funds = await available();
    const again = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(again.statusCode).toBe(201);
    expect(again.json()).toMatchObject({ id: first.json().id, status: 'succeeded', amount_captured: 432 });
    expect(await available()).toEqual(funds);
    // The ingress stored that answer itself: the next replay is it.
    expect(await h.ingress.ctx.redis.hget(record, 'status')).toBe('201');
    const third = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(third.headers['idempotent-replayed']).toBe('true');
    expect(third.rawPayload.toString()).toBe(again.rawPayload.toString());
  });
});
