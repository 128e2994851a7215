// UnionPay adapter against its sandbox over real HTTP. The counterparty code no one here wrote
// does not exist for Node (UnionPay ships Java/PHP/.NET SDKs only), so the independent checks are
// written in this file with node:crypto strictly per the published 5.1.0 rule: the sandbox's
// notifications verify with it, and requests and notifications it signs are accepted.
import { createHash, createSign, createVerify, randomBytes, X509Certificate } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inlineCrypto } from '../../engine/channels/crypto.ts';
import type { SandboxKit } from '../../engine/channels/sandbox-kit.ts';
import { type ChannelOrderRequest } from '../../engine/channels/types.ts';
import {
  createUnionPayAdapter,
  formatUpTime,
  mintUnionPaySandboxPki,
  parseUpTime,
  startUnionPaySandbox,
  toUpChannelOrderId,
  toUpOrderId,
  txnTimeMsOfChannelOrderId,
  unionPayFeeOf,
  type UnionPayAdapter,
  type UnionPayConfig,
} from '../../engine/channels/unionpay/index.ts';
import { waitFor } from '../helpers.ts';

type Captured = { raw: Buffer; headers: IncomingHttpHeaders };

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** An id shaped as ingress/idempotency.ts derivedId makes them: prefix + 26 Crockford characters of a hash, no time inside. */
const derivedLikeId = (prefix: string) => `${prefix}_${[...randomBytes(26)].map((b) => CROCKFORD[b & 31]).join('')}`;
const payId = () => derivedLikeId('pay');
const refundId = () => derivedLikeId('re');
/** The channel order id of an order UnionPay never saw (sent now). */
const unknownOrder = () => {
  const id = payId();
  return { id, coid: toUpChannelOrderId(id, Date.now()) };
};

/** The published 5.1.0 rule, independent of engine/channels/unionpay/sign.ts. */
const specDigest = (p: Record<string, string>) =>
  createHash('sha256')
    .update(Object.keys(p).filter((k) => k !== 'signature').sort().map((k) => `${k}=${p[k]}`).join('&'), 'utf8')
    .digest('hex');
const specVerify = (p: Record<string, string>, certPem: string) => createVerify('RSA-SHA256').update(specDigest(p), 'utf8').verify(new X509Certificate(certPem).publicKey, p.signature ?? '', 'base64');
const specSign = (p: Record<string, string>, keyPem: string) => ({ ...p, signature: createSign('RSA-SHA256').update(specDigest(p), 'utf8').sign(keyPem, 'base64') });

