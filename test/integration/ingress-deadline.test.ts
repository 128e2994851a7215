// The ingress when the engine is slow or NATS is gone (API.md: 202 + Location past the deadline;
// 503 engine.unavailable with nothing half-done).
//   1. No engine running: a create answers 202 processing + Location after the deadline; an engine
//      started later applies the command exactly once; the key replays the stored 202 byte for byte.
//   2. A private nats-server is stopped: a create answers 503 engine.unavailable and changes no
//      money state; the key stays retryable; after a restart the ingress reconnects by itself and
//      the same request with the same key succeeds, once.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForSettlement } from '../../engine/rebuild/index.ts';
import { merchantKeys } from '../../engine/redis/keys.ts';
import { startEngine, type RunningEngine } from '../../engine/service.ts';
import { creditAccount } from '../../scripts/ops.ts';
import { startHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId, waitFor } from '../helpers.ts';
import { namespaceKeys, startPrivateNats, startPrivateRedis, type PrivateServer } from './ingress-servers.ts';

const DEADLINE_MS = 300;
const FLOAT = 100_000;
const RECONNECT_MS_MAX = 30_000;
const NATS_DEFAULT_RECONNECT_ATTEMPTS = 10;

type Merchant = { id: string; secret: string };

async function setUpWallet(h: Harness, merchant: Merchant, accountId: string): Promise<void> {
  // A freshly started engine may miss a short deadline; the same key retries the same command.
  const key = uniqueId('idem');
  await waitFor('the account', async () => (await h.call(merchant, 'POST', '/v1/accounts', { account_id: accountId, currency: 'CNY' }, { 'idempotency-key': key })).statusCode === 201);
  await creditAccount(h.ingress.ctx.client, merchant.id, accountId, FLOAT, 'CNY', 'float');
}

const paymentBody = (accountId: string, amount: number) =>
  JSON.stringify({ out_trade_no: uniqueId('T'), amount, currency: 'CNY', method: 'balance', account_id: accountId, capture: 'manual', scene: 'pc' });

/** An ingress without an engine, and a merchant whose wallet a short-lived engine set up. */
async function withoutEngine(config: ReturnType<typeof testConfig>, accountId: string): Promise<{ h: Harness; merchant: Merchant }> {
  const h = await startHarness({ engine: false, config });
  const merchant = await h.newMerchant();
  // The wallet needs an engine; it is stopped again before the payments.
  const setup = await startEngine(h.config, { engineId: uniqueId('setup') });
  try {
    await setUpWallet(h, merchant, accountId);
  } finally {
    await setup.stop();
  }
  return { h, merchant };
}

async function settledPayments(h: Harness, merchantId: string, outTradeNo: string) {
  await waitForSettlement(h.ingress.ctx.jsm, h.names, 30_000);
  const r = await h.pool.query<{ id: string; status: string }>('SELECT id, status FROM payments WHERE merchant_id = $1 AND out_trade_no = $2', [merchantId, outTradeNo]);
  return r.rows;
}

