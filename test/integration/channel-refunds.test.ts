// Refunds of channel payments end to end: ingress → engine (the refund is recorded pending and
// reserved) → the channel sandbox refunds it (its real signing scheme) → the answer, or the signed
// refund callback through /v1/notify/{channel}, decides it once → settlement writes the refund row
// and the channel_refund postings. Partial refunds up to what was captured, a channel in trouble
// (the refund stays pending and the watcher asks again once it is back), a refund the channel
// refuses (failed, the reserved amount given back).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelSettingsSchema } from '../../engine/channels/settings.ts';
import { startAlipaySandbox } from '../../engine/channels/alipay/index.ts';
import { startWechatPaySandbox } from '../../engine/channels/wechat_pay/index.ts';
import type { SandboxKit } from '../../engine/channels/sandbox-kit.ts';
import type { Payment } from '../../engine/protocol/payment.ts';
import type { Refund } from '../../engine/protocol/refund.ts';
import { startChannelHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId, waitFor } from '../helpers.ts';

let h: Harness;
let wechat: { kit: SandboxKit };
let alipay: { kit: SandboxKit };
let m: { id: string; secret: string };

beforeAll(async () => {
  const [wx, ali] = await Promise.all([startWechatPaySandbox(), startAlipaySandbox()]);
  wechat = wx;
  alipay = ali;
  h = await startChannelHarness((publicUrl) => channelSettingsSchema.parse({
    public_url: publicUrl,
    channels: {
      wechat_pay: { config: wx.config, fee_bps: 60, request_timeout_ms: 1_000 },
      alipay: { config: ali.config, fee_bps: 55, request_timeout_ms: 5_000 },
    },
    routes: { default: { '*': [{ channel: 'wechat_pay', weight: 100 }] } },
    query_after_ms: 1_000,
    query_every_ms: 500,
    breaker: { volume_threshold: 3, reset_timeout_ms: 1_000, rolling_window_ms: 5_000 },
  }), testConfig({ PEAKPAY_SHARD_COUNT: '2' }));
  m = await h.newMerchant();
}, 120_000);

afterAll(async () => {
  await h?.stop();
  await wechat?.kit.close();
  await alipay?.kit.close();
});

const kitOf = (channel: 'wechat_pay' | 'alipay') => (channel === 'wechat_pay' ? wechat.kit : alipay.kit);
const getPayment = async (id: string) => (await h.call(m, 'GET', `/v1/payments/${id}`)).json() as Payment;
const getRefund = async (id: string) => (await h.call(m, 'GET', `/v1/refunds/${id}`)).json() as Refund;
const db = () => h.ingress.ctx.pool;

/** A payment through the channel, paid by the sandbox's buyer and booked. */
async function paid(channel: 'wechat_pay' | 'alipay', amount: number): Promise<Payment> {
  const res = await h.call(m, 'POST', '/v1/payments', {
    out_trade_no: uniqueId('T'), amount, currency: 'CNY', method: channel, scene: 'pc', buyer: { user_id: uniqueId('u') },
  });
  expect(res.statusCode).toBe(201);
  const p = res.json() as Payment;
  expect(p).toMatchObject({ status: 'pending', channel });
  await kitOf(channel).book.pay(p.id);
  return waitFor(`${p.id} succeeded`, async () => {
    const q = await getPayment(p.id);
    return q.status === 'succeeded' ? q : null;
  });
}

/**
 * POST a refund. 201 says it was decided within the deadline (succeeded or failed), 202 that it is
 * still pending at the channel; either way the refund names itself.
 */
async function refund(paymentId: string, amount: number, reason?: string): Promise<{ status: number; body: Refund }> {
  const res = await h.call(m, 'POST', `/v1/payments/${paymentId}/refunds`, { amount, ...(reason && { reason }) });
  const body = res.json() as Refund;
  if (res.statusCode === 201) expect(['succeeded', 'failed']).toContain(body.status);
  else if (res.statusCode === 202) expect(body.status).toBe('pending');
  if (res.statusCode < 300) expect(res.headers.location).toBe(`/v1/refunds/${body.id}`);
  return { status: res.statusCode, body };
}

