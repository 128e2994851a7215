// Channel payments end to end: ingress → engine → channel sandbox (its real signing scheme) →
// the buyer pays → the signed callback comes back through /v1/notify/{channel} → the engine books
// it once → settlement writes it to Postgres with the fee. Routing with failover, 补单 when the
// callback is lost, expiry and cancel at the channel, top-ups, replayed callbacks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelSettingsSchema } from '../../engine/channels/settings.ts';
import { startAlipaySandbox } from '../../engine/channels/alipay/index.ts';
import { startWechatPaySandbox } from '../../engine/channels/wechat_pay/index.ts';
import { startStripeSandbox } from '../../engine/channels/stripe/index.ts';
import { convert } from '../../engine/channels/fx.ts';
import type { SandboxKit, SandboxOrder } from '../../engine/channels/sandbox-kit.ts';
import type { Payment } from '../../engine/protocol/payment.ts';
import { startChannelHarness, type Harness } from '../harness.ts';
import { connectNats } from '../../engine/infra.ts';
import { rebuildRedis } from '../../engine/rebuild/index.ts';
import { testConfig, uniqueId, waitFor } from '../helpers.ts';

let h: Harness;
let wechat: { kit: SandboxKit };
let alipay: { kit: SandboxKit };
let stripe: { kit: SandboxKit };
const FX = { base: 'CNY', as_of: '2026-11-28T00:00:00+08:00', rates: { USD: '0.1380' } };
let m: { id: string; secret: string };

beforeAll(async () => {
  const [wx, ali, st] = await Promise.all([startWechatPaySandbox(), startAlipaySandbox(), startStripeSandbox()]);
  wechat = wx;
  alipay = ali;
  stripe = st;
  h = await startChannelHarness((publicUrl) => {
    // Stripe calls one account-level webhook endpoint, not a per-order notify_url.
    st.setWebhookUrl(`${publicUrl}/v1/notify/stripe`);
    return channelSettingsSchema.parse({
      public_url: publicUrl,
      channels: {
        wechat_pay: { config: wx.config, fee_bps: 60, request_timeout_ms: 1_000 },
        alipay: { config: ali.config, fee_bps: 55, request_timeout_ms: 5_000 },
        stripe: { config: st.config, fee_bps: 340, currency: 'USD' },
      },
      fx: FX,
      routes: { default: { '*': [{ channel: 'wechat_pay', weight: 100 }, { channel: 'alipay', weight: 0 }] } },
      query_after_ms: 1_000,
      query_every_ms: 500,
      breaker: { volume_threshold: 3, reset_timeout_ms: 1_500, rolling_window_ms: 5_000 },
    });
  }, testConfig({ PEAKPAY_SHARD_COUNT: '2' }));
  m = await h.newMerchant();
}, 120_000);

afterAll(async () => {
  await h?.stop();
  await wechat?.kit.close();
  await alipay?.kit.close();
  await stripe?.kit.close();
});

const create = (body: Record<string, unknown>) =>
  h.call(m, 'POST', '/v1/payments', { out_trade_no: uniqueId('T'), amount: 1999, currency: 'CNY', method: 'auto', scene: 'pc', ...body });
const getPayment = async (id: string) => (await h.call(m, 'GET', `/v1/payments/${id}`)).json() as Payment;
const settledRow = async (id: string) =>
  (await h.ingress.ctx.pool.query('SELECT * FROM channel_settlements WHERE payment_id = $1', [id])).rows[0] as Record<string, unknown> | undefined;