describe('past the ingress deadline (no engine running)', () => {
  let h: Harness;
  let lateEngine: RunningEngine | null = null;
  let merchant: Merchant;
  const accountId = 'acc_late';

  beforeAll(async () => {
    ({ h, merchant } = await withoutEngine(testConfig({ PEAKPAY_INGRESS_DEADLINE_MS: String(DEADLINE_MS) }), accountId));
  });
  afterAll(async () => {
    await lateEngine?.stop();
    await h?.stop();
  });

  it('answers 202 processing + Location; a late engine applies the command once; the key replays the 202', async () => {
    const body = paymentBody(accountId, 2500);
    const key = uniqueId('idem');
    const cmdBefore = await h.streamMessages('cmd');
    const first = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(first.statusCode).toBe(202);
    const processing = first.json();
    expect(processing).toMatchObject({ status: 'processing', amount: 2500, currency: 'CNY', out_trade_no: JSON.parse(body).out_trade_no });
    expect(first.headers.location).toBe(`/v1/payments/${processing.id}`);
    expect(first.headers['retry-after']).toBe('1');
    expect(await h.streamMessages('cmd')).toBe(cmdBefore + 1);

    const replay = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(replay.statusCode).toBe(202);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.rawPayload.equals(first.rawPayload)).toBe(true);
    expect(replay.headers.location).toBe(first.headers.location);
    // Meanwhile the Location shows the payment as it was answered: processing, not 404.
    const queued = await h.call(merchant, 'GET', first.headers.location as string);
    expect(queued.statusCode).toBe(200);
    expect(queued.json()).toEqual(processing);
    expect(queued.headers['retry-after']).toBe('1');
    const byOtn = await h.call(merchant, 'GET', `/v1/payments?out_trade_no=${processing.out_trade_no}`);
    expect(byOtn.statusCode).toBe(200);
    expect(byOtn.json()).toEqual(processing);
    // One the engine will refuse (no such wallet): processing too, until the engine has decided.
    const refused = await h.call(merchant, 'POST', '/v1/payments', paymentBody('acc_nobody', 100), { 'idempotency-key': uniqueId('idem') });
    expect(refused.statusCode).toBe(202);
    expect((await h.call(merchant, 'GET', refused.headers.location as string)).json()).toMatchObject({ status: 'processing' });

    lateEngine = await startEngine(h.config, { engineId: uniqueId('late') });
    const decided = await waitFor('the late engine decides the payment', async () => {
      const res = await h.call(merchant, 'GET', first.headers.location as string);
      return res.statusCode === 200 && res.json().status !== 'processing' ? res.json() : null;
    });
    expect(decided).toMatchObject({ id: processing.id, status: 'authorized', amount: 2500 });
    // Once: held once in the wallet, one payment row, and the stored 202 is still what the key replays.
    expect((await h.call(merchant, 'GET', `/v1/accounts/${accountId}`)).json()).toMatchObject({ available: FLOAT - 2500, held: 2500 });
    expect(await settledPayments(h, merchant.id, processing.out_trade_no)).toEqual([{ id: processing.id, status: 'authorized' }]);
    const after = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(after.statusCode).toBe(202);
    expect(after.rawPayload.equals(first.rawPayload)).toBe(true);
    expect(await h.streamMessages('cmd')).toBe(cmdBefore + 2);
    // The engine decided the refused one without creating a payment: its Location is 404 now.
    await waitFor('the refused payment is decided', async () =>
      (await h.call(merchant, 'GET', refused.headers.location as string)).statusCode === 404);
    const refusedOtn = JSON.parse(refused.rawPayload.toString()).out_trade_no as string;
    expect((await h.call(merchant, 'GET', `/v1/payments?out_trade_no=${refusedOtn}`)).statusCode).toBe(404);
    expect((await h.call(merchant, 'GET', `/v1/payments?out_trade_no=${processing.out_trade_no}`)).json()).toMatchObject({ id: processing.id, status: 'authorized' });
    await lateEngine.stop();
    lateEngine = null;
  });

  it('an account create past the deadline is 503 and retryable; the same key answers 201 once the engine ran it', async () => {
    const key = uniqueId('idem');
    const body = { account_id: 'acc_slow', currency: 'CNY' };
    const first = await h.call(merchant, 'POST', '/v1/accounts', body, { 'idempotency-key': key });
    expect(first.statusCode).toBe(503);
    expect(first.json().code).toBe('engine.unavailable');
    lateEngine = await startEngine(h.config, { engineId: uniqueId('late') });
    // JetStream drops the retried command as a duplicate, so no reply comes: the ingress reads the account.
    const retried = await waitFor('the account', async () => {
      const res = await h.call(merchant, 'POST', '/v1/accounts', body, { 'idempotency-key': key });
      return res.statusCode === 201 ? res : null;
    });
    expect(retried.json()).toEqual({ account_id: 'acc_slow', currency: 'CNY', available: 0, held: 0 });
    const other = await h.call(merchant, 'POST', '/v1/accounts', { ...body, currency: 'USD' }, { 'idempotency-key': key });
    expect(other.json().code).toBe('idempotency.key_reused');
  });
});

describe('the engine lagging behind (PEAKPAY_INGRESS_BACKLOG_LAG_MS)', () => {
  let h: Harness;
  let lateEngine: RunningEngine | null = null;
  let merchant: Merchant;
  const accountId = 'acc_backlog';
  const BACKLOG_DEADLINE_MS = 1_000;

  beforeAll(async () => {
    // Lag counts from the PubAck, the deadline from the send: the setting must be below the deadline.
    ({ h, merchant } = await withoutEngine(testConfig({
      PEAKPAY_INGRESS_DEADLINE_MS: String(BACKLOG_DEADLINE_MS), PEAKPAY_INGRESS_BACKLOG_LAG_MS: String(BACKLOG_DEADLINE_MS / 2),
    }), accountId));
  });
  afterAll(async () => {
    await lateEngine?.stop();
    await h?.stop();
  });

  it('once a command went undecided for the setting, the next is answered 202 at the PubAck, counted, and applied once', async () => {
    const counter = async (name: string) => {
      const text = await h.ingress.ctx.metrics.registry.getSingleMetricAsString(name);
      return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    };
    const [timeoutsBefore, backlogBefore] = [await counter('peakpay_ingress_engine_timeouts_total'), await counter('peakpay_ingress_backlog_accepts_total')];
    // No engine: the first waits out its deadline, which tells the ingress the shard lags that much.
    const first = await h.call(merchant, 'POST', '/v1/payments', paymentBody(accountId, 600), { 'idempotency-key': uniqueId('idem') });
    expect(first.statusCode).toBe(202);
    // The next one, within the setting, is answered as soon as JetStream has it.
    const body = paymentBody(accountId, 700);
    const key = uniqueId('idem');
    const second = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(second.statusCode).toBe(202);
    const processing = second.json();
    expect(processing).toMatchObject({ status: 'processing', amount: 700 });
    expect(second.headers.location).toBe(`/v1/payments/${processing.id}`);
    expect(await counter('peakpay_ingress_engine_timeouts_total')).toBe(timeoutsBefore + 1);
    expect(await counter('peakpay_ingress_backlog_accepts_total')).toBe(backlogBefore + 1);

    lateEngine = await startEngine(h.config, { engineId: uniqueId('late') });
    for (const [res, amount] of [[first, 600], [second, 700]] as const) {
      const decided = await waitFor('the engine decides the payment', async () => {
        const r = await h.call(merchant, 'GET', res.headers.location as string);
        return r.statusCode === 200 && r.json().status !== 'processing' ? r.json() : null;
      });
      expect(decided).toMatchObject({ id: res.json().id, status: 'authorized', amount });
      expect(await settledPayments(h, merchant.id, res.json().out_trade_no)).toEqual([{ id: res.json().id, status: 'authorized' }]);
    }
    expect((await h.call(merchant, 'GET', `/v1/accounts/${accountId}`)).json()).toMatchObject({ available: FLOAT - 1300, held: 1300 });
    const replay = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(replay.rawPayload.equals(second.rawPayload)).toBe(true);
  });
});