const decided = (id: string, status: 'succeeded' | 'failed' = 'succeeded') =>
  waitFor(`refund ${id} ${status}`, async () => {
    const r = await getRefund(id);
    return r.status === status ? r : null;
  }, 20_000);

const refundRow = async (id: string, status: string) =>
  waitFor(`refund row ${id} ${status}`, async () => {
    const r = await db().query<{ status: string; account_id: string | null; amount: number; payment_id: string }>(
      'SELECT status, account_id, amount, payment_id FROM refunds WHERE merchant_id = $1 AND id = $2', [m.id, id]);
    return r.rows[0]?.status === status ? r.rows[0] : null;
  });

/** Every posting of a payment's events, by event type. */
async function postingsOf(paymentId: string): Promise<{ type: string; kind: string; ledger_account: string; amount: number }[]> {
  const r = await db().query<{ type: string; kind: string; ledger_account: string; amount: string }>(
    `SELECT e.type, p.kind, p.ledger_account, p.amount FROM postings p JOIN events e ON e.id = p.event_id
     WHERE e.payment_id = $1 ORDER BY p.id`, [paymentId]);
  return r.rows.map((x) => ({ ...x, amount: Number(x.amount) }));
}

describe('refunds through channels', () => {
  it('refunds a WeChat Pay payment in full through the channel; settlement books it back to the channel', async () => {
    const p = await paid('wechat_pay', 1999);
    const res = await refund(p.id, 1999, 'wrong size');
    expect(res.body).toMatchObject({ payment_id: p.id, amount: 1999, currency: 'CNY', reason: 'wrong size' });
    const r = await decided(res.body.id);
    expect(r).toMatchObject({ status: 'succeeded', amount: 1999 });
    expect(await getPayment(p.id)).toMatchObject({ status: 'succeeded', amount_captured: 1999, amount_refunded: 1999 });

    // The channel holds the refund under our refund id (its out_refund_no).
    expect(wechat.kit.book.get(p.id)?.refunds.map((x) => [x.out_refund_no, x.amount])).toEqual([[r.id, 1999]]);

    expect(await refundRow(r.id, 'succeeded')).toMatchObject({ account_id: null, amount: 1999, payment_id: p.id });
    const postings = await waitFor('channel_refund postings', async () => {
      const all = await postingsOf(p.id);
      return all.some((x) => x.kind === 'channel_refund') ? all : null;
    });
    expect(postings.filter((x) => x.type === 'refund.succeeded').map((x) => [x.kind, x.ledger_account, x.amount])).toEqual([
      ['channel_refund', 'merchant:settlement', -1999], ['channel_refund', 'channel:wechat_pay:clearing', 1999],
    ]);
    // The ledger of the payment: the channel's clearing is back to zero, the merchant bears the fee (12 fen).
    const sum = (acct: string) => postings.filter((x) => x.ledger_account === acct).reduce((s, x) => s + x.amount, 0);
    expect(postings.reduce((s, x) => s + x.amount, 0)).toBe(0);
    expect(sum('channel:wechat_pay:clearing')).toBe(0);
    expect(sum('merchant:settlement')).toBe(-12);
    const types = await db().query<{ type: string }>('SELECT type FROM events WHERE payment_id = $1 AND type LIKE $2 ORDER BY stream_seq', [p.id, 'refund.%']);
    expect(types.rows.map((x) => x.type)).toEqual(['refund.pending', 'refund.succeeded']);

    // The channel re-sends its refund callback: a no-op.
    const cb = wechat.kit.book.callbacks.filter((c) => c.delivered).at(-1);
    expect(cb).toBeDefined();
    const version = (await getPayment(p.id)).version;
    const replay = await fetch(cb?.url as string, { method: 'POST', headers: cb?.headers, body: cb?.body });
    expect(replay.status).toBeLessThan(300);
    expect((await getPayment(p.id)).version).toBe(version);
    expect(await postingsOf(p.id)).toEqual(postings);
  });

  it('refunds an Alipay payment in two parts up to what was captured, then refuses a third (409)', async () => {
    const p = await paid('alipay', 5000);
    const first = await refund(p.id, 3000);
    const second = await refund(p.id, 2000);
    // Both reserved at once, decided or not: nothing is left to refund.
    const third = await h.call(m, 'POST', `/v1/payments/${p.id}/refunds`, { amount: 1 });
    expect(third.statusCode).toBe(409);
    expect(third.json()).toMatchObject({ code: 'payment.invalid_transition', payment_id: p.id });
    await decided(first.body.id);
    await decided(second.body.id);
    expect(await getPayment(p.id)).toMatchObject({ amount_captured: 5000, amount_refunded: 5000 });
    const order = alipay.kit.book.get(p.id);
    expect(order?.refunds.map((x) => [x.out_refund_no, x.amount])).toEqual([[first.body.id, 3000], [second.body.id, 2000]]);

    await refundRow(first.body.id, 'succeeded');
    await refundRow(second.body.id, 'succeeded');
    const postings = await waitFor('both refunds booked', async () => {
      const all = await postingsOf(p.id);
      return all.filter((x) => x.kind === 'channel_refund').length === 4 ? all : null;
    });
    expect(postings.filter((x) => x.kind === 'channel_refund' && x.ledger_account === 'channel:alipay:clearing').map((x) => x.amount).sort())
      .toEqual([2000, 3000]);
    expect(postings.reduce((s, x) => s + x.amount, 0)).toBe(0);
    const after = await h.call(m, 'POST', `/v1/payments/${p.id}/refunds`, { amount: 1 });
    expect(after.statusCode).toBe(409);
  });

  it('keeps a refund pending while the channel fails, and completes it once the channel is back (watcher)', async () => {
    const p = await paid('wechat_pay', 800);
    wechat.kit.setFaults({ errorRate: 1 });
    let id: string;
    try {
      const res = await refund(p.id, 800);
      expect(res.status).toBe(202);
      id = res.body.id;
      // Reserved, not refunded: nothing reached the channel, no money moved.
      expect(await getRefund(id)).toMatchObject({ status: 'pending' });
      expect((await getPayment(p.id)).amount_refunded).toBe(800);
      expect(wechat.kit.book.get(p.id)?.refunds).toEqual([]);
      expect((await h.call(m, 'POST', `/v1/payments/${p.id}/refunds`, { amount: 1 })).statusCode).toBe(409);
      await refundRow(id, 'pending');
    } finally {
      wechat.kit.setFaults({ errorRate: 0 });
    }
    await decided(id);
    expect(wechat.kit.book.get(p.id)?.refunds.map((x) => [x.out_refund_no, x.amount])).toEqual([[id, 800]]);
    expect(await refundRow(id, 'succeeded')).toMatchObject({ account_id: null });
  });

  it('fails a refund the channel refuses and gives the reserved amount back', async () => {
    const p = await paid('wechat_pay', 1200);
    // Refunded in part at the channel directly (the merchant's channel dashboard): more than what is left there is refused.
    const outside = wechat.kit.book.refund(p.id, uniqueId('dash'), 500);
    expect(typeof outside).toBe('object');
    const res = await refund(p.id, 1000);
    const r = await decided(res.body.id, 'failed');
    expect(r).toMatchObject({ status: 'failed', amount: 1000 });
    expect((await getPayment(p.id)).amount_refunded).toBe(0);
    expect(wechat.kit.book.get(p.id)?.refunds.map((x) => x.out_refund_no)).not.toContain(r.id);
    await refundRow(r.id, 'failed');
    const postings = await postingsOf(p.id);
    expect(postings.filter((x) => x.kind === 'channel_refund')).toEqual([]);
    const types = await db().query<{ type: string }>('SELECT type FROM events WHERE payment_id = $1 AND type LIKE $2 ORDER BY stream_seq', [p.id, 'refund.%']);
    expect(types.rows.map((x) => x.type)).toEqual(['refund.pending', 'refund.failed']);

    // What the channel still holds can be refunded.
    const rest = await refund(p.id, 700);
    await decided(rest.body.id);
    expect((await getPayment(p.id)).amount_refunded).toBe(700);
  });
});
