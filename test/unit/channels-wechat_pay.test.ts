// WeChat Pay API v3: pure mapping (every status, amounts, times, the bill) and callback
// verification over the raw bytes (signature, window, headers, decryption), with keys made here.
import { createSign, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { inlineCrypto } from '../../engine/channels/crypto.ts';
import { ChannelError, NOTIFY_WINDOW_MS, type ChannelOrderRequest, type RawHeaders } from '../../engine/channels/types.ts';
import {
  aesGcmDecrypt,
  aesGcmEncrypt,
  authorizationHeader,
  fenToYuan,
  fromWxAmount,
  parseAuthorization,
  parseTradeBill,
  responseMessage,
  shanghaiRfc3339,
  toH5Request,
  toNativeRequest,
  toWxAmount,
  verifyWechatPayNotify,
  wechatPayNotifyAnswer,
  wxRefundStatusToStatus,
  wxTradeStateToStatus,
  yuanToFen,
  WX_REFUND_STATUSES,
  WX_TRADE_STATES,
  type WxNotifyKeys,
} from '../../engine/channels/wechat_pay/index.ts';

const pair = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });

const baseReq: ChannelOrderRequest = {
  out_trade_no: 'pay_01JABCDEF0123456789XYZ',
  amount: 1999,
  currency: 'CNY',
  subject: '游戏点卡 100 元',
  scene: 'pc',
  client_ip: '203.0.113.9',
  notify_url: 'https://pay.example/v1/notify/wechat_pay',
  expires_at_ms: Date.UTC(2026, 10, 28, 4, 30, 15, 999),
};
const ids = { appid: 'wx0123456789abcdef', mchid: '1900000109' };

