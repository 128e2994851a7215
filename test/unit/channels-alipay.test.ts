// Alipay's pure parts: amounts, times, the RSA2 signing string, raw response nodes, statuses, the
// bill CSV, and notification verification (ours against alipay-sdk's signer and verifier).
import { generateKeyPairSync } from 'node:crypto';
import { crc32, deflateRawSync } from 'node:zlib';
import { AlipaySdk } from 'alipay-sdk';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { inlineCrypto } from '../../engine/channels/crypto.ts';
import { isChannelError, isChannelNotifyError, NOTIFY_WINDOW_MS } from '../../engine/channels/types.ts';
import { normalizePrivateKey, normalizePublicKey } from '../../engine/channels/alipay/adapter.ts';
import { alipayNotifyAnswer, verifyAlipayNotify } from '../../engine/channels/alipay/notify.ts';
import {
  ALIPAY_AMOUNT_FEN_MAX,
  billCsvText,
  fenToYuan,
  fromShanghaiTime,
  mapTradeStatus,
  NOTIFY_SIGN_EXCLUDED,
  parseTradeBill,
  signContent,
  toCreateBiz,
  toShanghaiTime,
  topLevelRawValues,
  yuanToFen,
} from '../../engine/channels/alipay/transformers.ts';
import { ALIPAY_BILL_COLUMNS, ALIPAY_TRADE_STATUSES } from '../../engine/channels/alipay/wire.ts';

const keyPair = () => {
  const k = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { priv: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, pub: k.publicKey.export({ type: 'spki', format: 'pem' }) as string };
};
const alipayKeys = keyPair();
const strangerKeys = keyPair();
const APP_ID = '2021000000000042';
const keys = { appId: APP_ID, alipayPublicKeyPem: alipayKeys.pub, windowMs: NOTIFY_WINDOW_MS };
const FORM = { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' };

describe('alipay amounts', () => {
  it('fen → yuan string → fen is the identity for every amount Alipay accepts', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: ALIPAY_AMOUNT_FEN_MAX }), (fen) => {
        const yuan = fenToYuan(fen);
        expect(yuan).toMatch(/^(0|[1-9]\d*)\.\d{2}$/);
        expect(yuanToFen(yuan)).toBe(fen);
      }),
    );
    expect(fenToYuan(1999)).toBe('19.99');
    expect(fenToYuan(5)).toBe('0.05');
    expect(fenToYuan(100)).toBe('1.00');
  });

  it('refuses amounts that are not a positive integer of fen', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }).filter((x) => !Number.isInteger(x)), (x) => {
        expect(() => fenToYuan(x)).toThrow(/integer of fen/);
      }),
    );
    for (const bad of [0, -1, ALIPAY_AMOUNT_FEN_MAX + 1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) expect(() => fenToYuan(bad)).toThrow();
    try {
      fenToYuan(1.5);
    } catch (err) {
      expect(isChannelError(err) && err.code).toBe('rejected');
    }
  });

  it('reads yuan strings exactly and refuses anything else', () => {
    expect(yuanToFen('20')).toBe(2000);
    expect(yuanToFen('0.5')).toBe(50);
    expect(yuanToFen('88.88')).toBe(8888);
    for (const bad of ['', '1.999', '-1.00', '+1', '1e3', '01.00', '1.', '.5', ' 1.00', '1,00', 'NaN']) expect(yuanToFen(bad)).toBeNull();
  });
});

describe('alipay times and statuses', () => {
  it('writes and reads Asia/Shanghai times', () => {
    expect(toShanghaiTime(Date.UTC(2024, 10, 10, 16, 0, 5))).toBe('2024-11-11 00:00:05');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_102_444_800 }), (s) => {
        expect(fromShanghaiTime(toShanghaiTime(s * 1000))).toBe(s * 1000);
      }),
    );
    for (const bad of ['2024-02-30 10:00:00', '2024-01-01 25:00:00', '2024-01-01T10:00:00', '2024-1-1 10:00:00']) expect(fromShanghaiTime(bad)).toBeNull();
  });

  it('maps every trade_status', () => {
    const mapped = Object.fromEntries(ALIPAY_TRADE_STATUSES.map((s) => [s, mapTradeStatus(s)]));
    expect(mapped).toEqual({ WAIT_BUYER_PAY: 'pending', TRADE_CLOSED: 'closed', TRADE_SUCCESS: 'succeeded', TRADE_FINISHED: 'succeeded' });
  });

  it('maps our order to biz_content and refuses other currencies', () => {
    const req = { out_trade_no: 'pay_1', amount: 1999, currency: 'CNY', subject: '点卡', scene: 'h5' as const, client_ip: '127.0.0.1', notify_url: 'https://x/n', expires_at_ms: Date.UTC(2024, 0, 1, 2, 0, 0), return_url: 'https://x/r' };
    expect(toCreateBiz(req)).toEqual({ out_trade_no: 'pay_1', total_amount: '19.99', subject: '点卡', time_expire: '2024-01-01 10:00:00', product_code: 'QUICK_WAP_WAY', quit_url: 'https://x/r' });
    expect(toCreateBiz({ ...req, scene: 'pc' })).toEqual({ out_trade_no: 'pay_1', total_amount: '19.99', subject: '点卡', time_expire: '2024-01-01 10:00:00' });
    expect(() => toCreateBiz({ ...req, currency: 'USD' })).toThrow(/CNY/);
  });
});

