// What the engine asks a channel when it refunds a channel payment (ChannelDesk.refundRequest):
// our ids as the channel's order and refund numbers, the channel's own amount and currency, the
// channel order id PayPal and UnionPay need, and for a converted payment the whole amount the buyer
// paid in the channel's currency.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ChannelDesk, channelRefundAmount } from '../../engine/channels/desk.ts';
import { channelSettingsSchema } from '../../engine/channels/settings.ts';
import { NO_CHANNEL_FIELDS, type RawPayment, type RawRefund } from '../../engine/redis/store.ts';
import { refundResultCmdId } from '../../engine/shards/channel-work.ts';

const desk = new ChannelDesk({
  settings: channelSettingsSchema.parse({
    public_url: 'https://pay.example.com/',
    channels: {},
    routes: { default: { '*': [{ channel: 'wechat_pay', weight: 1 }] } },
  }),
  adapters: {},
  metrics: null,
  log: pino({ level: 'silent' }),
});

const payment = (over: Partial<RawPayment>): RawPayment => ({
  id: 'pay_1', merchant_id: 'm1', out_trade_no: 'T1', amount: 10_000, currency: 'CNY', amount_captured: 10_000, amount_refunded: 0,
  method: 'auto', channel: 'wechat_pay', account_id: '', scene: 'pc', subject: '', buyer: '', metadata: '', notify_url: '',
  status: 'succeeded', failure_code: '', failure_message: '', hold_amount: 0, hold_expires_at_ms: 0, created_at_ms: 1, updated_at_ms: 2,
  version: 3, ...NO_CHANNEL_FIELDS, channel_order_id: 'wx_prepay_1', channel_amount: 10_000, channel_currency: 'CNY', ...over,
});
const refund = (over: Partial<RawRefund>): RawRefund => ({
  id: 're_1', merchant_id: 'm1', payment_id: 'pay_1', account_id: '', amount: 2500, currency: 'CNY', status: 'pending', reason: '',
  created_at_ms: 5, ...over,
});

describe('channel refund requests', () => {
  it('asks for the refund amount against the channel order, in the channel currency, with its order id', () => {
    expect(desk.refundRequest(payment({}), refund({ reason: 'damaged' }), 'wechat_pay')).toEqual({
      out_trade_no: 'pay_1', out_refund_no: 're_1', amount: 2500, total_amount: 10_000, currency: 'CNY', reason: 'damaged',
      notify_url: 'https://pay.example.com/v1/notify/wechat_pay', channel_order_id: 'wx_prepay_1',
    });
    expect(desk.refundRequest(payment({ channel_order_id: '' }), refund({}), 'wechat_pay')).toMatchObject({ channel_order_id: null });
    expect(desk.refundRequest(payment({}), refund({}), 'wechat_pay')).not.toHaveProperty('reason');
  });

  it('refunds a converted payment in full in the channel currency, and never a part of it', () => {
    const usd = payment({ channel: 'stripe', channel_amount: 1380, channel_currency: 'USD', fx_rate: '0.1380' });
    expect(desk.refundRequest(usd, refund({ amount: 10_000 }), 'stripe')).toMatchObject({ amount: 1380, total_amount: 1380, currency: 'USD' });
    expect(() => channelRefundAmount(usd, { amount: 5000 })).toThrow(/part refund/);
    expect(channelRefundAmount(payment({}), { amount: 1 })).toBe(1);
  });

  it('refuses a refund of another payment', () => {
    expect(() => desk.refundRequest(payment({}), refund({ payment_id: 'pay_2' }), 'wechat_pay')).toThrow(/not of payment/);
  });

  it('names one result command per merchant and refund, a safe id', () => {
    const id = refundResultCmdId('m1', 're_1');
    expect(id).toMatch(/^rfr_[A-Za-z0-9_-]{26}$/);
    expect(refundResultCmdId('m1', 're_1')).toBe(id);
    expect(refundResultCmdId('m2', 're_1')).not.toBe(id);
    expect(refundResultCmdId('m1', 're_2')).not.toBe(id);
  });
});
