// Risk rules end to end on real NATS JetStream, Redis and Postgres, through the real ingress:
// operator commands (through the engine) → a blacklisted buyer gets 201 failed risk.blacklisted;
// a payment in unusual hours → requires_action → verify → authorized → capture → succeeded; the
// risk events land in Postgres. The engine's clock is fixed at 02:30 Asia/Shanghai.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisBatch } from '../../engine/rebuild/batch.ts';
import { merchantKeys } from '../../engine/redis/keys.ts';
import { riskRebuilder } from '../../engine/risk/rebuild.ts';
import { changeBlacklist, configureRisk, creditAccount } from '../../scripts/ops.ts';
import { startHarness, type Harness } from '../harness.ts';
import { uniqueId, waitFor } from '../helpers.ts';

// 2025-11-28 18:30 UTC = 2025-11-29 02:30 in Asia/Shanghai.
const FIXED_MS = Date.UTC(2025, 10, 28, 18, 30, 0);
const FUNDS = 100_000;

let h: Harness;
let merchant: { id: string; secret: string };
const accountId = 'acc_risk';

beforeAll(async () => {
  h = await startHarness({ engine: { now: () => FIXED_MS } });
  merchant = await h.newMerchant();
  const res = await h.call(merchant, 'POST', '/v1/accounts', { account_id: accountId, currency: 'CNY' });
  expect(res.statusCode).toBe(201);
  await creditAccount(h.ingress.ctx.client, merchant.id, accountId, FUNDS, 'CNY', 'risk test float');
});
afterAll(async () => {
  await h?.stop();
});

const paymentBody = (buyer: Record<string, string>, capture: 'manual' | 'automatic' = 'manual') => ({
  out_trade_no: uniqueId('T'), amount: 1999, currency: 'CNY', method: 'balance', account_id: accountId,
  capture, hold_ttl_s: 900, scene: 'app', buyer,
});

const wallet = async () => (await h.call(merchant, 'GET', `/v1/accounts/${accountId}`)).json();