describe('alipay signing string and response nodes', () => {
  it('sorts by key, leaves out excluded and empty values, does not URL-encode', () => {
    expect(signContent({ b: '2', a: 'x y&z', sign: 's', sign_type: 'RSA2', e: '' }, NOTIFY_SIGN_EXCLUDED)).toBe('a=x y&z&b=2');
    expect(signContent({ b: '2', a: '1', sign: 's', sign_type: 'RSA2' }, ['sign'])).toBe('a=1&b=2&sign_type=RSA2');
  });

  it('gives the raw text of each top-level value, escapes and all', () => {
    const raw = '{"alipay_trade_query_response":{"code":"10000","qr_code":"https:\\/\\/qr.alipay.com\\/x","m":"a}\\"{b"},\n "sign":"abc\\/="}';
    const v = topLevelRawValues(raw);
    expect(v?.get('alipay_trade_query_response')).toBe('{"code":"10000","qr_code":"https:\\/\\/qr.alipay.com\\/x","m":"a}\\"{b"}');
    expect(v?.get('sign')).toBe('"abc\\/="');
    expect(topLevelRawValues('{"a":1,"a":2}')).toBeNull();
    expect(topLevelRawValues('[1]')).toBeNull();
    expect(topLevelRawValues('{"a":')).toBeNull();
    expect(topLevelRawValues('{"a":1.5e3,"b":[{"c":"]"}],"d":null}')).toEqual(new Map([['a', '1.5e3'], ['b', '[{"c":"]"}]'], ['d', 'null']]));
  });
});