describe('wechat_pay transformers', () => {
  it('maps every trade_state exhaustively', () => {
    const expected = { SUCCESS: 'succeeded', REFUND: 'succeeded', NOTPAY: 'pending', USERPAYING: 'pending', CLOSED: 'closed', REVOKED: 'closed', PAYERROR: 'failed' } as const;
    expect(Object.keys(expected).sort()).toEqual([...WX_TRADE_STATES].sort());
    for (const s of WX_TRADE_STATES) expect(wxTradeStateToStatus(s)).toBe(expected[s]);
  });

  it('maps every refund status exhaustively', () => {
    const expected = { SUCCESS: 'succeeded', PROCESSING: 'pending', CLOSED: 'failed', ABNORMAL: 'failed' } as const;
    expect(Object.keys(expected).sort()).toEqual([...WX_REFUND_STATUSES].sort());
    for (const s of WX_REFUND_STATUSES) expect(wxRefundStatusToStatus(s)).toBe(expected[s]);
  });

  it('maps our order to the Native request in WeChat field names', () => {
    expect(toNativeRequest(baseReq, ids)).toEqual({
      appid: ids.appid,
      mchid: ids.mchid,
      description: '游戏点卡 100 元',
      out_trade_no: baseReq.out_trade_no,
      time_expire: '2026-11-28T12:30:15+08:00',
      notify_url: baseReq.notify_url,
      amount: { total: 1999, currency: 'CNY' },
      scene_info: { payer_client_ip: '203.0.113.9' },
    });
  });

  it('maps h5 with scene_info.h5_info and cuts the description at 127 bytes of UTF-8', () => {
    const r = toH5Request({ ...baseReq, scene: 'h5', subject: '点'.repeat(60) }, ids);
    expect(r.scene_info).toEqual({ payer_client_ip: '203.0.113.9', h5_info: { type: 'Wap' } });
    expect(Buffer.byteLength(r.description)).toBe(126); // 42 three-byte characters; a 43rd would make 129
  });

  it.each([
    ['a float amount', { amount: 19.99 }],
    ['a zero amount', { amount: 0 }],
    ['a negative amount', { amount: -1 }],
    ['another currency', { currency: 'USD' }],
    ['an out_trade_no WeChat refuses', { out_trade_no: 'pay.1234567' }],
    ['a too long out_trade_no', { out_trade_no: 'p'.repeat(33) }],
  ])('refuses %s', (_name, patch) => {
    expect(() => toNativeRequest({ ...baseReq, ...patch }, ids)).toThrow(ChannelError);
  });

  it('round-trips integer fen through amount{total,currency} and through yuan strings (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000_000_000 }), (fen) => {
        expect(fromWxAmount(toWxAmount(fen, 'CNY'))).toEqual({ amount: fen, currency: 'CNY' });
        expect(yuanToFen(fenToYuan(fen))).toBe(fen);
        expect(yuanToFen(fenToYuan(-fen, 5), 'half_up')).toBe(-fen);
      }),
    );
  });

  it('refuses non-integer minor units (property)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.001, max: 1e9, noNaN: true }).filter((x) => !Number.isInteger(x)), (x) => {
        expect(() => toWxAmount(x, 'CNY')).toThrow(ChannelError);
        expect(() => fromWxAmount({ total: x, currency: 'CNY' })).toThrow(ChannelError);
      }),
    );
  });

  it('converts yuan strings exactly, rounds fees half up', () => {
    expect(yuanToFen('19.99')).toBe(1999);
    expect(yuanToFen('0.1')).toBe(10);
    expect(yuanToFen('7')).toBe(700);
    expect(() => yuanToFen('0.001')).toThrow(ChannelError);
    expect(() => yuanToFen('1e3')).toThrow(ChannelError);
    expect(yuanToFen('0.00500', 'half_up')).toBe(1);
    expect(yuanToFen('0.00499', 'half_up')).toBe(0);
    expect(yuanToFen('-0.01200', 'half_up')).toBe(-1);
  });

  it('writes time_expire in +08:00 to the second', () => {
    expect(shanghaiRfc3339(Date.UTC(2026, 0, 31, 16, 0, 0, 500))).toBe('2026-02-01T00:00:00+08:00');
  });

  it('parses the backtick trade bill into payment and refund lines', () => {
    const head = '交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注';
    const pay = '`2026-11-28 12:00:01,`wx1,`1900000109,`0,`,`4200001,`pay_a,`oX,`NATIVE,`SUCCESS,`OTHERS,`CNY,`19.99,`0.00,`0,`0,`0.00,`0.00,`,`,`卡,`,`0.12000,`0.60%,`19.99,`0.00,`';
    const ref = '`2026-11-28 13:00:00,`wx1,`1900000109,`0,`,`4200001,`pay_a,`oX,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`5000001,`re_a,`5.00,`0.00,`ORIGINAL,`SUCCESS,`卡,`,`-0.03000,`0.60%,`0.00,`5.00,`';
    const text = `\uFEFF${head}\r\n${pay}\r\n${ref}\r\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n\`2,\`19.99,\`5.00,\`0.00,\`0.09000,\`19.99,\`5.00\r\n`;
    expect(parseTradeBill(text)).toEqual([
      { out_trade_no: 'pay_a', channel_trade_no: '4200001', kind: 'payment', out_refund_no: null, amount: 1999, currency: 'CNY', fee: 12, at_ms: Date.UTC(2026, 10, 28, 4, 0, 1) },
      { out_trade_no: 'pay_a', channel_trade_no: '4200001', kind: 'refund', out_refund_no: 're_a', amount: 500, currency: 'CNY', fee: -3, at_ms: Date.UTC(2026, 10, 28, 5, 0, 0) },
    ]);
  });

  it('writes and parses the Authorization header in any order of its pairs', () => {
    const a = { mchid: '1900000109', nonce_str: 'N0NCE', signature: 'c2lnbmF0dXJl+/=', timestamp: '1764300000', serial_no: 'ABC' };
    expect(parseAuthorization(authorizationHeader(a))).toEqual(a);
    expect(parseAuthorization('WECHATPAY2-SHA256-RSA2048 serial_no="ABC",timestamp="1764300000",nonce_str="N0NCE",signature="c2lnbmF0dXJl+/=",mchid="1900000109"')).toEqual(a);
    expect(parseAuthorization('WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="n",signature="s",timestamp="1",serial_no="x"')).toBeNull();
    expect(parseAuthorization('Bearer x')).toBeNull();
  });
});

