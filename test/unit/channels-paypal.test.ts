// PayPal's pure parts: amounts per currency (JPY and TWD without decimals), statuses, the order
// body, the bill rows, and webhook verification against signatures made with node:crypto
// following PayPal's published scheme (transmission_id|transmission_time|webhook_id|crc32).
import { createSign, generateKeyPairSync } from 'node:crypto';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CURRENCY_EXPONENT } from '../../engine/protocol/money.ts';
import { inlineCrypto } from '../../engine/channels/crypto.ts';
import { isChannelError, isChannelNotifyError, NOTIFY_WINDOW_MS } from '../../engine/channels/types.ts';
import { certUrlAllowed, paypalNotifyAnswer, verifyPaypalWebhook, type PaypalWebhookKeys } from '../../engine/channels/paypal/notify.ts';
import {
  billLines,
  bodyCrc32,
  closedMark,
  fromPaypalValue,
  mapCaptureStatus,
  mapOrderStatus,
  mapRefundStatus,
  orderState,
  paypalDecimals,
  toCreateOrderBody,
  toPaypalValue,
} from '../../engine/channels/paypal/transformers.ts';
import { PAYPAL_CAPTURE_STATUSES, PAYPAL_ORDER_STATUSES, PAYPAL_REFUND_STATUSES, type PaypalOrder } from '../../engine/channels/paypal/wire.ts';

const CURRENCIES = Object.keys(CURRENCY_EXPONENT);

describe('paypal amounts', () => {
  it('minor units → PayPal value → minor units is the identity in every currency', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CURRENCIES), fc.integer({ min: 1, max: 1_000_000_000 }), (currency, n) => {
        const minor = currency === 'TWD' ? n * 100 : n; // PayPal takes TWD in whole dollars
        const value = toPaypalValue(minor, currency);
        const decimals = paypalDecimals(currency);
        expect(value.split('.')[1]?.length ?? 0).toBe(decimals);
        expect(fromPaypalValue(value, currency)).toBe(minor);
      }),
    );
  });

  it('writes each currency with PayPal\'s decimals', () => {
    expect(toPaypalValue(1234, 'USD')).toBe('12.34');
    expect(toPaypalValue(5, 'EUR')).toBe('0.05');
    expect(toPaypalValue(500, 'JPY')).toBe('500');
    expect(toPaypalValue(1000, 'KRW')).toBe('1000');
    expect(toPaypalValue(10_000, 'TWD')).toBe('100');
    expect(fromPaypalValue('100.00', 'TWD')).toBe(10_000);
    expect(fromPaypalValue('500', 'JPY')).toBe(500);
    expect(fromPaypalValue('12.3', 'USD')).toBe(1230);
  });

  it('refuses non-integers, non-positive amounts, inexact TWD and unknown currencies', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }).filter((x) => !Number.isInteger(x)), fc.constantFrom(...CURRENCIES), (x, c) => {
        expect(() => toPaypalValue(x, c)).toThrow(/integer/);
      }),
    );
    for (const [a, c] of [[0, 'USD'], [-5, 'USD'], [10_050, 'TWD'], [100, 'XXX'], [2 ** 53, 'USD']] as const) {
      let err: unknown = null;
      try {
        toPaypalValue(a, c);
      } catch (e) {
        err = e;
      }
      expect(isChannelError(err) && err.code).toBe('rejected');
    }
    for (const [v, c] of [['12.345', 'USD'], ['1.5', 'JPY'], ['-1.00', 'USD'], ['1e3', 'USD'], ['', 'USD'], ['1.00', 'XXX'], ['01.00', 'USD']]) expect(fromPaypalValue(v!, c!)).toBeNull();
  });
});