/** A notification as Alipay sends it, signed with `priv` by Alipay's rule (sign_type left out). */
async function notifyBody(over: Record<string, string> = {}, priv = alipayKeys.priv, nowMs = Date.now()): Promise<Buffer> {
  const p: Record<string, string> = {
    notify_time: toShanghaiTime(nowMs),
    notify_type: 'trade_status_sync',
    notify_id: 'ac05099524730693a8b330c5ecf72da9786',
    app_id: APP_ID,
    charset: 'utf-8',
    version: '1.0',
    sign_type: 'RSA2',
    trade_no: '2013112011001004330000121536',
    out_trade_no: 'pay_01',
    trade_status: 'TRADE_SUCCESS',
    total_amount: '19.99',
    receipt_amount: '19.99',
    gmt_payment: toShanghaiTime(nowMs - 2000),
    subject: '点卡 & 充值',
    fund_bill_list: '[{"amount":"19.99","fundChannel":"ALIPAYACCOUNT"}]',
    ...over,
  };
  p.sign = await inlineCrypto.rsaSign(priv, signContent(p, NOTIFY_SIGN_EXCLUDED));
  return Buffer.from(new URLSearchParams(p).toString());
}

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isChannelNotifyError(err)) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('alipay notification verification', () => {
  it('accepts a valid payment notification and maps it', async () => {
    const now = Date.now();
    const n = await verifyAlipayNotify(await notifyBody({}, alipayKeys.priv, now), FORM, now, keys, inlineCrypto);
    expect(n).toEqual({
      kind: 'payment',
      notification_id: 'ac05099524730693a8b330c5ecf72da9786',
      out_trade_no: 'pay_01',
      status: 'succeeded',
      amount: 1999,
      currency: 'CNY',
      channel_trade_no: '2013112011001004330000121536',
      paid_at_ms: Math.floor((now - 2000) / 1000) * 1000,
    });
  });

  it('maps a refund notification (out_biz_no, refund_fee)', async () => {
    const n = await verifyAlipayNotify(await notifyBody({ out_biz_no: 'rf_1', refund_fee: '5.00', gmt_refund: '2024-01-01 10:00:00.123' }), FORM, Date.now(), keys, inlineCrypto);
    expect(n).toMatchObject({ kind: 'refund', out_refund_no: 'rf_1', amount: 500, status: 'succeeded', out_trade_no: 'pay_01' });
  });

  it('rejects each byte changed, a wrong key, a stale or future time, missing parts and re-serialisation', async () => {
    const now = Date.now();
    const good = await notifyBody({}, alipayKeys.priv, now);
    expect(await rejection(verifyAlipayNotify(good, FORM, now, keys, inlineCrypto))).toBe('accepted');
    // One byte changed anywhere in the parameters that are signed: never accepted.
    const text = good.toString();
    const signAt = text.indexOf('sign=');
    const positions = fc.sample(fc.integer({ min: 0, max: signAt - 2 }), 40);
    for (const i of positions) {
      const b = Buffer.from(good);
      b[i] = b[i] === 0x31 ? 0x32 : 0x31;
      if (b.equals(good)) continue;
      expect(['invalid_signature', 'malformed', 'timestamp_out_of_window']).toContain(await rejection(verifyAlipayNotify(b, FORM, now, keys, inlineCrypto)));
    }
    const amount = Buffer.from(text.replace('total_amount=19.99', 'total_amount=99.99'));
    expect(await rejection(verifyAlipayNotify(amount, FORM, now, keys, inlineCrypto))).toBe('invalid_signature');
    expect(await rejection(verifyAlipayNotify(await notifyBody({}, strangerKeys.priv, now), FORM, now, keys, inlineCrypto))).toBe('invalid_signature');
    expect(await rejection(verifyAlipayNotify(good, FORM, now + NOTIFY_WINDOW_MS + 1_000, keys, inlineCrypto))).toBe('timestamp_out_of_window');
    expect(await rejection(verifyAlipayNotify(good, FORM, now - NOTIFY_WINDOW_MS - 1_000, keys, inlineCrypto))).toBe('timestamp_out_of_window');
    expect(await rejection(verifyAlipayNotify(good, {}, now, keys, inlineCrypto))).toBe('malformed');
    const params = Object.fromEntries(new URLSearchParams(text));
    // Re-serialised as JSON: under a form content-type it is one odd parameter with no sign.
    expect(await rejection(verifyAlipayNotify(Buffer.from(JSON.stringify(params)), FORM, now, keys, inlineCrypto))).toBe('invalid_signature');
    expect(await rejection(verifyAlipayNotify(Buffer.from(JSON.stringify(params)), { 'content-type': 'application/json' }, now, keys, inlineCrypto))).toBe('malformed');
    const { sign: _sign, ...unsigned } = params;
    expect(await rejection(verifyAlipayNotify(Buffer.from(new URLSearchParams(unsigned).toString()), FORM, now, keys, inlineCrypto))).toBe('invalid_signature');
    expect(await rejection(verifyAlipayNotify(Buffer.from(new URLSearchParams({ ...params, sign_type: 'RSA' }).toString()), FORM, now, keys, inlineCrypto))).toBe('invalid_signature');
    expect(await rejection(verifyAlipayNotify(Buffer.from(`${text}&total_amount=0.01`), FORM, now, keys, inlineCrypto))).toBe('malformed');
    expect(await rejection(verifyAlipayNotify(Buffer.from([0xff, 0xfe, 0x3d]), FORM, now, keys, inlineCrypto))).toBe('malformed');
    expect(await rejection(verifyAlipayNotify(await notifyBody({ app_id: '2021000000000099' }, alipayKeys.priv, now), FORM, now, keys, inlineCrypto))).toBe('malformed');
    expect(await rejection(verifyAlipayNotify(await notifyBody({ notify_type: 'open_auth_token_sync' }, alipayKeys.priv, now), FORM, now, keys, inlineCrypto))).toBe('unsupported_event');
    expect(await rejection(verifyAlipayNotify(await notifyBody({ trade_status: 'TRADE_PENDING' }, alipayKeys.priv, now), FORM, now, keys, inlineCrypto))).toBe('malformed');
    expect(await rejection(verifyAlipayNotify(await notifyBody({ total_amount: '19.999' }, alipayKeys.priv, now), FORM, now, keys, inlineCrypto))).toBe('malformed');
  });

  it('a form re-encoded with its keys reordered is the same notification (Alipay signs decoded, sorted parameters)', async () => {
    const now = Date.now();
    const params = [...new URLSearchParams((await notifyBody({}, alipayKeys.priv, now)).toString())].reverse();
    const reencoded = params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    expect((await verifyAlipayNotify(Buffer.from(reencoded), FORM, now, keys, inlineCrypto)).out_trade_no).toBe('pay_01');
  });

  it('alipay-sdk verifies notifications signed by our rule', async () => {
    const sdk = new AlipaySdk({ appId: APP_ID, privateKey: strangerKeys.priv.trim(), keyType: 'PKCS8', alipayPublicKey: alipayKeys.pub.trim() });
    const form = Object.fromEntries(new URLSearchParams((await notifyBody()).toString()));
    expect(sdk.checkNotifySignV2(form)).toBe(true);
    expect(sdk.checkNotifySignV2({ ...form, out_trade_no: 'pay_02' })).toBe(false);
  });

  it('our verifier accepts a notification signed by alipay-sdk\'s own signer', async () => {
    // The SDK has no notification signer; sdkExecute is its parameter signer (Alipay's request
    // rule, sign_type included), run here with Alipay's key over a notification's parameters.
    const asAlipay = new AlipaySdk({ appId: APP_ID, privateKey: alipayKeys.priv.trim(), keyType: 'PKCS8' });
    const now = Date.now();
    const body = asAlipay.sdkExecute('alipay.trade.notify', {
      notifyTime: toShanghaiTime(now),
      notifyType: 'trade_status_sync',
      notifyId: 'sdk0001',
      outTradeNo: 'pay_sdk',
      tradeNo: '2024000001',
      tradeStatus: 'TRADE_SUCCESS',
      totalAmount: '0.88',
    });
    const n = await verifyAlipayNotify(Buffer.from(body), FORM, now, keys, inlineCrypto);
    expect(n).toMatchObject({ kind: 'payment', notification_id: 'sdk0001', out_trade_no: 'pay_sdk', amount: 88, status: 'succeeded' });
    const tampered = Buffer.from(body.replace('total_amount=0.88', 'total_amount=8.80'));
    expect(await rejection(verifyAlipayNotify(tampered, FORM, now, keys, inlineCrypto))).toBe('invalid_signature');
  });

  it('answers success or fail in plain text', () => {
    expect(alipayNotifyAnswer(true)).toMatchObject({ status: 200, body: 'success' });
    expect(alipayNotifyAnswer(false)).toMatchObject({ status: 400, body: 'fail' });
  });
});