describe('wechat_pay callbacks', () => {
  let platform: ReturnType<typeof pair>;
  let other: ReturnType<typeof pair>;
  const serial = 'PUB_KEY_ID_0114232134912410000000000000000000';
  const apiV3Key = 'a'.repeat(16) + 'B'.repeat(16);
  let keys: WxNotifyKeys;
  const now = 1_764_300_000_000;

  beforeAll(() => {
    platform = pair();
    other = pair();
    keys = { ...ids, apiV3Key, platformPublicKeys: { [serial]: platform.publicKey } };
  });

  const transaction = (over: Record<string, unknown> = {}) => ({
    appid: ids.appid, mchid: ids.mchid, out_trade_no: 'pay_01JABC', transaction_id: '4200000001', trade_type: 'NATIVE', trade_state: 'SUCCESS',
    trade_state_desc: '支付成功', bank_type: 'OTHERS', attach: '', success_time: '2026-11-28T12:00:00+08:00', payer: { openid: 'oX' },
    amount: { total: 1999, payer_total: 1999, currency: 'CNY', payer_currency: 'CNY' }, ...over,
  });

  function envelope(resource: unknown, opts: { event?: string; type?: 'transaction' | 'refund'; key?: string } = {}): string {
    const type = opts.type ?? 'transaction';
    const nonce = 'abcdefABCDEF';
    return JSON.stringify({
      id: 'EV-2026112812000001', create_time: '2026-11-28T12:00:01+08:00', resource_type: 'encrypt-resource',
      event_type: opts.event ?? (type === 'refund' ? 'REFUND.SUCCESS' : 'TRANSACTION.SUCCESS'), summary: '支付成功',
      resource: { original_type: type, algorithm: 'AEAD_AES_256_GCM', ciphertext: aesGcmEncrypt(JSON.stringify(resource), opts.key ?? apiV3Key, nonce, type), associated_data: type, nonce },
    });
  }

  function signedHeaders(body: string, opts: { ts?: number; key?: string; serial?: string; signature?: string } = {}): RawHeaders {
    const timestamp = String(Math.floor((opts.ts ?? now) / 1000));
    const nonce = 'n0nceN0NCEn0nceN0NCEn0nceN0NCE12';
    const signature = opts.signature ?? createSign('RSA-SHA256').update(responseMessage(timestamp, nonce, body)).sign(opts.key ?? platform.privateKey, 'base64');
    return { 'wechatpay-timestamp': timestamp, 'wechatpay-nonce': nonce, 'wechatpay-signature': signature, 'wechatpay-serial': opts.serial ?? serial };
  }

  const verify = (body: string | Buffer, headers: RawHeaders, at = now) => verifyWechatPayNotify(Buffer.isBuffer(body) ? body : Buffer.from(body), headers, at, keys, inlineCrypto);
  const reason = async (p: Promise<unknown>) => p.then(() => 'accepted', (e: { reason?: string }) => e.reason ?? String(e));

  it('accepts a valid payment callback and maps it', async () => {
    const body = envelope(transaction());
    await expect(verify(body, signedHeaders(body))).resolves.toEqual({
      kind: 'payment', notification_id: 'EV-2026112812000001', out_trade_no: 'pay_01JABC', status: 'succeeded', amount: 1999, currency: 'CNY',
      channel_trade_no: '4200000001', paid_at_ms: Date.UTC(2026, 10, 28, 4, 0, 0),
    });
  });

  it('accepts a valid refund callback and maps it', async () => {
    const body = envelope(
      { mchid: ids.mchid, out_trade_no: 'pay_01JABC', transaction_id: '4200000001', out_refund_no: 're_01JABC', refund_id: '50000001', refund_status: 'SUCCESS', user_received_account: '支付用户零钱', amount: { total: 1999, refund: 500, payer_total: 1999, payer_refund: 500 } },
      { type: 'refund' },
    );
    await expect(verify(body, signedHeaders(body))).resolves.toEqual({
      kind: 'refund', notification_id: 'EV-2026112812000001', out_trade_no: 'pay_01JABC', out_refund_no: 're_01JABC', status: 'succeeded', amount: 500, currency: 'CNY',
    });
  });

  it('rejects every single-byte tamper of the body', async () => {
    const body = Buffer.from(envelope(transaction()));
    const headers = signedHeaders(body.toString());
    for (const at of [0, 10, Math.floor(body.length / 2), body.length - 2]) {
      const t = Buffer.from(body);
      t[at] = t[at]! ^ 0x01;
      expect(await reason(verify(t, headers))).toBe('invalid_signature');
    }
  });

  it('rejects a signature by another key, an unknown serial and a WeChat signature probe', async () => {
    const body = envelope(transaction());
    expect(await reason(verify(body, signedHeaders(body, { key: other.privateKey })))).toBe('invalid_signature');
    expect(await reason(verify(body, signedHeaders(body, { serial: 'PUB_KEY_ID_unknown' })))).toBe('invalid_signature');
    expect(await reason(verify(body, signedHeaders(body, { signature: 'WECHATPAY/SIGNTEST/abc' })))).toBe('invalid_signature');
  });

  it('rejects callbacks outside the timestamp window, either side', async () => {
    const body = envelope(transaction());
    expect(await reason(verify(body, signedHeaders(body, { ts: now - NOTIFY_WINDOW_MS - 1000 })))).toBe('timestamp_out_of_window');
    expect(await reason(verify(body, signedHeaders(body, { ts: now + NOTIFY_WINDOW_MS + 1000 })))).toBe('timestamp_out_of_window');
    expect(await reason(verify(body, signedHeaders(body, { ts: now - NOTIFY_WINDOW_MS + 1000 })))).toBe('accepted');
  });

  it.each(['wechatpay-timestamp', 'wechatpay-nonce', 'wechatpay-signature', 'wechatpay-serial'])('rejects a callback without %s', async (name) => {
    const body = envelope(transaction());
    const headers = signedHeaders(body);
    delete headers[name];
    expect(await reason(verify(body, headers))).toBe('invalid_signature');
  });

  it('rejects re-serialised JSON (same content, other bytes)', async () => {
    const body = envelope(transaction());
    const headers = signedHeaders(body);
    expect(await reason(verify(JSON.stringify(JSON.parse(body), null, 1), headers))).toBe('invalid_signature');
  });

  it('rejects a signed resource not encrypted with our APIv3 key', async () => {
    const body = envelope(transaction(), { key: 'Z'.repeat(32) });
    expect(await reason(verify(body, signedHeaders(body)))).toBe('invalid_signature');
  });

  it('rejects signed but unusable callbacks: unknown event, other merchant, non-JSON, float amount', async () => {
    const cases: Array<[string, string]> = [
      [envelope(transaction(), { event: 'TRANSACTION.CLOSED' }), 'unsupported_event'],
      [envelope(transaction({ mchid: '1900000999' })), 'malformed'],
      [envelope(transaction({ amount: { total: 19.99, currency: 'CNY' } })), 'malformed'],
      [envelope(transaction({ trade_state: 'PAID' })), 'malformed'],
      ['not json', 'malformed'],
    ];
    for (const [body, want] of cases) expect(await reason(verify(body, signedHeaders(body)))).toBe(want);
  });

  it('decrypts what it encrypts and refuses any other AAD', () => {
    const c = aesGcmEncrypt('{"a":1}', apiV3Key, 'abcdefABCDEF', 'transaction');
    expect(aesGcmDecrypt(c, apiV3Key, 'abcdefABCDEF', 'transaction')).toBe('{"a":1}');
    expect(() => aesGcmDecrypt(c, apiV3Key, 'abcdefABCDEF', 'refund')).toThrow();
  });

  it('answers 204 on success and 4xx {"code":"FAIL"} on failure', () => {
    expect(wechatPayNotifyAnswer(true)).toEqual({ status: 204, headers: {}, body: '' });
    const no = wechatPayNotifyAnswer(false);
    expect(no.status).toBeGreaterThanOrEqual(400);
    expect(JSON.parse(no.body)).toMatchObject({ code: 'FAIL' });
  });
});
