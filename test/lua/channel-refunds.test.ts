// Refunds of channel payments against a real Redis (paymentRefund-4.lua, refundChannelResult-4.lua):
// a refund is recorded pending and reserved at once, so refunds in flight never add up to more than
// was captured; the channel's answer decides it once (succeeded: channel_refund postings; failed:
// the reservation is given back); a repeat, a contradiction or a mismatching answer changes nothing.
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import fc from 'fast-check';
import { PROTOCOL_VERSION, type CommandOf } from '../../engine/protocol/commands.ts';
import { isBalanced } from '../../engine/ledger/postings.ts';
import { ScriptCode } from '../../engine/redis/errors.ts';
import type { MoneyStore } from '../../engine/redis/store.ts';
import { outcomeOf } from '../../engine/shards/outcome.ts';
import { refundResultCmdId } from '../../engine/shards/channel-work.ts';
import { unpackRaw } from '../../engine/protocol/codec.ts';
import { opResultOf } from '../../engine/rebuild/records.ts';
import { freshStore, M, opId, redisClient } from './redis-fixture.ts';

const NOW = 1_764_300_000_000;
const WATCH_MS = 30_000;
let redis: Redis;
let store: MoneyStore;

beforeEach(() => {
  redis ??= redisClient();
  store = freshStore(redis);
});
afterAll(() => redis?.disconnect());

const base = () => ({ v: PROTOCOL_VERSION, cmd_id: opId(), merchant_id: M, ts_ms: 1 });

/** A WeChat Pay payment (or a top-up of wallet a1), paid: amount, or converted to USD at the channel. */
async function paidAtChannel(id: string, amount: number, opts: { usd?: number; topup?: boolean } = {}): Promise<void> {
  if (opts.topup) {
    await store.createAccount({ ...base(), type: 'account.create', account_id: 'a1', currency: 'CNY' }, NOW);
  }
  const channel = opts.usd ? 'stripe' : 'wechat_pay';
  await store.createPayment({
    ...base(), type: 'payment.create', payment_id: id, out_trade_no: `T${id}`, amount, currency: 'CNY', method: channel,
    capture: 'automatic', hold_ttl_s: 600, scene: 'pc', ...(opts.topup && { kind: 'topup', account_id: 'a1' }),
  }, NOW, WATCH_MS);
  await store.channelOpen({
    ...base(), type: 'payment.channel_open', payment_id: id,
    result: {
      ok: true, channel, channel_order_id: `ord_${id}`, next_action: { type: 'qr_code', code_url: 'weixin://x' },
      channel_amount: opts.usd ?? amount, channel_currency: opts.usd ? 'USD' : 'CNY', fx_rate: opts.usd ? '0.1380' : null,
      fx_as_of: opts.usd ? '2026-11-28' : null, fee_bps: 60,
    },
  }, NOW + 1);
  const r = await store.channelNotify({
    ...base(), type: 'payment.channel_notify', payment_id: id, channel, source: 'callback', notification_id: `n_${id}`,
    status: 'succeeded', amount: opts.usd ?? amount, currency: opts.usd ? 'USD' : 'CNY', channel_trade_no: `txn_${id}`,
    wallet_id: opts.topup ? 'a1' : null,
  }, NOW + 2);
  expect(r.payment?.status).toBe('succeeded');
}

const refund = (paymentId: string, amount: number, refundId = `re_${opId()}`): CommandOf<'payment.refund'> => ({
  ...base(), type: 'payment.refund', payment_id: paymentId, refund_id: refundId, amount,
});

const result = (
  paymentId: string, refundId: string, status: 'succeeded' | 'failed',
  opts: { amount?: number | null; currency?: 'CNY' | 'USD'; channel?: 'wechat_pay' | 'alipay' | 'stripe'; cmdId?: string } = {},
): CommandOf<'refund.channel_result'> => ({
  ...base(), cmd_id: opts.cmdId ?? opId(), type: 'refund.channel_result', payment_id: paymentId, refund_id: refundId,
  channel: opts.channel ?? 'wechat_pay', source: 'refund', status, amount: opts.amount === undefined ? null : opts.amount,
  currency: opts.currency ?? 'CNY', channel_refund_id: 'wxr_1',
});