describe('alipay trade bill', () => {
  it('parses payment and refund lines, fees and times from Alipay\'s layout', () => {
    const row = (cells: Partial<Record<(typeof ALIPAY_BILL_COLUMNS)[number], string>>) => ALIPAY_BILL_COLUMNS.map((c) => cells[c] ?? '').join(',');
    const csv = [
      '#支付宝业务明细查询',
      '#账号：[20881021778468800156]',
      ALIPAY_BILL_COLUMNS.join(','),
      row({ 支付宝交易号: '2024001\t', 商户订单号: 'pay_1\t', 业务类型: '交易', 商品名称: '"a, ""b"""', 完成时间: '2024-01-01 10:00:00', '订单金额（元）': '19.99\t', '商家实收（元）': '19.99', '服务费（元）': '-0.12' }),
      row({ 支付宝交易号: '2024001', 商户订单号: 'pay_1', 业务类型: '退款', 完成时间: '2024-01-01 11:00:00', '订单金额（元）': '19.99', '商家实收（元）': '-5.00', '退款批次号/请求号': 'rf_1', '服务费（元）': '0.03' }),
      '#-----------------------------------------业务明细列表结束------------------------------------',
      '',
    ].join('\r\n');
    expect(parseTradeBill(csv)).toEqual([
      { out_trade_no: 'pay_1', channel_trade_no: '2024001', kind: 'payment', out_refund_no: null, amount: 1999, currency: 'CNY', fee: 12, at_ms: Date.UTC(2024, 0, 1, 2) },
      { out_trade_no: 'pay_1', channel_trade_no: '2024001', kind: 'refund', out_refund_no: 'rf_1', amount: 500, currency: 'CNY', fee: -3, at_ms: Date.UTC(2024, 0, 1, 3) },
    ]);
    expect(() => parseTradeBill('#only comments\n')).toThrow(/header/);
  });
});

/** GBK bytes of a string, from the decoder's own table (Node has no GBK encoder). */
function gbkEncode(text: string): Buffer {
  const table = new Map<string, number[]>();
  const dec = new TextDecoder('gbk');
  for (let a = 0x81; a <= 0xfe; a++) for (let b = 0x40; b <= 0xfe; b++) if (b !== 0x7f) table.set(dec.decode(Buffer.from([a, b])), [a, b]);
  const out: number[] = [];
  for (const ch of text) {
    if (ch.charCodeAt(0) < 0x80) out.push(ch.charCodeAt(0));
    else out.push(...(table.get(ch) ?? (() => { throw new Error(`no GBK for ${ch}`); })()));
  }
  return Buffer.from(out);
}