describe('unionpay adapter ↔ sandbox', () => {
  let kit: SandboxKit;
  let config: UnionPayConfig;
  let adapter: UnionPayAdapter;
  let receiver: Server;
  let notifyUrl: string;
  const captured: Captured[] = [];

  beforeAll(async () => {
    const sb = await startUnionPaySandbox();
    kit = sb.kit;
    config = sb.config;
    adapter = createUnionPayAdapter(config, { crypto: inlineCrypto, timeoutMs: 1_000 });
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        captured.push({ raw, headers: req.headers });
        adapter.verifyNotify(raw, req.headers, Date.now()).then(
          () => adapter.notifyAnswer(true),
          () => adapter.notifyAnswer(false),
        ).then((a) => res.writeHead(a.status, a.headers).end(a.body));
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    notifyUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/notify/unionpay`;
  }, 60_000);

  afterAll(async () => {
    await kit.close();
    receiver.closeAllConnections();
    await new Promise((r) => receiver.close(r));
  });

  afterEach(() => kit.setFaults({ outage: false, latencyMs: 0, errorRate: 0, dropCallbacks: false }));

  const order = (over: Partial<ChannelOrderRequest> = {}): ChannelOrderRequest => ({
    out_trade_no: payId(),
    amount: 1999,
    currency: 'CNY',
    subject: '游戏点卡',
    scene: 'h5',
    client_ip: '203.0.113.9',
    notify_url: notifyUrl,
    expires_at_ms: Date.now() + 15 * 60_000,
    ...over,
  });

  const callbackFor = (outTradeNo: string, kind: 'payment' | 'refund') =>
    waitFor(`${kind} notification of ${outTradeNo}`, async () => {
      for (const c of captured) {
        const n = await adapter.verifyNotify(c.raw, c.headers, Date.now()).catch(() => null);
        if (n && n.kind === kind && n.out_trade_no === outTradeNo) return { n, c };
      }
      return null;
    });

  it('runs the whole flow: QR → pending → paid notification → succeeded → refund → bill', async () => {
    const req = order();
    const before = Math.floor(Date.now() / 1000) * 1000;
    const created = await adapter.createOrder(req);
    expect(created.next_action.type === 'qr_code' && created.next_action.code_url).toMatch(/^https:\/\/qr\.95516\.com\/00010000\/\d+$/);
    // txnTime is the time of the create (our id carries none), handed back in channel_order_id.
    const coid = created.channel_order_id;
    expect(coid).toMatch(new RegExp(`^${toUpOrderId(req.out_trade_no)}@\\d{14}$`));
    const txnTimeMs = txnTimeMsOfChannelOrderId(req.out_trade_no, coid);
    expect(txnTimeMs).toBeGreaterThanOrEqual(before);
    expect(txnTimeMs).toBeLessThanOrEqual(Date.now());
    expect(kit.book.get(req.out_trade_no)?.extra.txnTime).toBe(formatUpTime(txnTimeMs));
    expect(await adapter.queryOrder(req.out_trade_no, coid)).toMatchObject({ out_trade_no: req.out_trade_no, status: 'pending', amount: 1999, currency: 'CNY', channel_trade_no: null });

    const payRes = await fetch(`${kit.url}/__sandbox/pay`, { method: 'POST', body: JSON.stringify({ out_trade_no: req.out_trade_no }) });
    expect(payRes.status).toBe(200);
    const { n: paid } = await callbackFor(req.out_trade_no, 'payment');
    expect(paid).toMatchObject({ kind: 'payment', status: 'succeeded', amount: 1999, currency: 'CNY' });
    expect(kit.book.callbacks.some((c) => c.delivered && c.status === 200)).toBe(true);

    const done = await adapter.queryOrder(req.out_trade_no, coid);
    expect(done).toMatchObject({ status: 'succeeded', amount: 1999 });
    expect(done.channel_trade_no).toMatch(/^\d{21}$/);
    expect(paid.kind === 'payment' && paid.channel_trade_no).toBe(done.channel_trade_no);

    await expect(adapter.closeOrder(req.out_trade_no, coid)).rejects.toMatchObject({ code: 'order_paid' });

    // This process created the order, so the refund finds its txnTime without channel_order_id.
    const refundNo = refundId();
    const refund = await adapter.refund({ out_trade_no: req.out_trade_no, out_refund_no: refundNo, amount: 500, total_amount: 1999, currency: 'CNY', notify_url: notifyUrl });
    expect(refund).toMatchObject({ out_refund_no: refundNo, status: 'pending', amount: 500 });
    const { n: refunded, c: refundCallback } = await callbackFor(req.out_trade_no, 'refund');
    expect(refunded).toMatchObject({ kind: 'refund', out_refund_no: refundNo, status: 'succeeded', amount: 500, currency: 'CNY' });
    // The refund is a transaction of its own: its orderId from our refund id, its txnTime when it was sent.
    const refundFields = new URLSearchParams(refundCallback.raw.toString('utf8'));
    expect(refundFields.get('orderId')).toBe(toUpOrderId(refundNo));
    expect(parseUpTime(refundFields.get('txnTime') ?? '')).toBeGreaterThanOrEqual(txnTimeMs);
    // After a restart the adapter needs the payment's channel_order_id to find the consume.
    const restarted = createUnionPayAdapter(config, { crypto: inlineCrypto, timeoutMs: 1_000 });
    const second = { out_trade_no: req.out_trade_no, out_refund_no: refundId(), amount: 1500, total_amount: 1999, currency: 'CNY', notify_url: notifyUrl };
    await expect(restarted.refund(second)).rejects.toMatchObject({ code: 'rejected', message: 'unionpay needs the channel order id to find an order' });
    // Too much in total: UnionPay refuses (36), nothing changes.
    await expect(restarted.refund({ ...second, channel_order_id: coid })).rejects.toMatchObject({ code: 'rejected', channelCode: '36' });

    const day = formatUpTime(Date.now()).replace(/^(\d{4})(\d\d)(\d\d).*/, '$1-$2-$3');
    const mine = (await adapter.downloadBill(day)).filter((l) => l.out_trade_no === req.out_trade_no);
    expect(mine).toEqual([
      expect.objectContaining({ kind: 'payment', amount: 1999, currency: 'CNY', fee: unionPayFeeOf(1999), out_refund_no: null, channel_trade_no: done.channel_trade_no }),
      expect.objectContaining({ kind: 'refund', amount: 500, fee: 0, out_refund_no: refundNo, channel_trade_no: done.channel_trade_no }),
    ]);
    expect(unionPayFeeOf(1999)).toBe(6); // 5.997 fen rounds half up
  });

  it('sends pc buyers to the gateway form: a redirect whose signed fields the sandbox accepts', async () => {
    const req = order({ scene: 'pc', return_url: 'https://shop.example/back' });
    const created = await adapter.createOrder(req);
    expect(created.next_action.type).toBe('redirect');
    const url = new URL(created.next_action.type === 'redirect' ? created.next_action.url : '');
    expect(url.pathname).toBe('/gateway/api/frontTransReq.do');
    expect(url.searchParams.get('orderId')).toBe(toUpOrderId(req.out_trade_no));
    expect(created.channel_order_id).toBe(`${toUpOrderId(req.out_trade_no)}@${url.searchParams.get('txnTime')}`);
    // UnionPay knows the order once the browser arrives at the cashier.
    await expect(adapter.queryOrder(req.out_trade_no, created.channel_order_id)).rejects.toMatchObject({ code: 'not_found', channelCode: '34' });
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(req.out_trade_no);
    expect((await adapter.queryOrder(req.out_trade_no, created.channel_order_id)).status).toBe('pending');
    // A tampered form is refused with respCode 11.
    url.searchParams.set('txnAmt', '1');
    expect(await (await fetch(url)).text()).toMatch(/respCode=11/);
  });

  it('closes: unpaid is fine (it lapses at payTimeout, after which it cannot be paid and reads not found)', async () => {
    const req = order({ expires_at_ms: Date.now() + 1_500 });
    const { channel_order_id: coid } = await adapter.createOrder(req);
    await adapter.closeOrder(req.out_trade_no, coid);
    const unknown = unknownOrder();
    await adapter.closeOrder(unknown.id, unknown.coid); // unknown: nothing to close
    await waitFor('payTimeout', async () => kit.book.get(req.out_trade_no)?.status === 'closed', 5_000);
    expect((await kit.book.pay(req.out_trade_no)).status).toBe('closed');
    await expect(adapter.queryOrder(req.out_trade_no, coid)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('refuses to query or close without the channel order id, or with one of another order', async () => {
    const req = order();
    const { channel_order_id: coid } = await adapter.createOrder(req);
    const needed = { code: 'rejected', message: 'unionpay needs the channel order id to find an order' };
    await expect(adapter.queryOrder(req.out_trade_no)).rejects.toMatchObject(needed);
    await expect(adapter.queryOrder(req.out_trade_no, null)).rejects.toMatchObject(needed);
    await expect(adapter.closeOrder(req.out_trade_no)).rejects.toMatchObject(needed);
    await expect(adapter.queryOrder(payId(), coid)).rejects.toMatchObject({ code: 'rejected', message: expect.stringMatching(/another order/) });
    // The right pair finds it: txnTime is what createOrder sent.
    expect((await adapter.queryOrder(req.out_trade_no, coid)).status).toBe('pending');
  });

  it('a retried createOrder in this process resends the same orderId + txnTime: one UnionPay transaction', async () => {
    const req = order();
    // The first attempt reaches UnionPay but its answer comes after our timeout.
    kit.setFaults({ latencyMs: 1_500 });
    await expect(adapter.createOrder(req)).rejects.toMatchObject({ code: 'timeout' });
    const opened = await waitFor('the first attempt at the sandbox', async () => kit.book.get(req.out_trade_no) ?? null, 5_000);
    const firstTxnTime = String(opened.extra.txnTime);
    kit.setFaults({ latencyMs: 0 });
    // The retry, at least 1.5 s later, names the same transaction, which UnionPay answers as the same order.
    const retried = await adapter.createOrder(req);
    expect(retried.channel_order_id).toBe(`${toUpOrderId(req.out_trade_no)}@${firstTxnTime}`);
    expect(retried.next_action).toEqual({ type: 'qr_code', code_url: opened.extra.qrCode });
    expect(kit.book.get(req.out_trade_no)?.extra.txnTime).toBe(firstTxnTime);
    expect((await adapter.queryOrder(req.out_trade_no, retried.channel_order_id)).status).toBe('pending');
    // After a restart the memory is gone: a new txnTime, which UnionPay refuses as a duplicate orderId (12) on the same day.
    const restarted = createUnionPayAdapter(config, { crypto: inlineCrypto, timeoutMs: 1_000 });
    await expect(restarted.createOrder(req)).rejects.toMatchObject({ code: 'rejected', channelCode: '12' });
  });

  it('reports what the buyer actually paid when it differs (the engine cross-checks)', async () => {
    const req = order();
    await adapter.createOrder(req);
    await kit.book.pay(req.out_trade_no, 1);
    expect((await callbackFor(req.out_trade_no, 'payment')).n).toMatchObject({ status: 'succeeded', amount: 1 });
  });

  it('maps outage, system busy and latency to unavailable / timeout', async () => {
    const unknown = unknownOrder();
    kit.setFaults({ outage: true });
    await expect(adapter.queryOrder(unknown.id, unknown.coid)).rejects.toMatchObject({ code: 'unavailable', retryable: true });
    kit.setFaults({ outage: false, errorRate: 1 });
    await expect(adapter.createOrder(order())).rejects.toMatchObject({ code: 'unavailable', channelCode: '06' });
    kit.setFaults({ errorRate: 0, latencyMs: 1_500 });
    await expect(adapter.queryOrder(unknown.id, unknown.coid)).rejects.toMatchObject({ code: 'timeout' });
  });

  it('the sandbox refuses requests signed with another key or naming another certId (respCode 11)', async () => {
    const other = mintUnionPaySandboxPki();
    const forger = createUnionPayAdapter({ ...config, merchantPrivateKeyPem: other.merchantKeyPem }, { crypto: inlineCrypto });
    await expect(forger.createOrder(order())).rejects.toMatchObject({ code: 'rejected', channelCode: '11' });
    const wrongCert = createUnionPayAdapter({ ...config, certId: other.merchantCertId }, { crypto: inlineCrypto });
    const unknown = unknownOrder();
    await expect(wrongCert.queryOrder(unknown.id, unknown.coid)).rejects.toMatchObject({ code: 'rejected', channelCode: '11' });
  });

  it('refuses answers whose signing certificate does not chain to the configured UnionPay root', async () => {
    const other = mintUnionPaySandboxPki();
    const distrustful = createUnionPayAdapter({ ...config, rootCertPem: other.rootPem, middleCertPem: other.middlePem }, { crypto: inlineCrypto });
    await expect(distrustful.createOrder(order())).rejects.toMatchObject({ code: 'bad_response' });
  });

  describe('independent counterparty: node:crypto per the published 5.1.0 rule', () => {
    it('the notifications our sandbox sends verify: signPubKeyCert chains to the root, signature over sha256hex(sorted fields)', async () => {
      const req = order();
      await adapter.createOrder(req);
      await kit.book.pay(req.out_trade_no);
      const { c } = await callbackFor(req.out_trade_no, 'payment');
      const p = Object.fromEntries(new URLSearchParams(c.raw.toString('utf8')));
      expect(p).toMatchObject({ version: '5.1.0', signMethod: '01', txnType: '01', respCode: '00', merId: config.merId, orderId: toUpOrderId(req.out_trade_no), txnAmt: '1999', currencyCode: '156' });
      const cert = new X509Certificate(p.signPubKeyCert!);
      const middle = new X509Certificate(config.middleCertPem);
      const root = new X509Certificate(config.rootCertPem);
      expect(cert.checkIssued(middle) && cert.verify(middle.publicKey) && middle.verify(root.publicKey)).toBe(true);
      expect(cert.subject).toMatch(/CN=041@.*@00040000:SIGN@/);
      expect(specVerify(p, p.signPubKeyCert!)).toBe(true);
      expect(specVerify({ ...p, txnAmt: '1' }, p.signPubKeyCert!)).toBe(false);
    });

    it('a request signed here per the spec is accepted by the sandbox, and its signed answer verifies here', async () => {
      const req = order();
      const { channel_order_id: coid } = await adapter.createOrder(req);
      const params = specSign(
        {
          version: '5.1.0', encoding: 'UTF-8', signMethod: '01', certId: config.certId, txnType: '00', txnSubType: '00', bizType: '000000', accessType: '0',
          merId: config.merId, orderId: toUpOrderId(req.out_trade_no), txnTime: formatUpTime(txnTimeMsOfChannelOrderId(req.out_trade_no, coid)),
        },
        config.merchantPrivateKeyPem,
      );
      const res = await fetch(`${kit.url}/gateway/api/queryTrans.do`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params).toString() });
      const text = await res.text();
      // Answers are raw k=v (values not URL-encoded): split at the first '=' of each '&' part.
      const a = Object.fromEntries(text.split('&').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      expect(a).toMatchObject({ respCode: '00', origRespCode: '05', txnAmt: '1999' });
      expect(specVerify(a, a.signPubKeyCert!)).toBe(true);
    });

    it('a notification signed here per the spec (with the sandbox certificate) is accepted by the adapter; one byte off is not', async () => {
      const pki = mintUnionPaySandboxPki();
      const verifier = createUnionPayAdapter({ ...config, rootCertPem: pki.rootPem, middleCertPem: pki.middlePem }, { crypto: inlineCrypto });
      const id = payId();
      const p = specSign(
        {
          version: '5.1.0', encoding: 'UTF-8', signMethod: '01', txnType: '01', txnSubType: '07', bizType: '000000', accessType: '0', merId: config.merId,
          orderId: toUpOrderId(id), txnTime: formatUpTime(Date.now()), txnAmt: '880', currencyCode: '156', queryId: '781811281200019999999',
          respCode: '00', respMsg: 'Success!', traceTime: formatUpTime(Date.now()).slice(4), signPubKeyCert: pki.signCertPem,
        },
        pki.signKeyPem,
      );
      const body = Buffer.from(new URLSearchParams(p).toString());
      await expect(verifier.verifyNotify(body, {}, Date.now())).resolves.toMatchObject({ kind: 'payment', out_trade_no: id, status: 'succeeded', amount: 880, channel_trade_no: '781811281200019999999' });
      const tampered = Buffer.from(body.toString().replace('txnAmt=880', 'txnAmt=980'));
      await expect(verifier.verifyNotify(tampered, {}, Date.now())).rejects.toMatchObject({ reason: 'invalid_signature' });
    });
  });
});