describe('risk rules through the ingress', () => {
  it('answers a blacklisted buyer 201 failed risk.blacklisted, moving no money', async () => {
    const change = await changeBlacklist(h.ingress.ctx.client, merchant.id, 'add', 'device', 'd_stolen');
    expect(change).toMatchObject({ action: 'add', kind: 'device', value: 'd_stolen', changed: true });
    const before = await wallet();

    const res = await h.call(merchant, 'POST', '/v1/payments', paymentBody({ user_id: 'u_1', device_id: 'd_stolen' }));
    expect(res.statusCode).toBe(201);
    const p = res.json();
    expect(p).toMatchObject({ status: 'failed', failure: { code: 'risk.blacklisted' }, next_action: null, amount_captured: 0 });
    expect(await wallet()).toEqual(before);

    const row = await waitFor('refused payment row', async () => {
      const r = await h.pool.query('SELECT status, failure_code FROM payments WHERE id = $1', [p.id]);
      return r.rows[0];
    });
    expect(row).toEqual({ status: 'failed', failure_code: 'risk.blacklisted' });
    const postings = await h.pool.query('SELECT count(*)::int AS n FROM postings p JOIN events e ON e.id = p.event_id WHERE e.payment_id = $1', [p.id]);
    expect(postings.rows[0].n).toBe(0);
    const listed = await waitFor('blacklist row', async () => {
      const r = await h.pool.query('SELECT kind, value, listed FROM risk_blacklist WHERE merchant_id = $1', [merchant.id]);
      return r.rows[0];
    });
    expect(listed).toEqual({ kind: 'device', value: 'd_stolen', listed: true });
  });

  it('challenges a payment in unusual hours: requires_action → verify → authorized → capture', async () => {
    const settings = await configureRisk(h.ingress.ctx.client, merchant.id, { unusual_hours: [{ from: '01:00', to: '05:00' }] });
    expect(settings.unusual_hours).toEqual([{ from: '01:00', to: '05:00' }]);
    const before = await wallet();

    const create = await h.call(merchant, 'POST', '/v1/payments', paymentBody({ user_id: 'u_2', device_id: 'd_2', ip: '203.0.113.20' }));
    expect(create.statusCode).toBe(201);
    const p = create.json();
    expect(p).toMatchObject({ status: 'requires_action', next_action: { type: 'verify' }, failure: null });
    // The funds are held already, so a verified payment cannot fail for lack of them.
    expect(await wallet()).toMatchObject({ available: before.available - 1999, held: before.held + 1999 });

    const early = await h.call(merchant, 'POST', `/v1/payments/${p.id}/capture`, {});
    expect(early.statusCode).toBe(409);
    expect(early.json().code).toBe('payment.invalid_transition');

    const key = uniqueId('idem');
    const verify = await h.call(merchant, 'POST', `/v1/payments/${p.id}/verify`, {}, { 'idempotency-key': key });
    expect(verify.statusCode).toBe(200);
    expect(verify.json()).toMatchObject({ id: p.id, status: 'authorized', next_action: null });
    const again = await h.call(merchant, 'POST', `/v1/payments/${p.id}/verify`, {}, { 'idempotency-key': key });
    expect(again.body).toBe(verify.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const twice = await h.call(merchant, 'POST', `/v1/payments/${p.id}/verify`, {});
    expect(twice.statusCode).toBe(409);

    const capture = await h.call(merchant, 'POST', `/v1/payments/${p.id}/capture`, {});
    expect(capture.statusCode).toBe(200);
    expect(capture.json()).toMatchObject({ status: 'succeeded', amount_captured: 1999 });
    expect(await wallet()).toMatchObject({ available: before.available - 1999, held: before.held });

    const types = await waitFor('events of the challenged payment', async () => {
      const r = await h.pool.query<{ type: string }>('SELECT type FROM events WHERE payment_id = $1 ORDER BY stream_seq, id', [p.id]);
      return r.rows.length === 3 ? r.rows.map((x) => x.type) : null;
    });
    expect(types).toEqual(['payment.requires_action', 'payment.authorized', 'payment.succeeded']);
    const unbalanced = await h.pool.query(
      'SELECT event_id FROM postings WHERE merchant_id = $1 GROUP BY event_id, currency HAVING sum(amount) <> 0', [merchant.id]);
    expect(unbalanced.rowCount).toBe(0);
    const stored = await waitFor('risk settings row', async () => {
      const r = await h.pool.query('SELECT settings FROM risk_settings WHERE merchant_id = $1', [merchant.id]);
      return r.rows[0];
    });
    expect(stored.settings).toMatchObject({ unusual_hours: [{ from: '01:00', to: '05:00' }], daily_caps: { CNY: 500_000 } });
  });

  it('verifies a capture-automatic challenge straight to succeeded; verify of an unknown payment is 404', async () => {
    const create = await h.call(merchant, 'POST', '/v1/payments', paymentBody({ user_id: 'u_3' }, 'automatic'));
    expect(create.json().status).toBe('requires_action');
    const verify = await h.call(merchant, 'POST', `/v1/payments/${create.json().id}/verify`, {});
    expect(verify.statusCode).toBe(200);
    expect(verify.json()).toMatchObject({ status: 'succeeded', amount_captured: 1999 });
    const missing = await h.call(merchant, 'POST', '/v1/payments/pay_nope/verify', {});
    expect(missing.statusCode).toBe(404);
    const bad = await h.call(merchant, 'POST', `/v1/payments/${create.json().id}/verify`, { code: '123456' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('validation.failed');
  });

  it('rebuilds the risk settings and the blacklist in Redis from Postgres', async () => {
    await changeBlacklist(h.ingress.ctx.client, merchant.id, 'add', 'ip', '2001:DB8::7');
    await changeBlacklist(h.ingress.ctx.client, merchant.id, 'add', 'user', 'u_gone');
    await changeBlacklist(h.ingress.ctx.client, merchant.id, 'remove', 'user', 'u_gone');
    await configureRisk(h.ingress.ctx.client, merchant.id, { daily_caps: { CNY: null, USD: 7_000 }, velocity: { max: 5, window_s: 30 } });
    await waitFor('risk rows settled', async () => {
      const r = await h.pool.query(
        `SELECT 1 FROM risk_blacklist b, risk_settings s WHERE b.merchant_id = $1 AND s.merchant_id = $1
         AND b.value = 'u_gone' AND NOT b.listed AND s.settings->'velocity'->>'max' = '5'`, [merchant.id]);
      return r.rowCount === 1;
    });
    const redis = new Redis(h.config.redisUrl);
    try {
      const live = merchantKeys(h.names.redisPrefix, merchant.id);
      const prefix = `${h.names.redisPrefix}rb`;
      const keys = merchantKeys(prefix, merchant.id);
      const batch = new RedisBatch(redis);
      const written = await riskRebuilder.rebuild({
        pool: h.pool, redis, batch, prefix, shardCount: h.config.shardCount, merchantId: merchant.id, keys, nowMs: Date.now(),
        opTtlS: h.config.opTtlS, windowStartMs: 0, incomplete: { cmdIds: new Set(), eventIds: [], paymentIds: [] }, inexact: () => undefined,
      });
      await batch.flush();
      expect(written).toBe(3); // the settings hash, two listed entries
      expect((await redis.smembers(keys.riskBlacklist)).sort()).toEqual((await redis.smembers(live.riskBlacklist)).sort());
      expect(await redis.smembers(keys.riskBlacklist)).toContain('ip:2001:db8::7');
      expect(await redis.hgetall(keys.riskConfig)).toEqual({
        'cap:CNY': '0', 'cap:USD': '7000', velocity_max: '5', velocity_window_s: '30', device_accounts_max: '3', unusual_hours: '60-300',
      });
      await redis.unlink(keys.riskBlacklist, keys.riskConfig);
    } finally {
      redis.disconnect();
    }
  });
});
