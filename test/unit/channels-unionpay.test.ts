// UnionPay 5.1.0: pure mapping (every response code, ids, times, amounts, the ZM bill, zip) and
// back-notification verification. Notifications here are signed by an implementation written in
// this file with node:crypto, strictly per the published 5.1.0 rule (no maintained UnionPay SDK
// for Node exists), over certificates minted with the openssl CLI.
import { createHash, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { inlineCrypto } from '../../engine/channels/crypto.ts';
import { ChannelError, NOTIFY_WINDOW_MS, type ChannelOrderRequest } from '../../engine/channels/types.ts';
import {
  formatUpTime,
  formatZmLine,
  fromUpAmount,
  fromUpOrderId,
  mintUnionPaySandboxPki,
  parseAnswer,
  parseForm,
  parseUpTime,
  parseZmFile,
  readZip,
  signingString,
  toConsumeRequest,
  toRefundRequest,
  toUpAmount,
  toUpChannelOrderId,
  toUpOrderId,
  txnTimeMsOfChannelOrderId,
  unionPayNotifyAnswer,
  upOrderStatus,
  upOutcome,
  upRequestErrorCode,
  UpCertVerifier,
  UpTxnTimes,
  verifyUnionPayNotify,
  writeZip,
  UP_RESP_CODES,
  UP_SANDBOX_COMPANY,
  type UnionPaySandboxPki,
  type UpRespCode,
} from '../../engine/channels/unionpay/index.ts';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** An id shaped as ingress/idempotency.ts derivedId makes them: prefix + 26 Crockford characters of a hash, no time inside. */
const derivedLikeId = (prefix: string) => `${prefix}_${[...randomBytes(26)].map((b) => CROCKFORD[b & 31]).join('')}`;
const payId = () => derivedLikeId('pay');
const refundId = () => derivedLikeId('re');
const charsArb = fc.string({ unit: fc.constantFrom(...CROCKFORD), minLength: 26, maxLength: 26 });
const prefixArb = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz'), minLength: 1, maxLength: 8 });

describe('unionpay transformers', () => {
  it('classifies every published response code by the SDK rule (00/A6 success, 03/04/05 query again, the rest final)', () => {
    const codes = Object.keys(UP_RESP_CODES) as UpRespCode[];
    expect(codes.length).toBeGreaterThan(40);
    for (const c of codes) {
      const want = c === '00' || c === 'A6' ? 'success' : c === '03' || c === '04' || c === '05' ? 'in_doubt' : 'final_failure';
      expect(upOutcome(c), c).toBe(want);
    }
    expect(upOrderStatus('00')).toBe('succeeded');
    expect(upOrderStatus('05')).toBe('pending');
    expect(upOrderStatus('64')).toBe('failed');
    expect(upOrderStatus('ZZ')).toBe('failed'); // unpublished: final by the same rule
    expect(upOrderStatus(undefined)).toBe('failed');
  });

  it('maps request-level codes to retryable or not', () => {
    expect(upRequestErrorCode('06')).toBe('unavailable');
    expect(upRequestErrorCode('03')).toBe('unavailable');
    expect(upRequestErrorCode('34')).toBe('not_found');
    expect(upRequestErrorCode('11')).toBe('rejected');
    expect(upRequestErrorCode('12')).toBe('rejected');
  });

  it('maps <prefix>_<26 Crockford characters> ids to orderIds without "_" and back (property)', () => {
    fc.assert(
      fc.property(prefixArb, charsArb, (prefix, chars) => {
        const id = `${prefix}_${chars}`;
        const orderId = toUpOrderId(id);
        expect(orderId).toMatch(/^[0-9A-Za-z]{8,40}$/);
        expect(fromUpOrderId(orderId)).toBe(id);
      }),
    );
    // The hash alphabet has no I, L, O, U; base64url ids (with '-', '_' or lower case) are refused.
    for (const bad of ['pay_abcdef123456', 'pay-01JABCDEFGHJKMNPQRSTVWXYZ0', 'PAY_01JABCDEFGHJKMNPQRSTVWXYZ', `pay_${'Z'.repeat(25)}I`, `pay_x-${'Z'.repeat(24)}`])
      expect(() => toUpOrderId(bad)).toThrow(ChannelError);
    const maxed = `pay_${'Z'.repeat(26)}`; // as a ULID its "time" would be past the year 10889: it is not read as one
    expect(fromUpOrderId(toUpOrderId(maxed))).toBe(maxed);
  });

  it('carries txnTime in the channel order id <orderId>@<txnTime> and reads it back only for the same order', () => {
    const id = payId();
    const at = Date.UTC(2026, 11, 31, 16, 0, 1, 999);
    const coid = toUpChannelOrderId(id, at);
    expect(coid).toBe(`${toUpOrderId(id)}@20270101000001`);
    expect(coid.length).toBeLessThanOrEqual(256); // the engine's channel_order_id limit
    expect(txnTimeMsOfChannelOrderId(id, coid)).toBe(Date.UTC(2026, 11, 31, 16, 0, 1));
    const reason = (f: () => unknown) => {
      try {
        f();
        return 'accepted';
      } catch (e) {
        return e instanceof ChannelError ? `${e.code}: ${e.message}` : String(e);
      }
    };
    expect(reason(() => txnTimeMsOfChannelOrderId(id, null))).toBe('rejected: unionpay needs the channel order id to find an order');
    expect(reason(() => txnTimeMsOfChannelOrderId(id, undefined))).toBe('rejected: unionpay needs the channel order id to find an order');
    expect(reason(() => txnTimeMsOfChannelOrderId(payId(), coid))).toMatch(/^rejected: .*another order/);
    for (const bad of [toUpOrderId(id), `${toUpOrderId(id)}@`, `${toUpOrderId(id)}@20261332000000`, `${toUpOrderId(id)}@2027010100000`]) expect(reason(() => txnTimeMsOfChannelOrderId(id, bad)), bad).toMatch(/^rejected: /);
  });

  it('remembers the txnTime it picked per id, to the second, forgetting the oldest past its limit', () => {
    const memo = new UpTxnTimes(2);
    const t0 = Date.UTC(2026, 10, 28, 4, 0, 0, 250);
    expect(memo.pick('pay_A', t0)).toBe(Date.UTC(2026, 10, 28, 4, 0, 0));
    expect(memo.pick('pay_A', t0 + 5_000)).toBe(Date.UTC(2026, 10, 28, 4, 0, 0)); // a retry: the same transaction
    expect(memo.pick('pay_B', t0 + 6_000)).toBe(t0 - 250 + 6_000);
    expect(memo.pick('pay_C', t0 + 7_000)).toBe(t0 - 250 + 7_000);
    expect(memo.size).toBe(2);
    expect(memo.get('pay_A')).toBeUndefined();
    expect(memo.pick('pay_B', t0 + 9_000)).toBe(t0 - 250 + 6_000);
  });

  it('round-trips YYYYMMDDhhmmss in Asia/Shanghai and refuses impossible dates', () => {
    fc.assert(
      fc.property(fc.integer({ min: 946_684_800, max: 4_102_444_800 }), (s) => {
        expect(parseUpTime(formatUpTime(s * 1000))).toBe(s * 1000);
      }),
    );
    expect(formatUpTime(Date.UTC(2026, 11, 31, 16, 0, 1))).toBe('20270101000001');
    expect(parseUpTime('20261332000000')).toBeNull();
    expect(parseUpTime('2026-11-28')).toBeNull();
  });

  it('round-trips integer fen through txnAmt and refuses non-integers (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 999_999_999_999 }), (fen) => {
        expect(fromUpAmount(toUpAmount(fen, 'CNY'))).toBe(fen);
      }),
    );
    fc.assert(
      fc.property(fc.double({ min: 0.001, max: 1e9, noNaN: true }).filter((x) => !Number.isInteger(x)), (x) => {
        expect(() => toUpAmount(x, 'CNY')).toThrow(ChannelError);
        expect(fromUpAmount(String(x))).toBeNull();
      }),
    );
    expect(() => toUpAmount(1_000_000_000_000, 'CNY')).toThrow(ChannelError);
    expect(() => toUpAmount(100, 'USD')).toThrow(ChannelError);
    expect(fromUpAmount('0100')).toBeNull();
  });

  it('builds the gateway consume for pc and the QR apply for mobile scenes', () => {
    const req: ChannelOrderRequest = { out_trade_no: payId(), amount: 1999, currency: 'CNY', subject: '点卡&充值', scene: 'pc', client_ip: '203.0.113.9', notify_url: 'https://pay.example/v1/notify/unionpay', expires_at_ms: Date.now() + 600_000, return_url: 'https://shop.example/done' };
    const ids = { merId: '777290058110097', certId: '69629715588' };
    const sentMs = Date.UTC(2026, 10, 28, 4, 0, 0);
    const pc = toConsumeRequest(req, ids, sentMs, req.expires_at_ms);
    expect(pc).toMatchObject({ version: '5.1.0', encoding: 'UTF-8', signMethod: '01', certId: ids.certId, txnType: '01', txnSubType: '01', bizType: '000201', channelType: '07', accessType: '0', merId: ids.merId, orderId: toUpOrderId(req.out_trade_no), txnAmt: '1999', currencyCode: '156', backUrl: req.notify_url, frontUrl: req.return_url, payTimeout: formatUpTime(req.expires_at_ms), customerIp: '203.0.113.9', orderDesc: '点卡 充值' });
    expect(pc.txnTime).toBe('20261128120000');
    const qr = toConsumeRequest({ ...req, scene: 'app' }, ids, sentMs, req.expires_at_ms);
    expect(qr).toMatchObject({ txnSubType: '07', bizType: '000000', channelType: '08' });
    expect(qr).not.toHaveProperty('frontUrl');
  });

  it('builds a refund as its own transaction: orderId from the refund id, its own txnTime, origQryId of the consume', () => {
    const ids = { merId: '777290058110097', certId: '69629715588' };
    const pay = payId();
    const re = refundId();
    const r = toRefundRequest({ out_trade_no: pay, out_refund_no: re, amount: 500, total_amount: 1999, currency: 'CNY', notify_url: 'https://pay.example/v1/notify/unionpay' }, ids, '781811281200011234567', Date.UTC(2026, 10, 28, 5, 30, 0));
    expect(r).toMatchObject({ txnType: '04', txnSubType: '00', orderId: toUpOrderId(re), txnTime: '20261128133000', origQryId: '781811281200011234567', txnAmt: '500', reqReserved: pay });
    expect(() => toRefundRequest({ out_trade_no: 'pay_01', out_refund_no: re, amount: 500, total_amount: 1999, currency: 'CNY', notify_url: 'https://x' }, ids, '1', Date.now())).toThrow(ChannelError);
  });

  it('signs over sorted k=v without signature; parses raw answers with nested values and PEM certificates', () => {
    expect(signingString({ b: '2', signature: 'x', a: '1', c: '' })).toBe('a=1&b=2&c=');
    const cert = '-----BEGIN CERTIFICATE-----\r\nMIIB+/=\r\n-----END CERTIFICATE-----';
    expect(parseAnswer(`respCode=00&reserved={a=1&b=2}&signPubKeyCert=${cert}&signature=ab+/==`)).toEqual({ respCode: '00', reserved: '{a=1&b=2}', signPubKeyCert: cert, signature: 'ab+/==' });
    expect(parseAnswer('a=1&a=2')).toBeNull();
    expect(parseForm('a=1&a=2')).toBeNull();
    expect(parseForm('a=%2B1&b=x+y')).toEqual({ a: '+1', b: 'x y' });
  });

  it('round-trips a zip and refuses one whose data does not match its CRC', () => {
    const data = Buffer.from('line 1\r\nline 2\r\n'.repeat(100));
    const zip = writeZip([{ name: 'INN261128ZM_777290058110097', data }]);
    expect(readZip(zip)).toEqual([{ name: 'INN261128ZM_777290058110097', data }]);
    const bad = Buffer.from(zip);
    bad.writeUInt32LE((bad.readUInt32LE(14) ^ 1) >>> 0, 14);
    const dir = bad.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    bad.writeUInt32LE((bad.readUInt32LE(dir + 16) ^ 1) >>> 0, dir + 16);
    expect(() => readZip(bad)).toThrow(/CRC/);
  });

  it('parses ZM rows: payments, refunds with reqReserved, fees by D/C sign', () => {
    const pay = payId();
    const re = refundId();
    const dayMs = Date.UTC(2026, 10, 28, 4);
    const text = [
      formatZmLine({ tradeCode: 'S22', txnTime: '1128120001', txnAmt: '000000001999', queryId: '111111111111111111111', orderId: toUpOrderId(pay), merFee: 'D000000000006', txnType: '01', txnSubType: '01', bizType: '000201' }),
      formatZmLine({ tradeCode: 'S30', txnTime: '1128130000', txnAmt: '000000000500', queryId: '222222222222222222222', orderId: toUpOrderId(re), merFee: 'C000000000002', txnType: '04', txnSubType: '00', bizType: '000201', origQryId: '111111111111111111111', merReserved: pay }),
    ].join('\r\n');
    expect(parseZmFile(text, dayMs)).toEqual([
      { out_trade_no: pay, channel_trade_no: '111111111111111111111', kind: 'payment', out_refund_no: null, amount: 1999, currency: 'CNY', fee: 6, at_ms: Date.UTC(2026, 10, 28, 4, 0, 1) },
      { out_trade_no: pay, channel_trade_no: '111111111111111111111', kind: 'refund', out_refund_no: re, amount: 500, currency: 'CNY', fee: -2, at_ms: Date.UTC(2026, 10, 28, 5, 0, 0) },
    ]);
  });
});

