// The fee of a channel payment is decided in paymentChannelNotify-4.lua (the money path) and
// documented (and used by tools) as feeOf() in engine/channels/settings.ts: basis points rounded
// half up to the minor unit. Both must agree for every amount and rate, and the fee must be what
// the postings take from the merchant.
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { feeOf } from '../../engine/channels/settings.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import type { MoneyStore } from '../../engine/redis/store.ts';
import { freshStore, M, opId, redisClient } from './redis-fixture.ts';

const NOW = 1_764_300_000_000;
let redis: Redis;
let store: MoneyStore;

beforeAll(() => {
  redis = redisClient();
  store = freshStore(redis);
});
afterAll(() => redis?.disconnect());

const base = () => ({ v: PROTOCOL_VERSION, cmd_id: opId(), merchant_id: M, ts_ms: 1 });

async function feeBookedByLua(amount: number, feeBps: number): Promise<{ fee: number; effects: unknown[] }> {
  const id = `p${opId()}`;
  await store.createPayment({
    ...base(), type: 'payment.create', payment_id: id, out_trade_no: `T${id}`, amount, currency: 'CNY', method: 'wechat_pay',
    capture: 'automatic', hold_ttl_s: 600, scene: 'pc',
  }, NOW, 30_000);
  await store.channelOpen({
    ...base(), type: 'payment.channel_open', payment_id: id,
    result: { ok: true, channel: 'wechat_pay', channel_order_id: null, next_action: { type: 'qr_code', code_url: 'weixin://x' }, channel_amount: amount, channel_currency: 'CNY', fx_rate: null, fx_as_of: null, fee_bps: feeBps },
  }, NOW + 1);
  const r = await store.channelNotify({
    ...base(), type: 'payment.channel_notify', payment_id: id, channel: 'wechat_pay', source: 'callback', notification_id: `n_${id}`,
    status: 'succeeded', amount, currency: 'CNY', channel_trade_no: `txn_${id}`, wallet_id: null,
  }, NOW + 2);
  expect(r.payment?.status).toBe('succeeded');
  return { fee: r.payment?.fee ?? -1, effects: r.effects };
}

describe('channel fees', () => {
  it('the script and feeOf() agree: basis points, half up, integer minor units (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000_000_000 }), fc.integer({ min: 0, max: 10_000 }), async (amount, bps) => {
        const { fee, effects } = await feeBookedByLua(amount, bps);
        expect(fee).toBe(feeOf(amount, bps));
        expect(effects).toEqual(fee > 0 ? [['channel_capture', amount], ['fee', fee]] : [['channel_capture', amount]]);
      }),
      { numRuns: Number(process.env.PEAKPAY_FEE_RUNS ?? 60) },
    );
  });

  it('rounds half up at the boundary', async () => {
    // 0.6% of 19.99 CNY = 11.994 fen → 12; of 0.75 CNY = 0.45 → 0; of 2.50 CNY = 1.5 → 2.
    expect((await feeBookedByLua(1999, 60)).fee).toBe(12);
    expect((await feeBookedByLua(75, 60)).fee).toBe(0);
    expect((await feeBookedByLua(250, 60)).fee).toBe(2);
    expect([feeOf(1999, 60), feeOf(75, 60), feeOf(250, 60)]).toEqual([12, 0, 2]);
    // Past 2^53 as a product (999,999,999,999 × 9,999 is odd and ≈ 10^16): still exact.
    expect((await feeBookedByLua(999_999_999_999, 9_999)).fee).toBe(feeOf(999_999_999_999, 9_999));
    expect((await feeBookedByLua(999_999_995_001, 5_001)).fee).toBe(feeOf(999_999_995_001, 5_001));
  });
});
