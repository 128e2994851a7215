// WeChat Pay adapter against its sandbox over real HTTP, and both against an independent
// counterparty: wechatpay-axios-plugin (TheNorthMemory's maintained APIv3 SDK) verifies what the
// sandbox signs and encrypts, builds callbacks our adapter must accept, and calls the sandbox with
// its own request signing.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Aes, Formatter, Rsa, Wechatpay } from 'wechatpay-axios-plugin';
import { inlineCrypto } from '../../engine/channels/crypto.ts';
import type { SandboxKit } from '../../engine/channels/sandbox-kit.ts';
import { ChannelError, type ChannelAdapter, type ChannelOrderRequest } from '../../engine/channels/types.ts';
import { createWechatPayAdapter, shanghaiRfc3339, startWechatPaySandbox, wechatPayFeeOf, type WechatPayConfig } from '../../engine/channels/wechat_pay/index.ts';
import { uniqueId, waitFor } from '../helpers.ts';

type Captured = { raw: Buffer; headers: IncomingHttpHeaders };

type Endpoint = {
  get: (cfg?: object) => Promise<{ status: number; data: unknown }>;
  post: (data?: unknown, cfg?: object) => Promise<{ status: number; data: unknown }>;
};
/** The library's chained API (wxpay.v3.pay.transactions.native …), typed loosely for the test. */
const endpoint = (w: Wechatpay, path: string): Endpoint => path.split('.').reduce<unknown>((n, s) => (n as Record<string, unknown>)[s], w) as Endpoint;

const pair = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });

