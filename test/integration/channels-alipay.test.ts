// The Alipay adapter against the Alipay sandbox over real HTTP, with the official alipay-sdk as
// an independent counterparty: it verifies our sandbox's notifications and answers, and talks to
// the sandbox as a client.
import { createPublicKey } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AlipaySdk } from 'alipay-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inlineCrypto } from '../../engine/channels/crypto.ts';
import { shanghaiDay } from '../../engine/channels/sandbox-kit.ts';
import { type ChannelAdapter, type ChannelNotification } from '../../engine/channels/types.ts';
import { alipaySandboxFee, createAlipayAdapter, startAlipaySandbox, type AlipaySandbox } from '../../engine/channels/alipay/index.ts';
import { channelError, firstMatching } from '../channel-test-kit.ts';

type Received = { headers: IncomingHttpHeaders; raw: Buffer; verified: ChannelNotification | null; error: unknown };

let sb: AlipaySandbox;
let adapter: ChannelAdapter;
let receiver: Server;
let notifyUrl: string;
const received: Received[] = [];

beforeAll(async () => {
  sb = await startAlipaySandbox();
  adapter = createAlipayAdapter(sb.config, { crypto: inlineCrypto, timeoutMs: 1_000 });
  // Our notify endpoint in miniature: verify over the raw bytes, answer as Alipay expects.
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
  notifyUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/notify/alipay`;
});

afterAll(async () => {
  await sb?.kit.close();
  await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
});

let seq = 0;
const orderReq = (amount: number, scene: 'pc' | 'h5' = 'pc') => ({
  out_trade_no: `pay_ali_${Date.now()}_${++seq}`,
  amount,
  currency: 'CNY',
  subject: '点卡 100 元',
  scene,
  client_ip: '127.0.0.1',
  notify_url: notifyUrl,
  expires_at_ms: Date.now() + 15 * 60_000,
  return_url: 'https://shop.example/return',
});

const waitForNotify = (pred: (r: Received) => boolean): Promise<Received> => firstMatching(received, pred, 'notification');

const sdkFor = () =>
  new AlipaySdk({
    appId: sb.config.appId,
    privateKey: sb.config.appPrivateKeyPem.trim(),
    keyType: 'PKCS8',
    alipayPublicKey: sb.config.alipayPublicKeyPem.trim(),
    gateway: sb.config.gatewayUrl,
  });

describe('alipay adapter ↔ sandbox', () => {
  it('creates a QR trade, sees it pending, gets a verified payment notification, then succeeded', async () => {
    const req = orderReq(1999);
    const order = await adapter.createOrder(req);
    expect(order.next_action.type).toBe('qr_code');
    expect(order.next_action.type === 'qr_code' && order.next_action.code_url.startsWith(sb.url)).toBe(true);
    const pending = await adapter.queryOrder(req.out_trade_no);
    expect(pending).toMatchObject({ status: 'pending', amount: 1999, currency: 'CNY', paid_at_ms: null });

    await sb.kit.book.pay(req.out_trade_no);
    const n = await waitForNotify((r) => r.verified?.out_trade_no === req.out_trade_no);
    expect(n.verified).toMatchObject({ kind: 'payment', status: 'succeeded', amount: 1999, currency: 'CNY' });
    expect(n.verified?.notification_id).toMatch(/^\w{20,}$/);
    expect(sb.kit.book.callbacks.at(-1)?.delivered).toBe(true);

    // The official SDK accepts the very same notification.
    const form = Object.fromEntries(new URLSearchParams(n.raw.toString('utf8')));
    expect(sdkFor().checkNotifySignV2(form)).toBe(true);
    expect(sdkFor().checkNotifySign(form)).toBe(true);
    expect(sdkFor().checkNotifySignV2({ ...form, total_amount: '0.01' })).toBe(false);

    const paid = await adapter.queryOrder(req.out_trade_no);
    expect(paid).toMatchObject({ status: 'succeeded', amount: 1999 });
    expect(paid.channel_trade_no).toBe(sb.kit.book.get(req.out_trade_no)?.trade_no);
    expect(Math.abs((paid.paid_at_ms ?? 0) - (sb.kit.book.get(req.out_trade_no)?.paid_ms ?? 0))).toBeLessThan(1_000);

    expect(await channelError(adapter.closeOrder(req.out_trade_no))).toMatchObject({ code: 'order_paid' });
  });

  it('refunds part of a paid trade, notifies the refund, and a retried refund is recognised', async () => {
    const req = orderReq(5000);
    await adapter.createOrder(req);
    await sb.kit.book.pay(req.out_trade_no);
    const r = await adapter.refund({ out_trade_no: req.out_trade_no, out_refund_no: `rf_${req.out_trade_no}`, amount: 1200, total_amount: 5000, currency: 'CNY', notify_url: notifyUrl });
    expect(r).toMatchObject({ status: 'succeeded', amount: 1200, out_refund_no: `rf_${req.out_trade_no}` });
    const n = await waitForNotify((x) => x.verified?.kind === 'refund' && x.verified.out_trade_no === req.out_trade_no);
    expect(n.verified).toMatchObject({ kind: 'refund', status: 'succeeded', amount: 1200, out_refund_no: `rf_${req.out_trade_no}` });
    // The same out_request_no again moves no money (fund_change N); the refund query confirms it.
    const again = await adapter.refund({ out_trade_no: req.out_trade_no, out_refund_no: `rf_${req.out_trade_no}`, amount: 1200, total_amount: 5000, currency: 'CNY', notify_url: notifyUrl });
    expect(again.status).toBe('succeeded');
    expect(sb.kit.book.get(req.out_trade_no)?.refunds).toHaveLength(1);
    expect(await channelError(adapter.refund({ out_trade_no: req.out_trade_no, out_refund_no: `rf2_${req.out_trade_no}`, amount: 4000, total_amount: 5000, currency: 'CNY', notify_url: notifyUrl }))).toMatchObject({ code: 'rejected', channelCode: 'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL' });
  });

  it('closes a pending trade (and again, and an unknown one) and reports it closed', async () => {
    const req = orderReq(300);
    await adapter.createOrder(req);
    await adapter.closeOrder(req.out_trade_no);
    expect((await adapter.queryOrder(req.out_trade_no)).status).toBe('closed');
    await adapter.closeOrder(req.out_trade_no); // ACQ.TRADE_STATUS_ERROR → query → closed: fine
    await adapter.closeOrder(`never_${req.out_trade_no}`);
    expect(await channelError(adapter.queryOrder(`never_${req.out_trade_no}`))).toMatchObject({ code: 'not_found', channelCode: 'ACQ.TRADE_NOT_EXIST' });
  });

  it('h5: a signed wap.pay URL opens the trade when the buyer visits it', async () => {
    const req = orderReq(880, 'h5');
    const order = await adapter.createOrder(req);
    expect(order.next_action.type).toBe('redirect');
    const url = order.next_action.type === 'redirect' ? order.next_action.url : '';
    expect(new URL(url).searchParams.get('method')).toBe('alipay.trade.wap.pay');
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect((await adapter.queryOrder(req.out_trade_no)).status).toBe('pending');
    // One changed parameter and the gateway refuses the page.
    const forged = new URL(url);
    forged.searchParams.set('biz_content', (forged.searchParams.get('biz_content') ?? '').replace('"8.80"', '"0.01"'));
    const bad = await fetch(forged);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('isv.invalid-signature');
  });

  it('the sandbox refuses a request signed with another key; a forged answer is refused by the adapter', async () => {
    const other = await startAlipaySandbox();
    try {
      const wrongKey = createAlipayAdapter({ ...sb.config, appPrivateKeyPem: other.config.appPrivateKeyPem }, { crypto: inlineCrypto });
      expect(await channelError(wrongKey.queryOrder('x'))).toMatchObject({ code: 'rejected', channelCode: 'isv.invalid-signature' });
      const wrongAlipayKey = createAlipayAdapter({ ...sb.config, alipayPublicKeyPem: other.config.alipayPublicKeyPem }, { crypto: inlineCrypto });
      expect(await channelError(wrongAlipayKey.queryOrder('x'))).toMatchObject({ code: 'bad_response' });
    } finally {
      await other.kit.close();
    }
  });

  it('maps outage, system errors and latency to unavailable and timeout', async () => {
    const req = orderReq(100);
    await adapter.createOrder(req);
    try {
      sb.kit.setFaults({ outage: true });
      expect((await channelError(adapter.queryOrder(req.out_trade_no))).code).toBe('unavailable');
      sb.kit.setFaults({ outage: false, errorRate: 1 });
      expect(await channelError(adapter.queryOrder(req.out_trade_no))).toMatchObject({ code: 'unavailable', channelCode: 'isp.unknow-error' });
      sb.kit.setFaults({ errorRate: 0, latencyMs: 1_500 });
      expect((await channelError(adapter.queryOrder(req.out_trade_no))).code).toBe('timeout');
    } finally {
      sb.kit.setFaults({ outage: false, errorRate: 0, latencyMs: 0 });
    }
    expect((await adapter.queryOrder(req.out_trade_no)).status).toBe('pending');
  });

  it('downloads the day\'s bill with the payment, its fee and the refund', async () => {
    const req = orderReq(12345);
    await adapter.createOrder(req);
    await sb.kit.book.pay(req.out_trade_no);
    await adapter.refund({ out_trade_no: req.out_trade_no, out_refund_no: `rb_${req.out_trade_no}`, amount: 345, total_amount: 12345, currency: 'CNY', notify_url: notifyUrl });
    const lines = await adapter.downloadBill(shanghaiDay(Date.now()));
    const mine = lines.filter((l) => l.out_trade_no === req.out_trade_no);
    expect(mine).toHaveLength(2);
    const pay = mine.find((l) => l.kind === 'payment');
    const ref = mine.find((l) => l.kind === 'refund');
    expect(pay).toMatchObject({ amount: 12345, fee: alipaySandboxFee(12345), currency: 'CNY', channel_trade_no: sb.kit.book.get(req.out_trade_no)?.trade_no });
    expect(alipaySandboxFee(12345)).toBe(74); // 0.6% of 123.45 = 0.7407 → 0.74
    expect(ref).toMatchObject({ amount: 345, out_refund_no: `rb_${req.out_trade_no}`, fee: 0 });
  });

  it('alipay-sdk as the client: the sandbox takes its signed requests and it verifies the sandbox\'s answers', async () => {
    const sdk = sdkFor();
    const outTradeNo = `pay_sdk_${Date.now()}`;
    const pre = await sdk.exec('alipay.trade.precreate', { notifyUrl, bizContent: { outTradeNo, totalAmount: '0.88', subject: 'sdk' } }, { validateSign: true });
    expect(pre.code).toBe('10000');
    expect(String(pre.qrCode)).toContain(sb.url);
    const q = await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo } }, { validateSign: true });
    expect(q).toMatchObject({ code: '10000', tradeStatus: 'WAIT_BUYER_PAY', totalAmount: '0.88' });
    expect((await adapter.queryOrder(outTradeNo)).amount).toBe(88);
  });

  it('alipay-sdk verifies the request signatures our adapter makes', async () => {
    const seen: Record<string, string>[] = [];
    const spy: typeof fetch = async (input, init) => {
      seen.push(Object.fromEntries(new URLSearchParams(String(init?.body ?? ''))));
      return fetch(input, init);
    };
    const a = createAlipayAdapter(sb.config, { crypto: inlineCrypto, fetch: spy });
    await a.createOrder(orderReq(4321));
    const appPublicKey = createPublicKey(sb.config.appPrivateKeyPem).export({ type: 'spki', format: 'pem' }) as string;
    // checkNotifySignV2 is the SDK's parameter-map verifier; the first string it tries keeps
    // sign_type, which is the request rule.
    const verifier = new AlipaySdk({ appId: sb.config.appId, privateKey: sb.config.appPrivateKeyPem.trim(), keyType: 'PKCS8', alipayPublicKey: appPublicKey.trim() });
    expect(seen).toHaveLength(1);
    expect(verifier.checkNotifySignV2(seen[0])).toBe(true);
    expect(verifier.checkNotifySignV2({ ...seen[0], biz_content: (seen[0]?.biz_content ?? '').replace('43.21', '0.01') })).toBe(false);
  });
});