describe('paypal statuses and orders', () => {
  it('maps every order, capture and refund status', () => {
    expect(Object.fromEntries(PAYPAL_ORDER_STATUSES.map((s) => [s, mapOrderStatus(s, null)]))).toEqual({ CREATED: 'pending', SAVED: 'pending', APPROVED: 'pending', VOIDED: 'closed', COMPLETED: 'pending', PAYER_ACTION_REQUIRED: 'pending' });
    expect(Object.fromEntries(PAYPAL_CAPTURE_STATUSES.map((s) => [s, mapOrderStatus('COMPLETED', s)]))).toEqual({ COMPLETED: 'succeeded', DECLINED: 'failed', PARTIALLY_REFUNDED: 'succeeded', PENDING: 'pending', REFUNDED: 'succeeded', FAILED: 'failed' });
    expect(PAYPAL_CAPTURE_STATUSES.map(mapCaptureStatus)).toEqual(['succeeded', 'failed', 'succeeded', 'pending', 'succeeded', 'failed']);
    expect(Object.fromEntries(PAYPAL_REFUND_STATUSES.map((s) => [s, mapRefundStatus(s)]))).toEqual({ CANCELLED: 'failed', FAILED: 'failed', PENDING: 'pending', COMPLETED: 'succeeded' });
  });

  it('maps our order to the create body', () => {
    const req = { out_trade_no: 'pay_1', amount: 1999, currency: 'USD', subject: 'Card', scene: 'pc' as const, client_ip: '127.0.0.1', notify_url: 'https://x/n', expires_at_ms: 0, return_url: 'https://x/r' };
    expect(toCreateOrderBody(req, 'Shop')).toEqual({
      intent: 'CAPTURE',
      purchase_units: [{ reference_id: 'pay_1', custom_id: 'pay_1', invoice_id: 'pay_1', description: 'Card', amount: { currency_code: 'USD', value: '19.99' } }],
      payment_source: { paypal: { experience_context: { user_action: 'PAY_NOW', shipping_preference: 'NO_SHIPPING', return_url: 'https://x/r', cancel_url: 'https://x/r', brand_name: 'Shop' } } },
    });
  });

  it('reads an order: closed by our mark, paid by its capture, and never another out_trade_no\'s', () => {
    const order: PaypalOrder = { id: 'O1', status: 'APPROVED', purchase_units: [{ reference_id: 'pay_1', custom_id: closedMark('pay_1'), invoice_id: 'pay_1', amount: { currency_code: 'JPY', value: '500' } }] };
    expect(orderState(order, 'pay_1')).toMatchObject({ status: 'closed', amount: 500, currency: 'JPY' });
    expect(orderState(order, 'pay_2')).toBeNull();
    const paid: PaypalOrder = { ...order, status: 'COMPLETED', purchase_units: [{ ...order.purchase_units![0]!, custom_id: 'pay_1', payments: { captures: [{ id: 'C1', status: 'COMPLETED', amount: { currency_code: 'JPY', value: '500' }, create_time: '2024-05-01T10:00:00Z' }] } }] };
    expect(orderState(paid, 'pay_1')).toEqual({ out_trade_no: 'pay_1', status: 'succeeded', amount: 500, currency: 'JPY', channel_trade_no: 'C1', paid_at_ms: Date.UTC(2024, 4, 1, 10) });
  });

  it('turns Transaction Search rows into bill lines', () => {
    const lines = billLines([
      { transaction_id: 'C1', transaction_event_code: 'T0006', transaction_initiation_date: '2024-05-01T02:00:00+0000', transaction_amount: { currency_code: 'USD', value: '100.00' }, fee_amount: { currency_code: 'USD', value: '-4.40' }, transaction_status: 'S', invoice_id: 'pay_1' },
      { transaction_id: 'R1', transaction_event_code: 'T1107', transaction_initiation_date: '2024-05-01T03:00:00+0000', transaction_amount: { currency_code: 'USD', value: '-25.00' }, fee_amount: { currency_code: 'USD', value: '1.10' }, transaction_status: 'S', invoice_id: 'rf_1', custom_field: 'pay_1', paypal_reference_id: 'C1' },
      { transaction_id: 'X', transaction_event_code: 'T0400', transaction_initiation_date: '2024-05-01T03:00:00+0000', transaction_amount: { currency_code: 'USD', value: '-50.00' }, transaction_status: 'S' },
      { transaction_id: 'P', transaction_event_code: 'T0006', transaction_initiation_date: '2024-05-01T03:00:00+0000', transaction_amount: { currency_code: 'USD', value: '9.00' }, transaction_status: 'P', invoice_id: 'pay_2' },
    ]);
    expect(lines).toEqual([
      { out_trade_no: 'pay_1', channel_trade_no: 'C1', kind: 'payment', out_refund_no: null, amount: 10_000, currency: 'USD', fee: 440, at_ms: Date.UTC(2024, 4, 1, 2) },
      { out_trade_no: 'pay_1', channel_trade_no: 'C1', kind: 'refund', out_refund_no: 'rf_1', amount: 2500, currency: 'USD', fee: -110, at_ms: Date.UTC(2024, 4, 1, 3) },
    ]);
  });
});