const watched = async () => redis.zrange(store.keys(M).channelRefunds, '0', '-1', 'WITHSCORES');
const payment = async (id: string) => store.readPayment(M, id);

describe('channel refunds', () => {
  it('records a refund pending and reserved, watched, with no money effect', async () => {
    await paidAtChannel('p1', 3000);
    const r = await store.refundPayment(refund('p1', 1000, 're_1'), NOW + 10, WATCH_MS);
    expect(r.code).toBe(ScriptCode.Ok);
    expect(r.effects).toEqual([]);
    expect(r.events).toEqual(['refund.pending']);
    expect(r.account).toBeNull();
    expect(r.refund).toEqual({
      id: 're_1', merchant_id: M, payment_id: 'p1', account_id: '', amount: 1000, currency: 'CNY', status: 'pending', reason: '', created_at_ms: NOW + 10,
    });
    expect(r.payment).toMatchObject({ status: 'succeeded', amount_captured: 3000, amount_refunded: 1000 });
    expect(await watched()).toEqual(['re_1', String(NOW + 10 + WATCH_MS)]);

    const o = outcomeOf(refund('p1', 1000, 're_1'), r, NOW + 10);
    expect(o.events.map((e) => [e.type, e.postings])).toEqual([['refund.pending', []]]);
    expect(o.reply).toMatchObject({ ok: true, refund: { id: 're_1', status: 'pending' } });
  });

  it('never lets pending refunds add up to more than was captured', async () => {
    await paidAtChannel('p1', 3000);
    expect((await store.refundPayment(refund('p1', 2000), NOW, WATCH_MS)).code).toBe(ScriptCode.Ok);
    const before = await payment('p1');
    const over = await store.refundPayment(refund('p1', 1001, 're_over'), NOW, WATCH_MS);
    expect(over.code).toBe(ScriptCode.RefundExceedsCaptured);
    expect(over.events).toEqual([]);
    expect(await payment('p1')).toEqual(before);
    expect(await store.readRefund(M, 're_over')).toBeNull();
    expect((await watched()).length).toBe(2); // one refund, one score
    expect((await store.refundPayment(refund('p1', 1000), NOW, WATCH_MS)).code).toBe(ScriptCode.Ok);
  });

  it('succeeded: the money leaves through the channel once; a repeat or a contradiction changes nothing', async () => {
    await paidAtChannel('p1', 3000);
    await store.refundPayment(refund('p1', 1200, 're_1'), NOW + 10, WATCH_MS);
    const cmd = result('p1', 're_1', 'succeeded', { amount: 1200 });
    const ok = await store.refundChannelResult(cmd, NOW + 20);
    expect(ok.code).toBe(ScriptCode.Ok);
    expect(ok.effects).toEqual([['channel_refund', 1200]]);
    expect(ok.events).toEqual(['refund.succeeded']);
    expect(ok.refund?.status).toBe('succeeded');
    expect(ok.payment).toMatchObject({ amount_refunded: 1200, updated_at_ms: NOW + 20 });
    expect(await watched()).toEqual([]);
    expect(await store.readRefund(M, 're_1')).toMatchObject({ status: 'succeeded', account_id: '' });

    const o = outcomeOf(cmd, ok, NOW + 20);
    expect(o.events).toHaveLength(1);
    expect(o.events[0]).toMatchObject({ type: 'refund.succeeded', channel_refund_id: 'wxr_1', refund: { id: 're_1', status: 'succeeded' } });
    expect(o.events[0]?.postings).toEqual([
      { kind: 'channel_refund', ledger_account: 'merchant:settlement', amount: -1200, currency: 'CNY' },
      { kind: 'channel_refund', ledger_account: 'channel:wechat_pay:clearing', amount: 1200, currency: 'CNY' },
    ]);
    expect(isBalanced(o.events[0]?.postings ?? [])).toBe(true);

    const replay = await store.refundChannelResult(cmd, NOW + 30);
    expect({ ...replay, replayed: false }).toEqual(ok);
    const before = await payment('p1');
    const contradiction = await store.refundChannelResult(result('p1', 're_1', 'failed'), NOW + 40);
    expect(contradiction).toMatchObject({ code: ScriptCode.Ok, effects: [], events: [], refund: { status: 'succeeded' } });
    expect(await payment('p1')).toEqual(before);
  });

  it('failed: the reservation is given back, so the amount can be refunded again', async () => {
    await paidAtChannel('p1', 3000);
    await store.refundPayment(refund('p1', 3000, 're_1'), NOW + 10, WATCH_MS);
    expect((await store.refundPayment(refund('p1', 1), NOW + 11, WATCH_MS)).code).toBe(ScriptCode.RefundExceedsCaptured);
    const failed = await store.refundChannelResult(result('p1', 're_1', 'failed'), NOW + 20);
    expect(failed).toMatchObject({ code: ScriptCode.Ok, effects: [], events: ['refund.failed'], refund: { status: 'failed' } });
    expect(failed.payment).toMatchObject({ amount_refunded: 0 });
    expect(await watched()).toEqual([]);
    const again = await store.refundChannelResult(result('p1', 're_1', 'succeeded', { amount: 3000 }), NOW + 30);
    expect(again).toMatchObject({ code: ScriptCode.Ok, effects: [], events: [], refund: { status: 'failed' } });
    expect((await payment('p1'))?.amount_refunded).toBe(0);
    expect((await store.refundPayment(refund('p1', 3000), NOW + 40, WATCH_MS)).code).toBe(ScriptCode.Ok);
  });

  it('refuses an answer for another channel, currency, amount or payment, changing nothing', async () => {
    await paidAtChannel('p1', 3000);
    await paidAtChannel('p2', 500);
    await store.refundPayment(refund('p1', 1000, 're_1'), NOW + 10, WATCH_MS);
    const before = { p1: await payment('p1'), refund: await store.readRefund(M, 're_1'), watched: await watched() };
    for (const bad of [
      result('p1', 're_1', 'succeeded', { channel: 'alipay' }),
      result('p1', 're_1', 'succeeded', { currency: 'USD' }),
      result('p1', 're_1', 'succeeded', { amount: 999 }),
      result('p2', 're_1', 'succeeded'),
    ]) {
      const r = await store.refundChannelResult(bad, NOW + 20);
      expect(r.code).toBe(ScriptCode.ChannelMismatch);
      expect(r.effects).toEqual([]);
      expect(r.events).toEqual([]);
    }
    expect((await store.refundChannelResult(result('p1', 're_nobody', 'succeeded'), NOW + 20)).code).toBe(ScriptCode.PaymentNotFound);
    expect({ p1: await payment('p1'), refund: await store.readRefund(M, 're_1'), watched: await watched() }).toEqual(before);
  });

  it('refuses a top-up, and a part refund of a payment converted at its channel; refunds the converted one in full', async () => {
    await paidAtChannel('p_top', 5000, { topup: true });
    const top = await store.refundPayment(refund('p_top', 100), NOW, WATCH_MS);
    expect(top.code).toBe(ScriptCode.InvalidTransition);

    await paidAtChannel('p_usd', 10_000, { usd: 1380 });
    const part = await store.refundPayment(refund('p_usd', 5000), NOW, WATCH_MS);
    expect(part.code).toBe(ScriptCode.RefundNotConvertible);
    expect(outcomeOf(refund('p_usd', 5000), part, NOW).reply).toMatchObject({ ok: false, code: 'payment.invalid_transition' });
    const full = await store.refundPayment(refund('p_usd', 10_000, 're_usd'), NOW, WATCH_MS);
    expect(full.code).toBe(ScriptCode.Ok);
    // The channel states what it refunded in its own currency: the whole USD amount.
    expect((await store.refundChannelResult(result('p_usd', 're_usd', 'succeeded', { amount: 10_000, currency: 'USD', channel: 'stripe' }), NOW)).code)
      .toBe(ScriptCode.ChannelMismatch);
    const ok = await store.refundChannelResult(result('p_usd', 're_usd', 'succeeded', { amount: 1380, currency: 'USD', channel: 'stripe' }), NOW);
    expect(ok.effects).toEqual([['channel_refund', 10_000]]); // the ledger books the payment's currency
    expect(await watched()).toEqual([]);
  });

  it('leaves events from which a Redis rebuild re-creates each op record and refund exactly', async () => {
    await paidAtChannel('p1', 3000);
    const list = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.values(v) : v);
    const stored = async (cmdId: string) => {
      const raw = unpackRaw((await redis.getBuffer(store.keys(M).op(cmdId))) as Buffer) as Record<string, unknown>;
      return { ...raw, effects: list(raw.effects), events: list(raw.events) };
    };
    for (const status of ['succeeded', 'failed'] as const) {
      const make = refund('p1', 1000, `re_${status}`);
      const made = outcomeOf(make, await store.refundPayment(make, NOW + 10, WATCH_MS), NOW + 10);
      const decide = result('p1', `re_${status}`, status, { amount: 1000 });
      const decision = outcomeOf(decide, await store.refundChannelResult(decide, NOW + 20), NOW + 20);
      for (const [cmd, o] of [[make, made], [decide, decision]] as const) {
        const rebuilt = opResultOf(o.events);
        expect(rebuilt.exact).toBe(true);
        expect(rebuilt.result).toEqual(await stored(cmd.cmd_id));
      }
      expect(opResultOf(decision.events).result.refund).toEqual(await store.readRefund(M, `re_${status}`));
    }
  });

  it('keeps amount_refunded = the sum of pending and succeeded refunds, within what was captured, whatever the order of answers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ amount: fc.integer({ min: 1, max: 1500 }), answer: fc.constantFrom('succeeded', 'failed', 'none') }), { minLength: 1, maxLength: 8 }),
        async (steps) => {
          store = freshStore(redis);
          await paidAtChannel('p1', 3000);
          const made: { id: string; amount: number; answer: string }[] = [];
          for (const [i, s] of steps.entries()) {
            const r = await store.refundPayment(refund('p1', s.amount, `re_${i}`), NOW + i, WATCH_MS);
            if (r.code === ScriptCode.Ok) made.push({ id: `re_${i}`, ...s });
            else expect(r.code).toBe(ScriptCode.RefundExceedsCaptured);
            // Answers arrive interleaved with new refunds, each delivered twice.
            const due = made.find((m) => m.answer !== 'none' && m.id === `re_${i - 1}`);
            if (due) {
              const cmd = result('p1', due.id, due.answer as 'succeeded' | 'failed', { cmdId: refundResultCmdId(M, due.id) });
              await store.refundChannelResult(cmd, NOW + i);
              await store.refundChannelResult(cmd, NOW + i);
            }
          }
          const p = await payment('p1');
          const refunds = await Promise.all(made.map((m) => store.readRefund(M, m.id)));
          const live = refunds.filter((r) => r?.status !== 'failed').reduce((sum, r) => sum + (r?.amount ?? 0), 0);
          expect(p?.amount_refunded).toBe(live);
          expect(live).toBeLessThanOrEqual(3000);
          const pending = refunds.filter((r) => r?.status === 'pending').map((r) => r?.id).sort();
          expect((await redis.zrange(store.keys(M).channelRefunds, '0', '-1')).sort()).toEqual(pending);
        },
      ),
      { numRuns: 40 },
    );
  });
});
