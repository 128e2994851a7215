// A local UnionPay 5.1.0 gateway: frontTransReq.do (the gateway form), backTransReq.do (QR apply,
// refund, cancel), queryTrans.do and the file transfer, signed as UnionPay signs. Real X.509
// certificates cannot be had outside UnionPay, so at start it mints a small PKI with the openssl
// CLI: a root and a middle CA, UnionPay's signing certificate (CN 041@…@00040000:SIGN@…, as in
// UnionPay's test environment) carried in every answer and notification as signPubKeyCert, and
// the merchant's certificate, whose serial (decimal) is the certId it checks on every request.
import { createHash, createSign, createVerify, generateKeyPairSync, randomBytes, randomInt, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { SANDBOX_ORDERS_MAX, SandboxKit, shanghaiDay, type OrderBook, type SandboxOrder, type SandboxRefund, type SandboxRequest, type SandboxResponse, type SandboxSpec } from '../sandbox-kit.ts';
import type { UnionPayConfig } from './adapter.ts';
import { encodeForm, formatAnswer, parseForm, sha256Hex, signingString } from './sign.ts';
import { formatUpTime, formatZmLine, fromUpAmount, fromUpOrderId, parseMmddhhmmss, parseUpTime, toUpOrderId } from './transformers.ts';
import {
  UP_BIZ_GATEWAY,
  UP_CURRENCY_CNY,
  UP_ENCODING,
  UP_PATH_BACK,
  UP_PATH_FRONT,
  UP_PATH_QUERY,
  UP_RESP_CODES,
  UP_SIGN_METHOD_RSA,
  UP_SUB_CONSUME,
  UP_SUB_QR_APPLY,
  UP_TXN_CANCEL,
  UP_TXN_CONSUME,
  UP_TXN_FILE,
  UP_TXN_QUERY,
  UP_TXN_REFUND,
  UP_VERSION,
  type UpRespCode,
} from './wire.ts';
import { writeZip } from './zip.ts';

/** 0.3% (bank direct), rounded half up to the fen. */
export const UP_SANDBOX_FEE_PER_MILLE = 3;
export const UP_SANDBOX_COMPANY = '00040000:SIGN';
const CERT_DAYS = 3650;

export function unionPayFeeOf(amount: number): number {
  return Math.floor((amount * UP_SANDBOX_FEE_PER_MILLE + 500) / 1000);
}

export type UnionPaySandboxPki = { rootPem: string; middlePem: string; signKeyPem: string; signCertPem: string; merchantKeyPem: string; merchantPublicPem: string; merchantCertId: string };

/** Mints the sandbox PKI with the openssl CLI (node can verify X.509 chains but cannot issue them). */
export function mintUnionPaySandboxPki(): UnionPaySandboxPki {
  const dir = mkdtempSync(join(tmpdir(), 'pp-unionpay-'));
  const key = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const openssl = (args: string[]) => {
    try {
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      throw new Error(`unionpay sandbox: the openssl CLI is needed to mint its certificates (${(err as Error).message.split('\n')[0]})`, { cause: err });
    }
  };
  const serial = () => `0x${randomBytes(8).toString('hex').replace(/^0/, '1')}`;
  try {
    writeFileSync(
      join(dir, 'ext.cnf'),
      '[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n',
    );
    const issue = (name: string, subject: string, pem: string, issuer: string | null, ext: 'ca' | 'leaf') => {
      writeFileSync(join(dir, `${name}.key`), pem, { mode: 0o600 });
      openssl(['req', '-new', '-utf8', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
      const signer = issuer ? ['-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`] : ['-signkey', `${name}.key`];
      openssl(['x509', '-req', '-in', `${name}.csr`, ...signer, '-set_serial', serial(), '-days', String(CERT_DAYS), '-sha256', '-extfile', 'ext.cnf', '-extensions', ext, '-out', `${name}.pem`]);
      return readFileSync(join(dir, `${name}.pem`), 'utf8');
    };
    const root = key();
    const middle = key();
    const sign = key();
    const merchant = key();
    const rootPem = issue('root', '/C=CN/O=China Financial Certification Authority/CN=CFCA TEST CS CA (peakpay sandbox)', root.privateKey, null, 'ca');
    const middlePem = issue('middle', '/C=CN/O=China Financial Certification Authority/CN=CFCA TEST OCA1 (peakpay sandbox)', middle.privateKey, 'root', 'ca');
    const signCertPem = issue('sign', `/C=cn/O=CFCA TEST OCA1/OU=CUPRA/OU=Enterprises/CN=041@Z${new Date().toISOString().slice(0, 10)}@${UP_SANDBOX_COMPANY}@00000001`, sign.privateKey, 'middle', 'leaf');
    const merchantCertPem = issue('merchant', '/C=cn/O=CFCA TEST OCA1/OU=Local RA/OU=Individual-1/CN=041@Z2026@777290058110097@00000001', merchant.privateKey, 'middle', 'leaf');
    return {
      rootPem,
      middlePem,
      signKeyPem: sign.privateKey,
      signCertPem,
      merchantKeyPem: merchant.privateKey,
      merchantPublicPem: merchant.publicKey,
      merchantCertId: BigInt(`0x${new X509Certificate(merchantCertPem).serialNumber}`).toString(10),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const digits = (n: number) => Array.from({ length: n }, () => String(randomInt(10))).join('');

/** UnionPay's queryId is 21 digits; the kit's ids are mapped to one deterministically. */
export function upQueryIdOf(kitId: string): string {
  return BigInt(`0x${createHash('sha256').update(kitId).digest('hex')}`).toString(10).slice(0, 21);
}

const mmddhhmmss = (ms: number) => formatUpTime(ms).slice(4);
const settleDate = (ms: number) => formatUpTime(ms).slice(4, 8);

type RefundExtra = { orderId: string; txnTime: string; reqReserved: string; txnType: string; backUrl: string };

export async function startUnionPaySandbox(opts: { port?: number; host?: string } = {}): Promise<{ kit: SandboxKit; url: string; config: UnionPayConfig }> {
  const pki = mintUnionPaySandboxPki();
  const merId = `777290058${digits(6)}`;
  const refunds = new Map<string, RefundExtra>();

  /** Signs an answer or a notification as UnionPay does (signPubKeyCert + signature). */
  const signUp = (params: Record<string, string>): Record<string, string> => {
    const p: Record<string, string> = { version: UP_VERSION, encoding: UP_ENCODING, signMethod: UP_SIGN_METHOD_RSA, ...params, signPubKeyCert: pki.signCertPem };
    p.signature = createSign('RSA-SHA256').update(sha256Hex(signingString(p))).sign(pki.signKeyPem, 'base64');
    return p;
  };
  const answer = (params: Record<string, string>): SandboxResponse => ({ status: 200, headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: formatAnswer(signUp(params)) });
  const respond = (req: Record<string, string>, code: UpRespCode, extra: Record<string, string> = {}) =>
    answer({
      ...(req.txnType ? { txnType: req.txnType } : {}),
      ...(req.txnSubType ? { txnSubType: req.txnSubType } : {}),
      ...(req.bizType ? { bizType: req.bizType } : {}),
      ...(req.orderId ? { orderId: req.orderId } : {}),
      ...(req.txnTime ? { txnTime: req.txnTime } : {}),
      accessType: '0',
      merId,
      respCode: code,
      respMsg: `${UP_RESP_CODES[code]}[${code}00000]`,
      ...extra,
    });

  /** The merchant's request: certId, merId, version, and its SHA256withRSA signature. */
  const verified = (p: Record<string, string> | null): p is Record<string, string> => {
    if (!p || p.version !== UP_VERSION || p.signMethod !== UP_SIGN_METHOD_RSA || p.certId !== pki.merchantCertId || p.merId !== merId || !p.signature) return false;
    try {
      return createVerify('RSA-SHA256').update(sha256Hex(signingString(p))).verify(pki.merchantPublicPem, p.signature, 'base64');
    } catch {
      return false;
    }
  };

  const findByQueryId = (book: OrderBook, queryId: string): SandboxOrder | undefined => {
    for (const o of book.orders.values()) if (o.trade_no && upQueryIdOf(o.trade_no) === queryId) return o;
    return undefined;
  };

  /** Opens a consume (gateway form or QR apply); null with a respCode when UnionPay would refuse it. */
  const openConsume = (p: Record<string, string>, book: OrderBook): SandboxOrder | UpRespCode => {
    const id = fromUpOrderId(p.orderId ?? '');
    const amount = fromUpAmount(p.txnAmt);
    const txnTimeMs = parseUpTime(p.txnTime ?? '');
    const payTimeoutMs = parseUpTime(p.payTimeout ?? '');
    if (!id || amount === null || txnTimeMs === null || payTimeoutMs === null || p.currencyCode !== UP_CURRENCY_CNY || !/^https?:\/\//.test(p.backUrl ?? '')) return '13';
    if (payTimeoutMs <= Date.now()) return '39';
    const existing = book.get(id);
    // merId + orderId + txnTime name a transaction, and an orderId may not repeat within a day: the
    // same three again are the same order; the same orderId with another txnTime or amount is a
    // duplicate (12). Across days UnionPay would open a second transaction; the book holds one per id.
    if (existing && (existing.amount !== amount || existing.extra.txnTime !== p.txnTime)) return '12';
    if (!existing && book.orders.size >= SANDBOX_ORDERS_MAX) return '02';
    const o = book.open({
      out_trade_no: id,
      amount,
      currency: 'CNY',
      subject: p.orderDesc ?? '',
      notify_url: p.backUrl!,
      expires_ms: payTimeoutMs,
      extra: { txnTime: p.txnTime, orderId: p.orderId, bizType: p.bizType, txnSubType: p.txnSubType, qrCode: `https://qr.95516.com/00010000/62${digits(17)}` },
    });
    // An unpaid order lapses at payTimeout: after it, no payment, and a query finds nothing.
    if (!existing) setTimeout(() => book.close(id), Math.max(0, payTimeoutMs - Date.now())).unref();
    return o;
  };

  const consumeOrRefund = (p: Record<string, string>, book: OrderBook): SandboxResponse => {
    if (p.txnType === UP_TXN_CONSUME && p.txnSubType === UP_SUB_QR_APPLY) {
      const o = openConsume(p, book);
      if (typeof o === 'string') return respond(p, o);
      return respond(p, '00', { qrCode: String(o.extra.qrCode) });
    }
    if (p.txnType === UP_TXN_REFUND || p.txnType === UP_TXN_CANCEL) {
      const refundId = fromUpOrderId(p.orderId ?? '');
      const amount = fromUpAmount(p.txnAmt);
      if (!refundId || amount === null || !p.origQryId || parseUpTime(p.txnTime ?? '') === null || !/^https?:\/\//.test(p.backUrl ?? '')) return respond(p, '13');
      const o = findByQueryId(book, p.origQryId);
      if (!o) return respond(p, '35');
      if (p.txnType === UP_TXN_CANCEL && amount !== (o.paid_amount ?? o.amount)) return respond(p, '36');
      const seen = refunds.get(refundId);
      if (seen && seen.txnTime !== p.txnTime) return respond(p, '12');
      if (!seen) {
        if (refunds.size >= SANDBOX_ORDERS_MAX) return respond(p, '02');
        refunds.set(refundId, { orderId: p.orderId!, txnTime: p.txnTime!, reqReserved: p.reqReserved ?? '', txnType: p.txnType, backUrl: p.backUrl! });
      }
      const r = book.refund(o.out_trade_no, refundId, amount);
      if (r === 'unknown' || r === 'not_paid') return respond(p, '35');
      if (r === 'too_much') return respond(p, '36');
      return respond(p, '00', { origQryId: p.origQryId, queryId: upQueryIdOf(r.refund_id), txnAmt: String(amount) });
    }
    return respond(p, '13');
  };

  const query = (p: Record<string, string>, book: OrderBook): SandboxResponse => {
    if (p.txnType !== UP_TXN_QUERY) return respond(p, '13');
    const id = fromUpOrderId(p.orderId ?? '') ?? '';
    const o = book.get(id);
    if (o && o.extra.txnTime === p.txnTime && o.status !== 'closed') {
      const paid = o.status === 'succeeded' && o.trade_no && o.paid_ms !== null;
      const base = { txnAmt: String(o.paid_amount ?? o.amount), currencyCode: UP_CURRENCY_CNY };
      if (!paid) return respond(p, '00', { ...base, origRespCode: '05', origRespMsg: UP_RESP_CODES['05'] });
      return respond(p, '00', { ...base, origRespCode: '00', origRespMsg: UP_RESP_CODES['00'], queryId: upQueryIdOf(o.trade_no!), traceTime: mmddhhmmss(o.paid_ms!), traceNo: digits(6), settleDate: settleDate(o.paid_ms!), settleAmt: base.txnAmt, settleCurrencyCode: UP_CURRENCY_CNY });
    }
    const r = refunds.get(id);
    if (r && r.txnTime === p.txnTime) {
      for (const order of book.orders.values()) {
        const rr = order.refunds.find((x) => x.out_refund_no === id);
        if (rr) return respond(p, '00', { txnAmt: String(rr.amount), currencyCode: UP_CURRENCY_CNY, origRespCode: '00', origRespMsg: UP_RESP_CODES['00'], queryId: upQueryIdOf(rr.refund_id), origQryId: upQueryIdOf(order.trade_no ?? '') });
      }
    }
    return respond(p, '34');
  };

  const zmFile = (book: OrderBook, day: string): Buffer | null => {
    const lines = book.bill(day);
    if (lines.length === 0) return null;
    const text = lines
      .map((l) => {
        const o = l.order;
        const r = l.refund;
        const amount = r ? r.amount : (o.paid_amount ?? o.amount);
        const extra = r ? refunds.get(r.out_refund_no) : undefined;
        return formatZmLine({
          tradeCode: r ? 'S30' : 'S22', acqInsCode: '00010000', sendInsCode: '00010000', traceNo: digits(6), txnTime: mmddhhmmss(l.at_ms),
          payCardNo: '6216***********0018', txnAmt: String(amount).padStart(12, '0'), merCatCode: '5999', termType: '07',
          queryId: upQueryIdOf(r ? r.refund_id : (o.trade_no ?? '')), oldPayType: '00', orderId: toUpOrderId(r ? r.out_refund_no : o.out_trade_no), payCardType: '01',
          merFee: `${r ? 'C' : 'D'}${String(l.fee).padStart(12, '0')}`, settleAmt: `${r ? 'D' : 'C'}${String(amount - (r ? 0 : l.fee)).padStart(12, '0')}`, payType: '0001',
          txnType: r ? (extra?.txnType ?? UP_TXN_REFUND) : UP_TXN_CONSUME, txnSubType: r ? '00' : String(o.extra.txnSubType ?? UP_SUB_CONSUME), bizType: String(o.extra.bizType ?? UP_BIZ_GATEWAY),
          origQryId: r ? upQueryIdOf(o.trade_no ?? '') : '', merId, merReserved: r ? (extra?.reqReserved ?? o.out_trade_no) : '',
        });
      })
      .join('\r\n');
    return Buffer.from(`${text}\r\n`, 'utf8');
  };

  const fileTransfer = (p: Record<string, string>, book: OrderBook): SandboxResponse => {
    if (p.txnType !== UP_TXN_FILE || !/^\d{4}$/.test(p.settleDate ?? '')) return respond(p, '13');
    const dayMs = parseMmddhhmmss(`${p.settleDate}120000`, Date.now());
    if (dayMs === null) return respond(p, '13');
    const day = shanghaiDay(dayMs);
    const zm = zmFile(book, day);
    if (!zm) return respond(p, '98');
    const yymmdd = day.slice(2).replace(/-/g, '');
    const zip = writeZip([{ name: `INN${yymmdd}88ZM_${merId}`, data: zm }]);
    return respond(p, '00', { settleDate: p.settleDate!, fileType: '00', fileName: `${yymmdd}_${merId}.zip`, fileContent: deflateSync(zip).toString('base64') });
  };

  const cashier = (o: SandboxOrder): SandboxResponse => ({
    status: 200,
    headers: { 'content-type': 'text/html; charset=utf-8' },
    body: `<!doctype html><title>银联在线支付 sandbox</title><p>Order ${o.out_trade_no}: ${(o.amount / 100).toFixed(2)} CNY. Pay with POST /__sandbox/pay.</p>`,
  });

  const spec: SandboxSpec = {
    channel: 'unionpay',

    async handle(req: SandboxRequest, book: OrderBook) {
      const isFront = req.path === UP_PATH_FRONT;
      const isBack = req.method === 'POST' && (req.path === UP_PATH_BACK || req.path === UP_PATH_QUERY || req.path === '/');
      if (!isFront && !isBack) return null;
      // The gateway form arrives as a browser POST; the sandbox also takes it as a GET so a redirect URL can carry it.
      const p = parseForm(isFront && req.method === 'GET' ? req.query.toString() : req.raw.toString('utf8'));
      if (!verified(p)) return respond(p ?? {}, '11');
      if (isFront) {
        if (p.txnType !== UP_TXN_CONSUME || p.txnSubType !== UP_SUB_CONSUME || p.bizType !== UP_BIZ_GATEWAY || !/^https?:\/\//.test(p.frontUrl ?? '')) return respond(p, '13');
        const o = openConsume(p, book);
        return typeof o === 'string' ? respond(p, o) : cashier(o);
      }
      if (req.path === UP_PATH_QUERY) return query(p, book);
      if (req.path === '/') return fileTransfer(p, book);
      return consumeOrRefund(p, book);
    },

    systemError() {
      return respond({}, '06');
    },

    async callback(order: SandboxOrder, refund: SandboxRefund | null) {
      let params: Record<string, string>;
      if (!refund) {
        const paidMs = order.paid_ms ?? Date.now();
        const amount = String(order.paid_amount ?? order.amount);
        params = {
          txnType: UP_TXN_CONSUME, txnSubType: String(order.extra.txnSubType ?? UP_SUB_CONSUME), bizType: String(order.extra.bizType ?? UP_BIZ_GATEWAY), accessType: '0', merId,
          orderId: String(order.extra.orderId ?? toUpOrderId(order.out_trade_no)), txnTime: String(order.extra.txnTime ?? formatUpTime(order.created_ms)),
          txnAmt: amount, currencyCode: UP_CURRENCY_CNY, queryId: upQueryIdOf(order.trade_no ?? ''), respCode: '00', respMsg: 'Success!',
          traceNo: digits(6), traceTime: mmddhhmmss(paidMs), settleDate: settleDate(paidMs), settleAmt: amount, settleCurrencyCode: UP_CURRENCY_CNY,
          accNo: '6216***********0018', payCardType: '01', payType: '0001',
        };
      } else {
        const extra = refunds.get(refund.out_refund_no);
        params = {
          txnType: extra?.txnType ?? UP_TXN_REFUND, txnSubType: '00', bizType: UP_BIZ_GATEWAY, accessType: '0', merId,
          orderId: extra?.orderId ?? toUpOrderId(refund.out_refund_no), txnTime: extra?.txnTime ?? formatUpTime(refund.at_ms),
          txnAmt: String(refund.amount), currencyCode: UP_CURRENCY_CNY, queryId: upQueryIdOf(refund.refund_id), origQryId: upQueryIdOf(order.trade_no ?? ''),
          respCode: '00', respMsg: 'Success!', traceNo: digits(6), traceTime: mmddhhmmss(refund.at_ms), settleDate: settleDate(refund.at_ms),
          settleAmt: String(refund.amount), settleCurrencyCode: UP_CURRENCY_CNY, reqReserved: extra?.reqReserved ?? order.out_trade_no,
        };
      }
      const url = refund ? (refunds.get(refund.out_refund_no)?.backUrl ?? order.notify_url) : order.notify_url;
      return { url, headers: { 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8' }, body: encodeForm(signUp(params)) };
    },

    feeOf: unionPayFeeOf,
  };

  const kit = new SandboxKit(spec);
  const url = await kit.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  const config: UnionPayConfig = {
    gatewayUrl: url,
    fileDownloadUrl: `${url}/`,
    merId,
    certId: pki.merchantCertId,
    merchantPrivateKeyPem: pki.merchantKeyPem,
    rootCertPem: pki.rootPem,
    middleCertPem: pki.middlePem,
    signCertCompany: UP_SANDBOX_COMPANY,
  };
  return { kit, url, config };
}