/** A zip as Alipay ships it: GBK names (no UTF-8 flag), one entry deflated, one stored. */
function zipOf(entries: Array<{ name: Buffer; data: Buffer; deflate: boolean }>): Buffer {
  const locals: Buffer[] = [];
  const dirs: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const body = e.deflate ? deflateRawSync(e.data) : e.data;
    const head = Buffer.alloc(30);
    head.writeUInt32LE(0x04034b50, 0);
    head.writeUInt16LE(20, 4);
    head.writeUInt16LE(e.deflate ? 8 : 0, 8);
    head.writeUInt32LE(crc32(e.data) >>> 0, 14);
    head.writeUInt32LE(body.length, 18);
    head.writeUInt32LE(e.data.length, 22);
    head.writeUInt16LE(e.name.length, 26);
    const dir = Buffer.alloc(46);
    dir.writeUInt32LE(0x02014b50, 0);
    dir.writeUInt16LE(20, 4);
    dir.writeUInt16LE(20, 6);
    dir.writeUInt16LE(e.deflate ? 8 : 0, 10);
    dir.writeUInt32LE(crc32(e.data) >>> 0, 16);
    dir.writeUInt32LE(body.length, 20);
    dir.writeUInt32LE(e.data.length, 24);
    dir.writeUInt16LE(e.name.length, 28);
    dir.writeUInt32LE(offset, 42);
    locals.push(head, e.name, body);
    dirs.push(dir, e.name);
    offset += 30 + e.name.length + body.length;
  }
  const dirBuf = Buffer.concat(dirs);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dirBuf.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, dirBuf, end]);
}

describe('alipay bill archive', () => {
  it('reads the detail CSV out of a zip of GBK files, and plain UTF-8 as the sandbox serves it', () => {
    const csv = [
      '#支付宝业务明细查询',
      ALIPAY_BILL_COLUMNS.join(','),
      ALIPAY_BILL_COLUMNS.map((c) => ({ 支付宝交易号: '2024001', 商户订单号: 'pay_9', 业务类型: '交易', 商品名称: '点卡', 完成时间: '2024-01-01 10:00:00', '订单金额（元）': '0.88', '商家实收（元）': '0.88', '服务费（元）': '-0.01' } as Record<string, string>)[c] ?? '').join(','),
      '',
    ].join('\r\n');
    const summary = '#支付宝业务汇总查询\r\n门店编号,门店名称,交易订单总笔数\r\n';
    const zip = zipOf([
      { name: gbkEncode('20881021778468800156_20240101_业务明细(汇总).csv'), data: gbkEncode(summary), deflate: false },
      { name: gbkEncode('20881021778468800156_20240101_业务明细.csv'), data: gbkEncode(csv), deflate: true },
    ]);
    const text = billCsvText(zip);
    expect(text).toBe(csv);
    expect(parseTradeBill(text)).toEqual([{ out_trade_no: 'pay_9', channel_trade_no: '2024001', kind: 'payment', out_refund_no: null, amount: 88, currency: 'CNY', fee: 1, at_ms: Date.UTC(2024, 0, 1, 2) }]);
    expect(billCsvText(Buffer.from(csv))).toBe(csv);
    expect(() => billCsvText(zipOf([{ name: gbkEncode('汇总.csv'), data: Buffer.from('x'), deflate: false }]))).toThrow(/detail CSV/);
    const cut = zip.subarray(0, zip.length - 30);
    expect(() => billCsvText(cut)).toThrow();
  });
});

describe('alipay keys', () => {
  it('takes Alipay\'s bare base64 keys (PKCS#8 and PKCS#1) as well as PEM, and they sign and verify alike', async () => {
    const k = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const bare = (der: Buffer) => der.toString('base64');
    const pkcs8 = normalizePrivateKey(bare(k.privateKey.export({ type: 'pkcs8', format: 'der' })));
    const pkcs1 = normalizePrivateKey(bare(k.privateKey.export({ type: 'pkcs1', format: 'der' })));
    const pem1 = normalizePrivateKey(k.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string);
    expect(pkcs8).toBe(pkcs1);
    expect(pem1).toBe(pkcs8);
    const pub = normalizePublicKey(bare(k.publicKey.export({ type: 'spki', format: 'der' })));
    const sig = await inlineCrypto.rsaSign(pkcs8, 'a=1');
    expect(await inlineCrypto.rsaVerify(pub, 'a=1', sig)).toBe(true);
    expect(() => normalizePrivateKey('bm90IGEga2V5')).toThrow();
  });
});