describe('wechat_pay adapter ↔ sandbox', () => {
  let kit: SandboxKit;
  let config: WechatPayConfig;
  let adapter: ChannelAdapter;
  let receiver: Server;
  let notifyUrl: string;
  const captured: Captured[] = [];

  beforeAll(async () => {
    const sb = await startWechatPaySandbox();
    kit = sb.kit;
    config = sb.config;
    adapter = createWechatPayAdapter(config, { crypto: inlineCrypto, timeoutMs: 1_000 });
    // Our callback endpoint: records the raw bytes, answers as the adapter says.
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
    notifyUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/notify/wechat_pay`;
  });

  afterAll(async () => {
    await kit.close();
    receiver.closeAllConnections();
    await new Promise((r) => receiver.close(r));
  });

  afterEach(() => kit.setFaults({ outage: false, latencyMs: 0, errorRate: 0, dropCallbacks: false }));

  const order = (over: Partial<ChannelOrderRequest> = {}): ChannelOrderRequest => ({
    out_trade_no: uniqueId('pay'),
    amount: 1999,
    currency: 'CNY',
    subject: '游戏点卡',
    scene: 'pc',
    client_ip: '203.0.113.9',
    notify_url: notifyUrl,
    expires_at_ms: Date.now() + 15 * 60_000,
    ...over,
  });

  const callbackFor = (outTradeNo: string, kind: 'payment' | 'refund') =>
    waitFor(`${kind} callback of ${outTradeNo}`, async () => {
      for (const c of captured) {
        const n = await adapter.verifyNotify(c.raw, c.headers, Date.now()).catch(() => null);
        if (n && n.kind === kind && n.out_trade_no === outTradeNo) return { n, c };
      }
      return null;
    });

  it('runs the whole flow: create → pending → paid callback → succeeded → refund → bill', async () => {
    const req = order();
    const created = await adapter.createOrder(req);
    expect(created.next_action.type).toBe('qr_code');
    expect(created.next_action.type === 'qr_code' && created.next_action.code_url).toMatch(/^weixin:\/\/wxpay\/bizpayurl\?pr=/);

    const pending = await adapter.queryOrder(req.out_trade_no);
    expect(pending).toMatchObject({ out_trade_no: req.out_trade_no, status: 'pending', amount: 1999, currency: 'CNY', channel_trade_no: null, paid_at_ms: null });

    // The buyer pays through the control API, as an operator or a demo would.
    const payRes = await fetch(`${kit.url}/__sandbox/pay`, { method: 'POST', body: JSON.stringify({ out_trade_no: req.out_trade_no }) });
    expect(payRes.status).toBe(200);
    const { n: paid } = await callbackFor(req.out_trade_no, 'payment');
    expect(paid).toMatchObject({ kind: 'payment', status: 'succeeded', amount: 1999, currency: 'CNY' });
    expect(kit.book.callbacks.some((c) => c.delivered && c.status === 204)).toBe(true);

    const done = await adapter.queryOrder(req.out_trade_no);
    expect(done.status).toBe('succeeded');
    expect(done.channel_trade_no).toBe(paid.kind === 'payment' ? paid.channel_trade_no : 'x');
    expect(done.paid_at_ms).not.toBeNull();

    await expect(adapter.closeOrder(req.out_trade_no)).rejects.toMatchObject({ code: 'order_paid', channelCode: 'ORDERPAID' });

    const refundNo = uniqueId('re');
    const refund = await adapter.refund({ out_trade_no: req.out_trade_no, out_refund_no: refundNo, amount: 500, total_amount: 1999, currency: 'CNY', notify_url: notifyUrl });
    expect(refund).toMatchObject({ out_refund_no: refundNo, status: 'pending', amount: 500 });
    const { n: refunded } = await callbackFor(req.out_trade_no, 'refund');
    expect(refunded).toMatchObject({ kind: 'refund', out_refund_no: refundNo, status: 'succeeded', amount: 500, currency: 'CNY' });
    expect((await adapter.queryOrder(req.out_trade_no)).status).toBe('succeeded'); // trade_state REFUND: the payment stands

    const day = shanghaiRfc3339(Date.now()).slice(0, 10);
    const bill = await adapter.downloadBill(day);
    const mine = bill.filter((l) => l.out_trade_no === req.out_trade_no);
    expect(mine).toEqual([
      expect.objectContaining({ kind: 'payment', amount: 1999, currency: 'CNY', fee: wechatPayFeeOf(1999), out_refund_no: null, channel_trade_no: done.channel_trade_no }),
      expect.objectContaining({ kind: 'refund', amount: 500, fee: 0, out_refund_no: refundNo }),
    ]);
    expect(wechatPayFeeOf(1999)).toBe(12); // 11.994 fen rounds half up
  });

  it('gives an h5_url redirect for the h5 scene, and a Native QR for app and mini_program', async () => {
    const h5 = await adapter.createOrder(order({ scene: 'h5' }));
    expect(h5.next_action.type).toBe('redirect');
    expect(h5.channel_order_id).toMatch(/^wx/);
    const page = await fetch(h5.next_action.type === 'redirect' ? h5.next_action.url : '');
    expect(page.status).toBe(200);
    for (const scene of ['app', 'mini_program'] as const) expect((await adapter.createOrder(order({ scene }))).next_action.type).toBe('qr_code');
  });

  it('closes a pending order (204), after which it reads closed; a retried create answers the same order', async () => {
    const req = order();
    const a = await adapter.createOrder(req);
    const b = await adapter.createOrder(req);
    expect(b).toEqual(a);
    await adapter.closeOrder(req.out_trade_no);
    expect((await adapter.queryOrder(req.out_trade_no)).status).toBe('closed');
    await adapter.closeOrder(uniqueId('pay')); // unknown: nothing to close
    await expect(adapter.queryOrder(uniqueId('pay'))).rejects.toMatchObject({ code: 'not_found', channelCode: 'ORDER_NOT_EXIST' });
  });

  it('reports what the buyer actually paid when it differs (the engine cross-checks)', async () => {
    const req = order();
    await adapter.createOrder(req);
    await kit.book.pay(req.out_trade_no, 1);
    const { n } = await callbackFor(req.out_trade_no, 'payment');
    expect(n).toMatchObject({ status: 'succeeded', amount: 1 });
  });

  it('maps outage, system errors and latency to unavailable / timeout', async () => {
    kit.setFaults({ outage: true });
    await expect(adapter.queryOrder(uniqueId('pay'))).rejects.toMatchObject({ code: 'unavailable', retryable: true });
    kit.setFaults({ outage: false, errorRate: 1 });
    await expect(adapter.createOrder(order())).rejects.toMatchObject({ code: 'unavailable', channelCode: 'SYSTEM_ERROR' });
    kit.setFaults({ errorRate: 0, latencyMs: 1_500 });
    await expect(adapter.queryOrder(uniqueId('pay'))).rejects.toMatchObject({ code: 'timeout' });
  });

  it('the sandbox refuses a request signed with another key (401 SIGN_ERROR) or not signed at all', async () => {
    const forger = createWechatPayAdapter({ ...config, merchantPrivateKeyPem: pair().privateKey }, { crypto: inlineCrypto });
    const e = await forger.createOrder(order()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ChannelError);
    expect(e).toMatchObject({ code: 'rejected', channelCode: 'SIGN_ERROR' });
    const bare = await fetch(`${kit.url}/v3/pay/transactions/out-trade-no/pay_123456?mchid=${config.mchid}`);
    expect(bare.status).toBe(401);
  });

  it('refuses an answer not signed by the configured platform key', async () => {
    const wrong = createWechatPayAdapter({ ...config, platformPublicKeys: { [Object.keys(config.platformPublicKeys)[0]!]: pair().publicKey } }, { crypto: inlineCrypto });
    await expect(wrong.createOrder(order())).rejects.toMatchObject({ code: 'bad_response' });
  });

  describe('independent counterparty: wechatpay-axios-plugin', () => {
    const serial = () => Object.keys(config.platformPublicKeys)[0]!;

    it('verifies and decrypts the callbacks our sandbox sends', async () => {
      const req = order();
      await adapter.createOrder(req);
      await kit.book.pay(req.out_trade_no);
      const { c } = await callbackFor(req.out_trade_no, 'payment');
      const h = c.headers as Record<string, string>;
      const body = c.raw.toString('utf8');
      expect(h['wechatpay-serial']).toBe(serial());
      expect(Rsa.verify(Formatter.response(h['wechatpay-timestamp']!, h['wechatpay-nonce']!, body), h['wechatpay-signature']!, config.platformPublicKeys[serial()]!)).toBe(true);
      const { resource } = JSON.parse(body) as { resource: { ciphertext: string; nonce: string; associated_data: string } };
      const plain = JSON.parse(Aes.AesGcm.decrypt(resource.ciphertext, config.apiV3Key, resource.nonce, resource.associated_data)) as Record<string, unknown>;
      expect(plain).toMatchObject({ out_trade_no: req.out_trade_no, trade_state: 'SUCCESS', mchid: config.mchid, appid: config.appid, amount: { total: 1999, currency: 'CNY' } });
    });

    it('builds callbacks (Rsa.sign + AesGcm.encrypt) that our adapter accepts, and rejects them once tampered', async () => {
      const platform = pair();
      const libSerial = 'PUB_KEY_ID_0114232134912410000000000000000001';
      const verifier = createWechatPayAdapter({ ...config, platformPublicKeys: { [libSerial]: platform.publicKey } }, { crypto: inlineCrypto });
      const resource = {
        mchid: config.mchid, appid: config.appid, out_trade_no: 'pay_LIBRARY01', transaction_id: '4200000000202611280000000001', trade_type: 'NATIVE',
        trade_state: 'SUCCESS', trade_state_desc: '支付成功', bank_type: 'OTHERS', attach: '', success_time: shanghaiRfc3339(Date.now()),
        payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' }, amount: { total: 100, payer_total: 100, currency: 'CNY', payer_currency: 'CNY' },
      };
      const nonce = Formatter.nonce(12);
      const body = JSON.stringify({
        id: 'EV-2018022511223320873', create_time: shanghaiRfc3339(Date.now()), resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: '支付成功',
        resource: { original_type: 'transaction', algorithm: 'AEAD_AES_256_GCM', ciphertext: Aes.AesGcm.encrypt(JSON.stringify(resource), config.apiV3Key, nonce, 'transaction'), associated_data: 'transaction', nonce },
      });
      const ts = String(Formatter.timestamp());
      const tsNonce = Formatter.nonce();
      const headers = { 'wechatpay-timestamp': ts, 'wechatpay-nonce': tsNonce, 'wechatpay-serial': libSerial, 'wechatpay-signature': Rsa.sign(Formatter.response(ts, tsNonce, body), platform.privateKey) };
      await expect(verifier.verifyNotify(Buffer.from(body), headers, Date.now())).resolves.toMatchObject({ kind: 'payment', out_trade_no: 'pay_LIBRARY01', status: 'succeeded', amount: 100, channel_trade_no: '4200000000202611280000000001' });
      await expect(verifier.verifyNotify(Buffer.from(body.replace('EV-2018022511223320873', 'EV-2018022511223320874')), headers, Date.now())).rejects.toMatchObject({ reason: 'invalid_signature' });
    });

    it('its client calls our sandbox: our sandbox accepts its request signatures, it accepts our answer signatures', async () => {
      const merchantKey = config.merchantPrivateKeyPem;
      const wxpay = new Wechatpay({ mchid: config.mchid, serial: config.merchantSerialNo, privateKey: merchantKey, certs: { [serial()]: config.platformPublicKeys[serial()]! }, baseURL: `${kit.url}/` });
      const outTradeNo = uniqueId('pay');
      const res = await endpoint(wxpay, 'v3.pay.transactions.native').post({
        appid: config.appid, mchid: config.mchid, description: 'library order', out_trade_no: outTradeNo, notify_url: notifyUrl, amount: { total: 1, currency: 'CNY' },
      });
      expect(res.status).toBe(200);
      expect((res.data as { code_url: string }).code_url).toMatch(/^weixin:\/\//);
      const q = await endpoint(wxpay, 'v3.pay.transactions.outTradeNo.$out_trade_no$').get({ params: { mchid: config.mchid }, out_trade_no: outTradeNo });
      expect((q.data as { trade_state: string }).trade_state).toBe('NOTPAY');
      // And what it created, our adapter reads the same way.
      expect(await adapter.queryOrder(outTradeNo)).toMatchObject({ status: 'pending', amount: 1 });
    });

    it('parses the bill our sandbox serves with its own bill reader (Formatter.castCsvBill)', async () => {
      const req = order({ amount: 4321 });
      await adapter.createOrder(req);
      await kit.book.pay(req.out_trade_no);
      await callbackFor(req.out_trade_no, 'payment');
      const day = shanghaiRfc3339(Date.now()).slice(0, 10);
      const wxpay = new Wechatpay({ mchid: config.mchid, serial: config.merchantSerialNo, privateKey: config.merchantPrivateKeyPem, certs: { [serial()]: config.platformPublicKeys[serial()]! }, baseURL: `${kit.url}/` });
      const meta = await endpoint(wxpay, 'v3.bill.tradebill').get({ params: { bill_date: day, bill_type: 'ALL' } });
      const file = await fetch((meta.data as { download_url: string }).download_url, { headers: { authorization: 'unused' } });
      expect(file.status).toBe(401); // the download is a signed request like any other
      const raw = Buffer.from(await (await adapterSignedGet((meta.data as { download_url: string }).download_url)).arrayBuffer());
      const { rows, summary } = Formatter.castCsvBill(raw) as { rows: Array<Record<string, string>>; summary: Record<string, string> };
      const row = rows.find((r) => r['商户订单号'] === req.out_trade_no);
      expect(row).toMatchObject({ 交易状态: 'SUCCESS', 订单金额: '43.21', 货币种类: 'CNY', 手续费: '0.26000' });
      expect(Number(summary['总交易单数'])).toBe(rows.length);
    });

    async function adapterSignedGet(url: string): Promise<Response> {
      // Through the library's signer: its client builds the Authorization for the download URL.
      const wxpay = new Wechatpay({ mchid: config.mchid, serial: config.merchantSerialNo, privateKey: config.merchantPrivateKeyPem, certs: { [serial()]: config.platformPublicKeys[serial()]! }, baseURL: `${kit.url}/` });
      const u = new URL(url);
      const r = await endpoint(wxpay, 'v3.billdownload.file').get({ params: Object.fromEntries(u.searchParams), responseType: 'arraybuffer' });
      return new Response(r.data as ArrayBuffer, { status: r.status });
    }
  });
});