describe('unionpay back notifications', () => {
  let pki: UnionPaySandboxPki;
  let foreign: UnionPaySandboxPki;
  let verifier: UpCertVerifier;
  const merId = '777290058110097';
  const ageMaxMs = 2 * 3600_000;

  beforeAll(() => {
    pki = mintUnionPaySandboxPki();
    foreign = mintUnionPaySandboxPki(); // a whole other chain: its signing certificate is not UnionPay's
    verifier = new UpCertVerifier(pki.rootPem, pki.middlePem, UP_SANDBOX_COMPANY);
  }, 30_000);

  /** The published 5.1.0 rule, written out here: base64(SHA256withRSA(sha256hex(sorted k=v, no signature))). */
  function specSign(params: Record<string, string>, keyPem: string, certPem: string): Record<string, string> {
    const p: Record<string, string> = { ...params, signMethod: '01', version: '5.1.0', encoding: 'UTF-8', signPubKeyCert: certPem };
    const data = Object.keys(p).sort().map((k) => `${k}=${p[k]}`).join('&');
    const digestHex = createHash('sha256').update(data, 'utf8').digest('hex');
    return { ...p, signature: createSign('RSA-SHA256').update(digestHex, 'utf8').sign(keyPem, 'base64') };
  }

  const payment = (txnTimeMs: number, over: Record<string, string> = {}) => ({
    txnType: '01', txnSubType: '07', bizType: '000000', accessType: '0', merId, orderId: toUpOrderId(payId()), txnTime: formatUpTime(txnTimeMs),
    txnAmt: '1999', currencyCode: '156', queryId: '781811281200011234567', respCode: '00', respMsg: 'Success!', traceNo: '123456', traceTime: formatUpTime(txnTimeMs + 60_000).slice(4),
    settleDate: formatUpTime(txnTimeMs).slice(4, 8), settleAmt: '1999', settleCurrencyCode: '156', ...over,
  });
  const form = (p: Record<string, string>) => Buffer.from(new URLSearchParams(p).toString());
  const verify = (body: Buffer, nowMs = Date.now()) => verifyUnionPayNotify(body, nowMs, { merId, notifyTxnAgeMaxMs: ageMaxMs }, verifier, inlineCrypto);
  const reason = async (p: Promise<unknown>) => p.then(() => 'accepted', (e: { reason?: string }) => e.reason ?? String(e));

  it('accepts a payment notification signed per the spec and maps it', async () => {
    const now = Date.now();
    const p = payment(now - 60_000);
    await expect(verify(form(specSign(p, pki.signKeyPem, pki.signCertPem)), now)).resolves.toEqual({
      kind: 'payment', notification_id: p.queryId, out_trade_no: fromUpOrderId(p.orderId), status: 'succeeded', amount: 1999, currency: 'CNY',
      channel_trade_no: p.queryId, paid_at_ms: Math.floor((now - 60_000) / 1000) * 1000 + 60_000,
    });
  });

  it('accepts a refund notification carrying our out_trade_no in reqReserved', async () => {
    const pay = payId();
    const re = refundId();
    const p = payment(Date.now(), { txnType: '04', txnSubType: '00', orderId: toUpOrderId(re), txnAmt: '500', queryId: '781811281300011234567', origQryId: '781811281200011234567', reqReserved: pay });
    await expect(verify(form(specSign(p, pki.signKeyPem, pki.signCertPem)))).resolves.toEqual({ kind: 'refund', notification_id: p.queryId, out_trade_no: pay, out_refund_no: re, status: 'succeeded', amount: 500, currency: 'CNY' });
  });

  it('rejects every single-byte tamper of a signed value', async () => {
    const signed = specSign(payment(Date.now()), pki.signKeyPem, pki.signCertPem);
    for (const field of ['txnAmt', 'orderId', 'queryId', 'respCode', 'merId', 'signature']) {
      const v = signed[field]!;
      const at = field === 'signature' ? v.length >> 1 : v.length - 1; // a base64 tail after '=' would be ignored by any decoder
      const flipped = v.slice(0, at) + (v[at] === '1' ? '2' : '1') + v.slice(at + 1);
      expect(await reason(verify(form({ ...signed, [field]: flipped }))), field).not.toBe('accepted');
      expect(['invalid_signature', 'malformed']).toContain(await reason(verify(form({ ...signed, [field]: flipped }))));
    }
    expect(await reason(verify(form({ ...signed, txnAmt: '1998' })))).toBe('invalid_signature');
  });

  it('rejects a signature by another key, and a certificate that does not chain to UnionPay', async () => {
    const p = payment(Date.now());
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(await reason(verify(form(specSign(p, otherKey, pki.signCertPem))))).toBe('invalid_signature');
    expect(await reason(verify(form(specSign(p, foreign.signKeyPem, foreign.signCertPem))))).toBe('invalid_signature');
    expect(await reason(verify(form(specSign(p, pki.merchantKeyPem, pki.signCertPem))))).toBe('invalid_signature');
  });

  it('rejects a txnTime outside the window: from the future, or older than the age limit', async () => {
    const now = Date.now();
    expect(await reason(verify(form(specSign(payment(now + NOTIFY_WINDOW_MS + 5_000), pki.signKeyPem, pki.signCertPem)), now))).toBe('timestamp_out_of_window');
    expect(await reason(verify(form(specSign(payment(now - ageMaxMs - 5_000), pki.signKeyPem, pki.signCertPem)), now))).toBe('timestamp_out_of_window');
    expect(await reason(verify(form(specSign(payment(now - ageMaxMs + 5_000), pki.signKeyPem, pki.signCertPem)), now))).toBe('accepted');
  });

  it.each(['signature', 'signPubKeyCert'])('rejects a notification without %s', async (field) => {
    const signed = specSign(payment(Date.now()), pki.signKeyPem, pki.signCertPem);
    delete signed[field];
    expect(await reason(verify(form(signed)))).toBe('invalid_signature');
  });

  it('accepts the same fields in another order (the signature is over the sorted fields) but not another value encoding', async () => {
    const signed = specSign(payment(Date.now(), { respMsg: 'Success! ok' }), pki.signKeyPem, pki.signCertPem);
    const reversed = Object.fromEntries(Object.entries(signed).reverse());
    expect(await reason(verify(form(reversed)))).toBe('accepted');
    // '+' decodes to a space, %2B to '+': a re-encoding that changes a value breaks the signature.
    const body = form(signed).toString().replace('Success%21+ok', 'Success%21%2Bok');
    expect(await reason(verify(Buffer.from(body)))).toBe('invalid_signature');
  });

  it('rejects signed but unusable notifications: other merId, unknown txnType, refund without reqReserved, float amount', async () => {
    const now = Date.now();
    const cases: Array<[Record<string, string>, string]> = [
      [payment(now, { merId: '777290058119999' }), 'malformed'],
      [payment(now, { txnType: '76' }), 'unsupported_event'],
      [payment(now, { txnType: '04', orderId: toUpOrderId(refundId()) }), 'malformed'],
      [payment(now, { txnAmt: '19.99' }), 'malformed'],
    ];
    for (const [p, want] of cases) expect(await reason(verify(form(specSign(p, pki.signKeyPem, pki.signCertPem)), now))).toBe(want);
    expect(await reason(verify(Buffer.from('not a form %%%')))).toBe('invalid_signature');
  });

  it('answers 200 ok, or a non-2xx so UnionPay retries', () => {
    expect(unionPayNotifyAnswer(true)).toEqual({ status: 200, headers: { 'content-type': 'text/plain' }, body: 'ok' });
    expect(unionPayNotifyAnswer(false).status).toBeGreaterThanOrEqual(400);
  });
});