// The webhook signer here is node:crypto, written from PayPal's documentation, not our code.
const pp = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ppPub = pp.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
const WEBHOOK_ID = '8PT597110X687430LKGECATA';
const CERT_URL = 'https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77';
const keys: PaypalWebhookKeys = { webhookId: WEBHOOK_ID, certOrigins: ['https://api.paypal.com', 'https://api.sandbox.paypal.com'], windowMs: NOTIFY_WINDOW_MS, certPublicKey: async (url) => (url === CERT_URL ? ppPub : Promise.reject(new Error('unknown cert'))) };

function signed(event: object, opts: { nowMs?: number; key?: typeof pp.privateKey; webhookId?: string } = {}) {
  const raw = Buffer.from(JSON.stringify(event));
  const id = '69cd13f0-d67a-11e5-baa3-778b53f4ae55';
  const time = new Date(opts.nowMs ?? Date.now()).toISOString();
  const sig = createSign('RSA-SHA256').update(`${id}|${time}|${opts.webhookId ?? WEBHOOK_ID}|${crc32(raw) >>> 0}`).sign(opts.key ?? pp.privateKey, 'base64');
  return { raw, headers: { 'paypal-transmission-id': id, 'paypal-transmission-time': time, 'paypal-transmission-sig': sig, 'paypal-cert-url': CERT_URL, 'paypal-auth-algo': 'SHA256withRSA', 'content-type': 'application/json' } as Record<string, string> };
}