describe('NATS down', () => {
  let nats: PrivateServer;
  let redisServer: PrivateServer;
  let redis: Redis;
  let h: Harness;
  let merchant: Merchant;
  const accountId = 'acc_down';

  beforeAll(async () => {
    nats = await startPrivateNats();
    redisServer = await startPrivateRedis();
    redis = new Redis(redisServer.url);
    h = await startHarness({ config: testConfig({
      NATS_URL: nats.url, REDIS_URL: redisServer.url, PEAKPAY_INGRESS_DEADLINE_MS: '1000',
      // The engine and settlement log every failed fetch while NATS is down, as they should.
      PEAKPAY_LOG_LEVEL: 'fatal',
    }) });
    merchant = await h.newMerchant();
    await setUpWallet(h, merchant, accountId);
  });
  afterAll(async () => {
    await nats?.start().catch(() => undefined); // the harness drops its streams on stop
    await h?.stop();
    redis?.disconnect();
    await nats?.close();
    await redisServer?.close();
  });

  /** Everything the money state is made of: all keys but nonces and idempotency records, with their values. */
  async function moneyState(): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const key of await namespaceKeys(redis, h.names.redisPrefix)) {
      if (/:nonce:|:idem:|:rl(:|$)/.test(key)) continue;
      const type = await redis.type(key);
      out[key] =
        type === 'hash' ? await redis.hgetall(key)
        : type === 'string' ? await redis.getBuffer(key)
        : type === 'zset' ? await redis.zrange(key, '0', '-1', 'WITHSCORES')
        : type === 'set' ? (await redis.smembers(key)).sort()
        : type;
    }
    const rows = await h.pool.query('SELECT (SELECT count(*) FROM events WHERE merchant_id = $1) AS events, (SELECT count(*) FROM payments WHERE merchant_id = $1) AS payments', [merchant.id]);
    out['postgres'] = rows.rows[0];
    return out;
  }

  const ready = async () => (await h.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200;

  it('answers 503 engine.unavailable and changes nothing; after a restart the same key succeeds once', async () => {
    await waitForSettlement(h.ingress.ctx.jsm, h.names, 30_000);
    const before = await moneyState();
    const body = paymentBody(accountId, 4000);
    const key = uniqueId('idem');

    let reconnecting = 0;
    void (async () => {
      for await (const st of h.ingress.ctx.nc.status()) if (st.type === 'reconnecting') reconnecting++;
    })();
    await nats.stop();
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ code: 'engine.unavailable', status: 503 });
      // Retryable: the key is neither stored as an answer nor stuck in progress.
      const record = merchantKeys(h.names.redisPrefix, merchant.id).idempotency(createHash('sha256').update(key).digest('hex'));
      expect(await redis.hget(record, 'state')).toBe('retryable');
    }
    expect(await moneyState()).toEqual(before);
    // An outage longer than the 10 attempts nats.js makes by default before it gives up for good.
    await waitFor('more reconnect attempts than the nats.js default', async () => reconnecting > NATS_DEFAULT_RECONNECT_ATTEMPTS, RECONNECT_MS_MAX);

    await nats.start();
    await waitFor('the ingress, engine and settlement reconnect', ready, RECONNECT_MS_MAX);
    const ok = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(ok.statusCode).toBe(201);
    const payment = ok.json();
    expect(payment).toMatchObject({ status: 'authorized', amount: 4000 });
    const replay = await h.call(merchant, 'POST', '/v1/payments', body, { 'idempotency-key': key });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.rawPayload.equals(ok.rawPayload)).toBe(true);

    expect((await h.call(merchant, 'GET', `/v1/accounts/${accountId}`)).json()).toMatchObject({ available: FLOAT - 4000, held: 4000 });
    const payKeys = (await namespaceKeys(redis, h.names.redisPrefix)).filter((k) => k.includes(':pay:'));
    expect(payKeys).toEqual([merchantKeys(h.names.redisPrefix, merchant.id).payment(payment.id)]);
    expect(await settledPayments(h, merchant.id, payment.out_trade_no)).toEqual([{ id: payment.id, status: 'authorized' }]);
  });
});
