// The PayPal adapter against the PayPal sandbox over real HTTP. The independent check of the
// webhook signatures is node:crypto and node:zlib following PayPal's published scheme.
import { verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inlineCrypto } from '../../engine/channels/crypto.ts';
import { shanghaiDay } from '../../engine/channels/sandbox-kit.ts';
import { type ChannelNotification, isChannelNotifyError } from '../../engine/channels/types.ts';
import { createPaypalAdapter, paypalSandboxFee, startPaypalSandbox, type PaypalAdapter, type PaypalSandbox } from '../../engine/channels/paypal/index.ts';
import { channelError, firstMatching } from '../channel-test-kit.ts';

type Received = { headers: IncomingHttpHeaders; raw: Buffer; verified: ChannelNotification | null; error: unknown };

let sb: PaypalSandbox;
let adapter: PaypalAdapter;
let receiver: Server;
let webhookUrl: string;
const received: Received[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      adapter.verifyNotify(raw, req.headers, Date.now()).then(
        (n) => {
          received.push({ headers: req.headers, raw, verified: n, error: null });
          const a = adapter.notifyAnswer(true);
          res.writeHead(a.status, a.headers).end(a.body);
        },
        (err: unknown) => {
          received.push({ headers: req.headers, raw, verified: null, error: err });
          const a = adapter.notifyAnswer(false);
          res.writeHead(a.status, a.headers).end(a.body);
        },
      );
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  webhookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/notify/paypal`;
  sb = await startPaypalSandbox();
  adapter = createPaypalAdapter(sb.config, { crypto: inlineCrypto, timeoutMs: 1_000 });
});

afterAll(async () => {
  await sb?.kit.close();
  await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
});

let seq = 0;
const orderReq = (amount: number, currency = 'USD') => ({
  out_trade_no: `pay_pp_${Date.now()}_${++seq}`,
  amount,
  currency,
  subject: 'Game card',
  scene: 'pc' as const,
  client_ip: '127.0.0.1',
  notify_url: webhookUrl,
  expires_at_ms: Date.now() + 15 * 60_000,
  return_url: 'https://shop.example/return',
});

const waitForNotify = (pred: (r: Received) => boolean): Promise<Received> => firstMatching(received, pred, 'webhook');

const eventType = (r: Received) => (JSON.parse(r.raw.toString('utf8')) as { event_type: string }).event_type;

describe('paypal adapter ↔ sandbox', () => {
  it('registers the webhook listener through the Webhooks API', async () => {
    const tok = await fetch(`${sb.url}/v1/oauth2/token`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${sb.config.clientId}:${sb.config.clientSecret}`).toString('base64')}` }, body: new URLSearchParams({ grant_type: 'client_credentials' }) });
    const { access_token } = (await tok.json()) as { access_token: string };
    const reg = await fetch(`${sb.url}/v1/notifications/webhooks`, { method: 'POST', headers: { authorization: `Bearer ${access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ url: webhookUrl, event_types: [{ name: '*' }] }) });
    expect(reg.status).toBe(201);
    expect(((await reg.json()) as { id: string }).id).toBe(sb.config.webhookId);
    const bad = await fetch(`${sb.url}/v2/checkout/orders/X`, { headers: { authorization: 'Bearer forged' } });
    expect(bad.status).toBe(401);
  });

  it('creates an order (approve link), sees it pending, pays, verifies PAYMENT.CAPTURE.COMPLETED, then succeeded', async () => {
    const req = orderReq(1234);
    const order = await adapter.createOrder(req);
    expect(order.channel_order_id).toMatch(/^[A-Z0-9]{17}$/);
    expect(order.next_action).toEqual({ type: 'redirect', url: `${sb.url}/checkoutnow?token=${order.channel_order_id}` });
    expect(await adapter.queryOrder(req.out_trade_no)).toMatchObject({ status: 'pending', amount: 1234, currency: 'USD', channel_trade_no: null });
    // A retried create (same PayPal-Request-Id) is the same order.
    expect((await adapter.createOrder(req)).channel_order_id).toBe(order.channel_order_id);

    await sb.kit.book.pay(req.out_trade_no);
    const n = await waitForNotify((r) => r.verified?.out_trade_no === req.out_trade_no);
    expect(eventType(n)).toBe('PAYMENT.CAPTURE.COMPLETED');
    expect(n.verified).toMatchObject({ kind: 'payment', status: 'succeeded', amount: 1234, currency: 'USD', channel_trade_no: sb.kit.book.get(req.out_trade_no)?.trade_no });
    expect(n.verified?.notification_id).toMatch(/^WH-/);

    // Independently: node:crypto and node:zlib, straight from PayPal's published scheme.
    const h = (k: string) => String(n.headers[k]);
    const cert = new X509Certificate(await (await fetch(h('paypal-cert-url'))).text());
    const signed = `${h('paypal-transmission-id')}|${h('paypal-transmission-time')}|${sb.config.webhookId}|${crc32(n.raw) >>> 0}`;
    expect(h('paypal-auth-algo')).toBe('SHA256withRSA');
    expect(cryptoVerify('sha256', Buffer.from(signed), cert.publicKey, Buffer.from(h('paypal-transmission-sig'), 'base64'))).toBe(true);
    expect(cryptoVerify('sha256', Buffer.from(`${signed}0`), cert.publicKey, Buffer.from(h('paypal-transmission-sig'), 'base64'))).toBe(false);

    const paid = await adapter.queryOrder(req.out_trade_no);
    expect(paid).toMatchObject({ status: 'succeeded', amount: 1234, currency: 'USD', channel_trade_no: sb.kit.book.get(req.out_trade_no)?.trade_no });
    expect(paid.paid_at_ms).not.toBeNull();
    expect(await channelError(adapter.closeOrder(req.out_trade_no))).toMatchObject({ code: 'order_paid' });
  });

  it('the buyer approves on the approve page (CHECKOUT.ORDER.APPROVED, pending); the next query captures', async () => {
    const req = orderReq(2500);
    const order = await adapter.createOrder(req);
    const link = order.next_action.type === 'redirect' ? order.next_action.url : '';
    expect((await fetch(link)).status).toBe(200);
    const approve = await fetch(link, { method: 'POST', redirect: 'manual' });
    expect(approve.status).toBe(302);
    expect(approve.headers.get('location')).toBe(`https://shop.example/return?token=${order.channel_order_id}&PayerID=SANDBOXBUYER1`);
    const n = await waitForNotify((r) => r.verified?.out_trade_no === req.out_trade_no);
    expect(eventType(n)).toBe('CHECKOUT.ORDER.APPROVED');
    expect(n.verified).toMatchObject({ kind: 'payment', status: 'pending', amount: 2500 });

    const state = await adapter.queryOrder(req.out_trade_no);
    expect(state).toMatchObject({ status: 'succeeded', amount: 2500, currency: 'USD' });
    const captured = await waitForNotify((r) => r.verified?.out_trade_no === req.out_trade_no && eventType(r) === 'PAYMENT.CAPTURE.COMPLETED');
    expect(captured.verified).toMatchObject({ status: 'succeeded', channel_trade_no: state.channel_trade_no });
    expect((await adapter.queryOrder(req.out_trade_no)).channel_trade_no).toBe(state.channel_trade_no);
  });

  it('JPY goes without decimals; TWD must be whole dollars', async () => {
    const req = orderReq(500, 'JPY');
    await adapter.createOrder(req);
    expect(sb.kit.book.get(req.out_trade_no)).toMatchObject({ amount: 500, currency: 'JPY' });
    await sb.kit.book.pay(req.out_trade_no);
    const n = await waitForNotify((r) => r.verified?.out_trade_no === req.out_trade_no);
    expect(JSON.parse(n.raw.toString()).resource.amount).toEqual({ currency_code: 'JPY', value: '500' });
    expect(n.verified).toMatchObject({ amount: 500, currency: 'JPY' });
    const twd = orderReq(10_000, 'TWD');
    await adapter.createOrder(twd);
    expect(sb.kit.book.get(twd.out_trade_no)).toMatchObject({ amount: 10_000, currency: 'TWD' });
    expect((await channelError(adapter.createOrder(orderReq(10_050, 'TWD')))).code).toBe('rejected');
  });

  it('refunds part of a capture (PAYMENT.CAPTURE.REFUNDED), idempotently, and refuses too much', async () => {
    const req = orderReq(5000);
    const order = await adapter.createOrder(req);
    await sb.kit.book.pay(req.out_trade_no);
    const rq = { out_trade_no: req.out_trade_no, out_refund_no: `rf_${req.out_trade_no}`, amount: 1999, total_amount: 5000, currency: 'USD', notify_url: webhookUrl };
    const r = await adapter.refund(rq);
    expect(r).toMatchObject({ status: 'succeeded', amount: 1999 });
    expect(r.channel_refund_id).toBe(sb.kit.book.get(req.out_trade_no)?.refunds[0]?.refund_id);
    const n = await waitForNotify((x) => x.verified?.kind === 'refund' && x.verified.out_trade_no === req.out_trade_no);
    expect(n.verified).toMatchObject({ kind: 'refund', out_refund_no: rq.out_refund_no, status: 'succeeded', amount: 1999, currency: 'USD' });
    expect((await adapter.refund(rq)).channel_refund_id).toBe(r.channel_refund_id);
    expect(sb.kit.book.get(req.out_trade_no)?.refunds).toHaveLength(1);
    expect(await channelError(adapter.refund({ ...rq, out_refund_no: `rf2_${req.out_trade_no}`, amount: 4000 }))).toMatchObject({ code: 'rejected', channelCode: 'REFUND_AMOUNT_EXCEEDED' });
    // After a restart the order id comes back from the engine (channel_order_id), not from memory.
    const fresh = createPaypalAdapter(sb.config, { crypto: inlineCrypto });
    expect(await channelError(fresh.queryOrder(req.out_trade_no))).toMatchObject({ code: 'not_found', channelCode: 'PAYPAL_ORDER_ID_UNKNOWN' });
    expect((await fresh.queryOrder(req.out_trade_no, order.channel_order_id)).status).toBe('succeeded');
    expect(await fresh.refund({ ...rq, channel_order_id: order.channel_order_id })).toMatchObject({ channel_refund_id: r.channel_refund_id });
  });

  it('closes a pending order: it reads closed, the buyer can no longer pay it, and closing again or unknown is fine', async () => {
    const req = orderReq(300);
    await adapter.createOrder(req);
    await adapter.closeOrder(req.out_trade_no);
    expect((await adapter.queryOrder(req.out_trade_no)).status).toBe('closed');
    await sb.kit.book.pay(req.out_trade_no);
    expect((await adapter.queryOrder(req.out_trade_no)).status).toBe('closed');
    await adapter.closeOrder(req.out_trade_no);
    await adapter.closeOrder(`never_${req.out_trade_no}`);
  });

  it('maps outage, 500s and latency to unavailable and timeout', async () => {
    const req = orderReq(100);
    await adapter.createOrder(req);
    try {
      sb.kit.setFaults({ outage: true });
      expect((await channelError(adapter.queryOrder(req.out_trade_no))).code).toBe('unavailable');
      sb.kit.setFaults({ outage: false, errorRate: 1 });
      expect(await channelError(adapter.queryOrder(req.out_trade_no))).toMatchObject({ code: 'unavailable', channelCode: 'INTERNAL_SERVER_ERROR' });
      sb.kit.setFaults({ errorRate: 0, latencyMs: 1_500 });
      expect((await channelError(adapter.queryOrder(req.out_trade_no))).code).toBe('timeout');
    } finally {
      sb.kit.setFaults({ outage: false, errorRate: 0, latencyMs: 0 });
    }
    expect((await adapter.queryOrder(req.out_trade_no)).status).toBe('pending');
  });

  it('refuses wrong client credentials; the sandbox refuses forged tokens', async () => {
    const wrong = createPaypalAdapter({ ...sb.config, clientSecret: 'not-the-secret' }, { crypto: inlineCrypto });
    expect(await channelError(wrong.createOrder(orderReq(100)))).toMatchObject({ code: 'rejected', channelCode: 'invalid_client' });
  });

  it('downloads the day\'s transactions with the payment, its fee and the refund', async () => {
    const req = orderReq(10_000);
    await adapter.createOrder(req);
    await sb.kit.book.pay(req.out_trade_no);
    await adapter.refund({ out_trade_no: req.out_trade_no, out_refund_no: `rb_${req.out_trade_no}`, amount: 2500, total_amount: 10_000, currency: 'USD', notify_url: webhookUrl });
    const lines = (await adapter.downloadBill(shanghaiDay(Date.now()))).filter((l) => l.out_trade_no === req.out_trade_no);
    expect(lines).toHaveLength(2);
    expect(lines.find((l) => l.kind === 'payment')).toMatchObject({ amount: 10_000, currency: 'USD', fee: paypalSandboxFee(10_000), channel_trade_no: sb.kit.book.get(req.out_trade_no)?.trade_no });
    expect(paypalSandboxFee(10_000)).toBe(440);
    expect(lines.find((l) => l.kind === 'refund')).toMatchObject({ amount: 2500, out_refund_no: `rb_${req.out_trade_no}`, fee: 0 });
  });

  it('never fetches a certificate from a host that is not allowed', async () => {
    const req = orderReq(700);
    await adapter.createOrder(req);
    await sb.kit.book.pay(req.out_trade_no);
    const n = await waitForNotify((r) => r.verified?.out_trade_no === req.out_trade_no);
    const fetched: string[] = [];
    const spy: typeof fetch = async (input, init) => {
      fetched.push(String(input));
      return fetch(input, init);
    };
    const a = createPaypalAdapter(sb.config, { crypto: inlineCrypto, fetch: spy });
    const evil = { ...n.headers, 'paypal-cert-url': 'http://127.0.0.1:1/v1/notifications/certs/CERT-evil' };
    const err = await a.verifyNotify(n.raw, evil, Date.now()).catch((e: unknown) => e);
    expect(isChannelNotifyError(err) && err.reason).toBe('invalid_signature');
    expect(fetched).toEqual([]);
    // The allowed one is fetched once and cached.
    await a.verifyNotify(n.raw, n.headers, Date.now());
    await a.verifyNotify(n.raw, n.headers, Date.now());
    expect(fetched).toEqual([String(n.headers['paypal-cert-url'])]);
  });
});