describe('channel payments', () => {
  it('opens a WeChat Pay order, books the signed callback once, and settles it with its fee', async () => {
    const res = await create({ buyer: { ip: '203.0.113.9', user_id: 'u1' } });
    expect(res.statusCode).toBe(201);
    const p = res.json() as Payment;
    expect(p).toMatchObject({ status: 'pending', channel: 'wechat_pay', next_action: { type: 'qr_code' } });
    expect(wechat.kit.book.get(p.id)?.amount).toBe(1999);

    const sentBefore = wechat.kit.book.callbacks.length;
    await wechat.kit.book.pay(p.id);
    const paid = await waitFor('succeeded', async () => ((await getPayment(p.id)).status === 'succeeded' ? getPayment(p.id) : null));
    expect(paid).toMatchObject({ status: 'succeeded', amount_captured: 1999, next_action: null });

    const row = await waitFor('settlement row', () => settledRow(p.id));
    // 0.6% of 19.99 CNY = 11.994 fen → 12 (half up).
    expect(row).toMatchObject({ channel: 'wechat_pay', amount: 1999, fee: 12, fee_bps: 60, channel_currency: 'CNY' });
    const postings = await h.ingress.ctx.pool.query<{ ledger_account: string; amount: string }>(
      `SELECT ledger_account, amount FROM postings p JOIN events e ON e.id = p.event_id WHERE e.payment_id = $1 ORDER BY p.id`, [p.id]);
    expect(postings.rows.map((r) => [r.ledger_account, Number(r.amount)])).toEqual([
      ['channel:wechat_pay:clearing', -1999], ['merchant:settlement', 1999], ['merchant:settlement', -12], ['channel:wechat_pay:fees', 12],
    ]);

    // The channel re-sends the same callback (and a forger replays it): a no-op, counted as a duplicate.
    // The sandbox encrypts the resource (AEAD_AES_256_GCM), so the callback is found by position.
    const cb = wechat.kit.book.callbacks.slice(sentBefore).find((c) => c.delivered);
    expect(cb).toBeDefined();
    const before = await h.ingress.ctx.pool.query('SELECT count(*)::int AS n FROM postings WHERE merchant_id = $1', [m.id]);
    const replay = await fetch(cb?.url as string, { method: 'POST', headers: cb?.headers, body: cb?.body });
    expect(replay.status).toBeLessThan(500);
    expect((await getPayment(p.id)).version).toBe(paid.version);
    const after = await h.ingress.ctx.pool.query('SELECT count(*)::int AS n FROM postings WHERE merchant_id = $1', [m.id]);
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it('cross-border: Stripe charges the buyer in USD at the table rate; the ledger books CNY with the rate and the fee', async () => {
    const res = await create({ method: 'stripe', amount: 10_000 });
    expect(res.statusCode).toBe(201);
    const p = res.json() as Payment;
    expect(p).toMatchObject({ status: 'pending', channel: 'stripe', next_action: { type: 'redirect' } });
    const usd = convert(10_000, 'CNY', 'USD', FX);
    expect(usd.amount).toBe(1380); // 100.00 CNY × 0.1380 = 13.80 USD
    const order = stripe.kit.book.get(p.id);
    expect(order).toMatchObject({ amount: 1380, currency: 'usd' }); // Stripe's wire spells currencies in lower case
    await stripe.kit.book.pay(p.id);
    const row = await waitFor('settlement row', () => settledRow(p.id));
    // 3.4% of 100.00 CNY = 340 fen.
    expect(row).toMatchObject({ channel: 'stripe', amount: 10_000, currency: 'CNY', channel_amount: 1380, channel_currency: 'USD', fx_rate: usd.rate, fee: 340 });
    expect((await getPayment(p.id)).status).toBe('succeeded');
  });

  it('a top-up credits the wallet when the channel reports it paid', async () => {
    const acct = uniqueId('acc');
    expect((await h.call(m, 'POST', '/v1/accounts', { account_id: acct, currency: 'CNY' })).statusCode).toBe(201);
    const res = await h.call(m, 'POST', '/v1/topups', {
      out_trade_no: uniqueId('TU'), account_id: acct, amount: 5000, currency: 'CNY', method: 'alipay', scene: 'app', buyer: { user_id: 'u2' },
    });
    expect(res.statusCode).toBe(201);
    const p = res.json() as Payment;
    expect(p).toMatchObject({ status: 'pending', channel: 'alipay', account_id: acct });
    await alipay.kit.book.pay(p.id);
    await waitFor('wallet credited', async () => {
      const a = (await h.call(m, 'GET', `/v1/accounts/${acct}`)).json() as { available: number };
      return a.available === 5000 ? a : null;
    });
    expect((await getPayment(p.id)).status).toBe('succeeded');
  });

  it('补单: a paid order whose callback was lost is found by querying the channel', async () => {
    wechat.kit.setFaults({ dropCallbacks: true });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(((await create({})).json() as Payment).id);
      for (const id of ids) await wechat.kit.book.pay(id);
      for (const id of ids) {
        await waitFor(`${id} succeeded by query`, async () => ((await getPayment(id)).status === 'succeeded' ? true : null), 20_000);
      }
    } finally {
      wechat.kit.setFaults({ dropCallbacks: false });
    }
  });

  it('an unpaid order past its deadline is closed at the channel and expires; a canceled one is closed there too', async () => {
    const expiring = (await create({ hold_ttl_s: 1 })).json() as Payment;
    const canceled = (await create({})).json() as Payment;
    expect((await h.call(m, 'POST', `/v1/payments/${canceled.id}/cancel`, {})).json()).toMatchObject({ status: 'canceled' });
    await waitFor('expired', async () => ((await getPayment(expiring.id)).status === 'expired' ? true : null), 20_000);
    await waitFor('closed at the channel', async () =>
      (wechat.kit.book.get(expiring.id)?.status === 'closed' && wechat.kit.book.get(canceled.id)?.status === 'closed' ? true : null));
  });

  it('a payment made at the channel after it was canceled here is recorded (payment.late_paid), not booked', async () => {
    const p = (await create({})).json() as Payment;
    expect((await h.call(m, 'POST', `/v1/payments/${p.id}/cancel`, {})).json()).toMatchObject({ status: 'canceled' });
    // The buyer paid just before the close reached the channel: the channel's genuine, signed callback.
    const order = wechat.kit.book.get(p.id) as SandboxOrder;
    const cb = await wechat.kit.spec.callback({ ...order, status: 'succeeded', trade_no: 'txnlate1', paid_amount: order.amount, paid_ms: Date.now() }, null);
    const res = await fetch(cb.url, { method: 'POST', headers: cb.headers, body: cb.body });
    expect(res.status).toBeLessThan(300); // acknowledged: the record is ours now, the channel need not resend
    const row = await waitFor('late_paid event', async () =>
      (await h.ingress.ctx.pool.query<{ body: unknown }>(`SELECT body FROM events WHERE payment_id = $1 AND type = 'payment.late_paid'`, [p.id])).rows[0]);
    expect(JSON.stringify(row.body)).toContain('txnlate1');
    const after = await getPayment(p.id);
    expect(after).toMatchObject({ status: 'canceled', amount_captured: 0 });
    const postings = await h.ingress.ctx.pool.query(`SELECT 1 FROM postings p JOIN events e ON e.id = p.event_id WHERE e.payment_id = $1`, [p.id]);
    expect(postings.rowCount).toBe(0);
  });

  it('fails over to Alipay while WeChat Pay is down, with < 1% failures, and comes back to WeChat Pay', async () => {
    wechat.kit.setFaults({ outage: true });
    const results: Payment[] = [];
    try {
      // Ten buyers at a time, 60 payments: what a storefront sees during the outage.
      for (let i = 0; i < 6; i++) {
        const batch = await Promise.all(Array.from({ length: 10 }, () => create({})));
        for (const r of batch) {
          expect(r.statusCode).toBeLessThan(500);
          const p = r.json() as Payment;
          // 202 processing (the engine took longer than the ingress deadline on a busy machine): read it back.
          results.push(p.status === 'processing' ? await waitFor('decided', async () => {
            const q = await getPayment(p.id);
            return q.status === 'processing' ? null : q;
          }) : p);
        }
      }
    } finally {
      wechat.kit.setFaults({ outage: false });
    }
    const failed = results.filter((p) => p.status !== 'pending');
    expect(failed.length / results.length).toBeLessThan(0.01);
    expect(results.filter((p) => p.channel !== 'alipay').map((p) => [p.id, p.channel, p.status])).toEqual([]);
    const metrics = await h.engine?.metrics.registry.getSingleMetricAsString('peakpay_channel_failovers_total');
    expect(metrics).toMatch(/from="wechat_pay",to="alipay"} [1-9]/);

    // After the breaker's pause a probe reaches the primary again and new payments return to it.
    const back = await waitFor('back on wechat_pay', async () => {
      const p = (await create({})).json() as Payment;
      return p.channel === 'wechat_pay' ? p : null;
    }, 20_000);
    expect(back.status).toBe('pending');
  });

  // Last: it stops the engine. A Redis loss must not lose track of orders waiting for the buyer.
  it('a Redis rebuild puts pending channel payments back on the watch list (补单 after a Redis loss)', async () => {
    const p = (await create({})).json() as Payment;
    expect(p.status).toBe('pending');
    await waitFor('pending in the ledger', async () =>
      (await h.ingress.ctx.pool.query('SELECT 1 FROM payments WHERE id = $1 AND channel IS NOT NULL', [p.id])).rowCount ? true : null);
    await h.engine?.stop();
    const redis = h.ingress.ctx.redis;
    const watch = h.ingress.ctx.store.keys(m.id).channelWatch;
    await redis.del(watch);
    const nc = await connectNats(h.config, 'rebuild-test');
    try {
      await rebuildRedis({ nc, redis, pool: h.ingress.ctx.pool }, { config: h.config, merchantIds: [m.id] });
    } finally {
      await nc.close();
    }
    expect(await redis.zscore(watch, p.id)).not.toBeNull();
    expect((await h.ingress.ctx.store.readPayment(m.id, p.id))?.status).toBe('pending');
  });
});