const capture = (status: string) => ({ id: '2GG279541U471931P', status, amount: { currency_code: 'USD', value: '12.34' }, invoice_id: 'pay_01', custom_id: 'pay_01', create_time: '2024-05-01T10:00:00Z' });
const evt = (type: string, resource: object) => ({ id: 'WH-2WR32451HC0233532-67976317FL4543714', event_version: '1.0', create_time: new Date().toISOString(), resource_type: 'capture', event_type: type, summary: 's', resource });

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isChannelNotifyError(err)) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('paypal webhook verification', () => {
  it('crc32 is the standard CRC-32 as an unsigned decimal', () => {
    expect(bodyCrc32(Buffer.from('123456789'))).toBe('3421780262');
  });

  it('accepts and maps each handled event type', async () => {
    const v = (e: object) => {
      const s = signed(e);
      return verifyPaypalWebhook(s.raw, s.headers, Date.now(), keys, inlineCrypto);
    };
    expect(await v(evt('PAYMENT.CAPTURE.COMPLETED', capture('COMPLETED')))).toEqual({ kind: 'payment', notification_id: 'WH-2WR32451HC0233532-67976317FL4543714', out_trade_no: 'pay_01', status: 'succeeded', amount: 1234, currency: 'USD', channel_trade_no: '2GG279541U471931P', paid_at_ms: Date.UTC(2024, 4, 1, 10) });
    expect(await v(evt('PAYMENT.CAPTURE.PENDING', capture('PENDING')))).toMatchObject({ status: 'pending', paid_at_ms: null });
    expect(await v(evt('PAYMENT.CAPTURE.DENIED', capture('DECLINED')))).toMatchObject({ status: 'failed' });
    expect(await v(evt('PAYMENT.CAPTURE.REFUNDED', { id: '1JU08902781691411', status: 'COMPLETED', amount: { currency_code: 'JPY', value: '300' }, invoice_id: 'rf_01', custom_id: 'pay_01' }))).toEqual({ kind: 'refund', notification_id: 'WH-2WR32451HC0233532-67976317FL4543714', out_trade_no: 'pay_01', out_refund_no: 'rf_01', status: 'succeeded', amount: 300, currency: 'JPY' });
    const order = { id: '5O190127TN364715T', status: 'APPROVED', purchase_units: [{ reference_id: 'pay_01', custom_id: 'pay_01', invoice_id: 'pay_01', amount: { currency_code: 'USD', value: '12.34' } }] };
    expect(await v(evt('CHECKOUT.ORDER.APPROVED', order))).toMatchObject({ kind: 'payment', status: 'pending', amount: 1234, out_trade_no: 'pay_01' });
    expect(await v(evt('CHECKOUT.ORDER.COMPLETED', { ...order, status: 'COMPLETED', purchase_units: [{ ...order.purchase_units[0], payments: { captures: [capture('COMPLETED')] } }] }))).toMatchObject({ status: 'succeeded', channel_trade_no: '2GG279541U471931P' });
  });

  it('rejects tampering, wrong keys, the window, missing headers, foreign certificates and re-serialisation', async () => {
    const now = Date.now();
    const good = signed(evt('PAYMENT.CAPTURE.COMPLETED', capture('COMPLETED')), { nowMs: now });
    const run = (raw: Buffer, headers: Record<string, string>, at = now) => rejection(verifyPaypalWebhook(raw, headers, at, keys, inlineCrypto));
    expect(await run(good.raw, good.headers)).toBe('accepted');
    for (const i of fc.sample(fc.integer({ min: 0, max: good.raw.length - 1 }), 30)) {
      const b = Buffer.from(good.raw);
      b[i] = b[i]! ^ 0x01;
      expect(await run(b, good.headers)).toBe('invalid_signature');
    }
    const s = signed(evt('PAYMENT.CAPTURE.COMPLETED', capture('COMPLETED')), { nowMs: now, key: stranger.privateKey });
    expect(await run(s.raw, s.headers)).toBe('invalid_signature');
    const w = signed(evt('PAYMENT.CAPTURE.COMPLETED', capture('COMPLETED')), { nowMs: now, webhookId: 'ANOTHER' });
    expect(await run(w.raw, w.headers)).toBe('invalid_signature');
    expect(await run(good.raw, good.headers, now + NOTIFY_WINDOW_MS + 1_000)).toBe('timestamp_out_of_window');
    expect(await run(good.raw, good.headers, now - NOTIFY_WINDOW_MS - 1_000)).toBe('timestamp_out_of_window');
    for (const h of ['paypal-transmission-id', 'paypal-transmission-time', 'paypal-transmission-sig', 'paypal-cert-url', 'paypal-auth-algo']) {
      const { [h]: _gone, ...rest } = good.headers;
      expect(await run(good.raw, rest)).toBe('invalid_signature');
    }
    expect(await run(good.raw, { ...good.headers, 'paypal-auth-algo': 'SHA1withRSA' })).toBe('invalid_signature');
    expect(await run(good.raw, { ...good.headers, 'paypal-transmission-time': 'yesterday' })).toBe('malformed');
    for (const url of ['https://evil.example/v1/notifications/certs/CERT-1', 'https://api.paypal.com.evil.example/c', 'https://user:pw@api.paypal.com/c', 'http://api.paypal.com/c', 'not a url']) {
      expect(await run(good.raw, { ...good.headers, 'paypal-cert-url': url })).toBe('invalid_signature');
    }
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(good.raw.toString()), null, 2));
    expect(await run(reserialised, good.headers)).toBe('invalid_signature');
    const other = signed(evt('CUSTOMER.DISPUTE.CREATED', {}), { nowMs: now });
    expect(await run(other.raw, other.headers)).toBe('unsupported_event');
    const notJson = (() => {
      const raw = Buffer.from('not json');
      const t = new Date(now).toISOString();
      const sig = createSign('RSA-SHA256').update(`x|${t}|${WEBHOOK_ID}|${crc32(raw) >>> 0}`).sign(pp.privateKey, 'base64');
      return { raw, headers: { ...good.headers, 'paypal-transmission-id': 'x', 'paypal-transmission-time': t, 'paypal-transmission-sig': sig } };
    })();
    expect(await run(notJson.raw, notJson.headers)).toBe('malformed');
    const noInvoice = signed(evt('PAYMENT.CAPTURE.COMPLETED', { ...capture('COMPLETED'), invoice_id: undefined }), { nowMs: now });
    expect(await run(noInvoice.raw, noInvoice.headers)).toBe('malformed');
    const badAmount = signed(evt('PAYMENT.CAPTURE.COMPLETED', { ...capture('COMPLETED'), amount: { currency_code: 'JPY', value: '5.5' } }), { nowMs: now });
    expect(await run(badAmount.raw, badAmount.headers)).toBe('malformed');
  });

  it('allows certificates only from the configured origins', () => {
    expect(certUrlAllowed(CERT_URL, keys.certOrigins)).toBe(true);
    expect(certUrlAllowed('https://api.paypal.com:443/x', keys.certOrigins)).toBe(true);
    expect(certUrlAllowed('https://api.paypal.com:8443/x', keys.certOrigins)).toBe(false);
  });

  it('answers 200 to an accepted webhook and 400 to a rejected one', () => {
    expect(paypalNotifyAnswer(true).status).toBe(200);
    expect(paypalNotifyAnswer(false).status).toBe(400);
  });
});
