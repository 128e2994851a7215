// A local WeChat Pay API v3: the real paths, the real signatures. It verifies the merchant's
// Authorization signature on every /v3 request (401 SIGN_ERROR otherwise), signs every answer with
// its platform key (Wechatpay-* headers over timestamp\nnonce\nbody\n), sends callbacks with the
// resource AEAD_AES_256_GCM-encrypted under the APIv3 key, and serves the trade bill in WeChat's
// backtick text format. Key pairs are generated at start; the returned config talks to it.
import { createHash, createSign, createVerify, generateKeyPairSync, randomBytes, randomInt, randomUUID } from 'node:crypto';
import { SandboxKit, type OrderBook, type SandboxOrder, type SandboxRefund, type SandboxRequest, type SandboxResponse, type SandboxSpec } from '../sandbox-kit.ts';
import type { WechatPayConfig } from './adapter.ts';
import { aesGcmEncrypt, parseAuthorization, requestMessage, responseMessage, wxNonce } from './sign.ts';
import { fenToYuan, formatShanghaiDateTime, parseRfc3339, shanghaiRfc3339, WX_TRADE_NO_RE, WX_DESCRIPTION_BYTES_MAX } from './transformers.ts';
import {
  WX_AUTH_SCHEMA,
  WX_BILL_HEADER,
  WX_BILL_SUMMARY_HEADER,
  WX_PATH_BILLDOWNLOAD,
  WX_PATH_H5,
  WX_PATH_NATIVE,
  WX_PATH_REFUNDS,
  WX_PATH_TRADEBILL,
  type WxNotifyEnvelope,
  type WxRefund,
  type WxRefundResource,
  type WxTransaction,
} from './wire.ts';

/** WeChat refuses requests whose Authorization timestamp is further than this from its clock. */
const REQUEST_SKEW_MS_MAX = 300_000;
const BILLS_KEPT_MAX = 100;
/** 0.6%, rounded half up to the fen (WeChat's rounding of fees). */
export const WX_SANDBOX_FEE_PER_MILLE = 6;
const H5_PAGE_PATH = '/cgi-bin/mmpayweb-bin/checkmweb';

type Keys = { merchantPublicPem: string; platformPrivatePem: string; platformSerial: string };

const digits = (n: number) => Array.from({ length: n }, () => String(randomInt(10))).join('');

function json(status: number, v: unknown): { status: number; body: string } {
  return { status, body: v === undefined ? '' : JSON.stringify(v) };
}
const wxErr = (status: number, code: string, message: string) => json(status, { code, message });

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function wechatPayFeeOf(amount: number): number {
  return Math.floor((amount * WX_SANDBOX_FEE_PER_MILLE + 500) / 1000);
}

function billCell(v: string): string {
  return `\`${v.replace(/[,`\r\n]/g, ' ')}`;
}

export async function startWechatPaySandbox(opts: { port?: number; host?: string } = {}): Promise<{ kit: SandboxKit; url: string; config: WechatPayConfig }> {
  const merchant = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const platform = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const ids = {
    appid: `wx${randomBytes(8).toString('hex')}`,
    mchid: `19${digits(8)}`,
    merchantSerialNo: randomBytes(20).toString('hex').toUpperCase(),
    apiV3Key: wxNonce(32),
  };
  const keys: Keys = { merchantPublicPem: merchant.publicKey, platformPrivatePem: platform.privateKey, platformSerial: `PUB_KEY_ID_01${digits(32)}` };
  const bills = new Map<string, Buffer>();
  let baseUrl = '';

  const signHeaders = (body: string): Record<string, string> => {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = wxNonce(32);
    const signature = createSign('RSA-SHA256').update(responseMessage(timestamp, nonce, body)).sign(keys.platformPrivatePem, 'base64');
    return {
      'wechatpay-timestamp': timestamp,
      'wechatpay-nonce': nonce,
      'wechatpay-signature': signature,
      'wechatpay-serial': keys.platformSerial,
      'wechatpay-signature-type': WX_AUTH_SCHEMA,
      'request-id': randomUUID(),
    };
  };
  const signed = (r: { status: number; body: string }): SandboxResponse => ({
    status: r.status,
    headers: { ...(r.body ? { 'content-type': 'application/json' } : {}), ...signHeaders(r.body) },
    body: r.body,
  });

  /** The merchant's Authorization: mchid, serial, timestamp skew and the RSA signature, as WeChat checks them. */
  const authorized = (req: SandboxRequest): boolean => {
    const auth = parseAuthorization(typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined);
    if (!auth || auth.mchid !== ids.mchid || auth.serial_no !== ids.merchantSerialNo || !/^\d{1,12}$/.test(auth.timestamp)) return false;
    if (Math.abs(Date.now() - Number(auth.timestamp) * 1000) > REQUEST_SKEW_MS_MAX) return false;
    const q = req.query.toString();
    const message = requestMessage(req.method, `${req.path}${q ? `?${q}` : ''}`, auth.timestamp, auth.nonce_str, req.raw.toString('utf8'));
    try {
      return createVerify('RSA-SHA256').update(message).verify(keys.merchantPublicPem, auth.signature, 'base64');
    } catch {
      return false;
    }
  };

  const transaction = (o: SandboxOrder): WxTransaction => {
    const paid = o.status === 'succeeded';
    const total = o.paid_amount ?? o.amount;
    return {
      appid: ids.appid,
      mchid: ids.mchid,
      out_trade_no: o.out_trade_no,
      ...(paid && o.trade_no ? { transaction_id: o.trade_no } : {}),
      ...(paid ? { trade_type: o.extra.trade_type as 'NATIVE' | 'MWEB', bank_type: 'OTHERS', success_time: shanghaiRfc3339(o.paid_ms ?? Date.now()), payer: { openid: String(o.extra.openid) } } : {}),
      trade_state: paid ? (o.refunds.length > 0 ? 'REFUND' : 'SUCCESS') : o.status === 'closed' ? 'CLOSED' : 'NOTPAY',
      trade_state_desc: paid ? '支付成功' : o.status === 'closed' ? '订单已关闭' : '订单未支付',
      attach: '',
      amount: { total, payer_total: paid ? total : 0, currency: 'CNY', payer_currency: 'CNY' },
    };
  };

  const refundOf = (o: SandboxOrder, r: SandboxRefund, status: WxRefund['status']): WxRefund => ({
    refund_id: r.refund_id,
    out_refund_no: r.out_refund_no,
    transaction_id: o.trade_no ?? '',
    out_trade_no: o.out_trade_no,
    channel: 'ORIGINAL',
    user_received_account: '支付用户零钱',
    ...(status === 'SUCCESS' ? { success_time: shanghaiRfc3339(r.at_ms) } : {}),
    create_time: shanghaiRfc3339(r.at_ms),
    status,
    funds_account: 'AVAILABLE',
    amount: { total: o.paid_amount ?? o.amount, refund: r.amount, payer_total: o.paid_amount ?? o.amount, payer_refund: r.amount, settlement_refund: r.amount, settlement_total: o.paid_amount ?? o.amount, discount_refund: 0, currency: 'CNY' },
  });

  /** Validates an order request as WeChat does (PARAM_ERROR) and opens it in the book. */
  const openOrder = (req: SandboxRequest, book: OrderBook, kind: 'native' | 'h5') => {
    let b: unknown;
    try {
      b = JSON.parse(req.raw.toString('utf8'));
    } catch {
      return wxErr(400, 'PARAM_ERROR', '请求体不是JSON');
    }
    if (!isRecord(b) || !isRecord(b.amount)) return wxErr(400, 'PARAM_ERROR', '缺少参数 amount');
    if (b.appid !== ids.appid) return wxErr(400, 'APPID_MCHID_NOT_MATCH', 'appid和mch_id不匹配');
    if (b.mchid !== ids.mchid) return wxErr(400, 'MCH_NOT_EXISTS', '商户号不存在');
    const { total, currency } = b.amount;
    if (typeof b.out_trade_no !== 'string' || !WX_TRADE_NO_RE.test(b.out_trade_no)) return wxErr(400, 'PARAM_ERROR', 'out_trade_no 格式错误');
    if (typeof b.description !== 'string' || !b.description || Buffer.byteLength(b.description) > WX_DESCRIPTION_BYTES_MAX) return wxErr(400, 'PARAM_ERROR', 'description 格式错误');
    if (typeof total !== 'number' || !Number.isSafeInteger(total) || total <= 0) return wxErr(400, 'PARAM_ERROR', 'amount.total 必须为正整数（分）');
    if (currency !== undefined && currency !== 'CNY') return wxErr(400, 'PARAM_ERROR', 'amount.currency 仅支持 CNY');
    if (typeof b.notify_url !== 'string' || !/^https?:\/\//.test(b.notify_url)) return wxErr(400, 'PARAM_ERROR', 'notify_url 格式错误');
    const expires = b.time_expire === undefined ? Date.now() + 2 * 3600_000 : parseRfc3339(b.time_expire);
    if (expires === null || !/\+08:00$/.test(String(b.time_expire ?? '+08:00'))) return wxErr(400, 'PARAM_ERROR', 'time_expire 格式错误');
    const scene = isRecord(b.scene_info) ? b.scene_info : null;
    if (kind === 'h5' && (!scene || typeof scene.payer_client_ip !== 'string' || !isRecord(scene.h5_info) || typeof scene.h5_info.type !== 'string')) {
      return wxErr(400, 'PARAM_ERROR', 'scene_info.payer_client_ip / h5_info 必填');
    }
    const existing = book.get(b.out_trade_no);
    if (existing) {
      if (existing.status === 'succeeded') return wxErr(400, 'ORDERPAID', '该订单已支付');
      if (existing.status === 'closed') return wxErr(400, 'ORDER_CLOSED', '订单已关闭');
      if (existing.amount !== total || existing.extra.kind !== kind) return wxErr(400, 'INVALID_REQUEST', '201 商户订单号重复');
    }
    const o = book.open({
      out_trade_no: b.out_trade_no,
      amount: total,
      currency: 'CNY',
      subject: b.description,
      notify_url: b.notify_url,
      expires_ms: expires,
      extra: { kind, trade_type: kind === 'h5' ? 'MWEB' : 'NATIVE', openid: `o${randomBytes(14).toString('base64url')}`, prepay_id: `wx${randomBytes(16).toString('hex')}`, client_ip: scene?.payer_client_ip ?? null },
    });
    if (kind === 'h5') return json(200, { h5_url: `${baseUrl}${H5_PAGE_PATH}?prepay_id=${o.extra.prepay_id}&package=${digits(10)}` });
    return json(200, { code_url: `weixin://wxpay/bizpayurl?pr=${String(o.extra.prepay_id).slice(2, 11)}` });
  };

  /** An order past its time_expire can no longer be paid: WeChat closes it. */
  const expire = (book: OrderBook, o: SandboxOrder) => {
    if (o.status === 'pending' && Date.now() > o.expires_ms) book.close(o.out_trade_no);
  };

  const refund = (req: SandboxRequest, book: OrderBook) => {
    let b: unknown;
    try {
      b = JSON.parse(req.raw.toString('utf8'));
    } catch {
      return wxErr(400, 'PARAM_ERROR', '请求体不是JSON');
    }
    if (!isRecord(b) || !isRecord(b.amount) || typeof b.out_trade_no !== 'string' || typeof b.out_refund_no !== 'string' || !WX_TRADE_NO_RE.test(b.out_refund_no)) {
      return wxErr(400, 'PARAM_ERROR', '缺少参数');
    }
    const { refund: amount, total, currency } = b.amount;
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0 || typeof total !== 'number' || currency !== 'CNY') return wxErr(400, 'PARAM_ERROR', 'amount 格式错误');
    const o = book.get(b.out_trade_no);
    if (!o) return wxErr(404, 'RESOURCE_NOT_EXISTS', '订单不存在');
    if (total !== (o.paid_amount ?? o.amount)) return wxErr(400, 'PARAM_ERROR', '订单金额与原订单不一致');
    const r = book.refund(o.out_trade_no, b.out_refund_no, amount);
    if (r === 'unknown') return wxErr(404, 'RESOURCE_NOT_EXISTS', '订单不存在');
    if (r === 'not_paid') return wxErr(400, 'INVALID_REQUEST', '订单未支付');
    if (r === 'too_much') return wxErr(400, 'INVALID_REQUEST', '申请退款金额超过订单可退金额');
    // WeChat answers a new refund PROCESSING; the REFUND.SUCCESS callback carries the outcome.
    return json(200, refundOf(o, r, 'PROCESSING'));
  };

  const billText = (book: OrderBook, day: string): Buffer | null => {
    const lines = book.bill(day);
    if (lines.length === 0) return null;
    const rows: string[] = [];
    let paid = 0;
    let refunded = 0;
    let fees = 0;
    for (const l of lines) {
      const o = l.order;
      const total = o.paid_amount ?? o.amount;
      const r = l.refund;
      fees += l.fee;
      if (r) refunded += r.amount;
      else paid += total;
      rows.push(
        [
          formatShanghaiDateTime(l.at_ms), ids.appid, ids.mchid, '0', '', o.trade_no ?? '', o.out_trade_no, String(o.extra.openid), String(o.extra.trade_type), r ? 'REFUND' : 'SUCCESS',
          'OTHERS', 'CNY', fenToYuan(r ? 0 : total), '0.00', r ? r.refund_id : '0', r ? r.out_refund_no : '0', fenToYuan(r ? r.amount : 0), '0.00', r ? 'ORIGINAL' : '', r ? 'SUCCESS' : '',
          o.subject, '', fenToYuan(l.fee, 5), '0.60%', fenToYuan(r ? 0 : total), fenToYuan(r ? r.amount : 0), '',
        ].map(billCell).join(','),
      );
    }
    const summary = [String(lines.length), fenToYuan(paid), fenToYuan(refunded), '0.00', fenToYuan(fees, 5), fenToYuan(paid), fenToYuan(refunded)].map(billCell).join(',');
    return Buffer.from(`\uFEFF${WX_BILL_HEADER.join(',')}\r\n${rows.map((r) => `${r}\r\n`).join('')}${WX_BILL_SUMMARY_HEADER.join(',')}\r\n${summary}\r\n`, 'utf8');
  };

  const spec: SandboxSpec = {
    channel: 'wechat_pay',

    async handle(req, book) {
      if (req.method === 'GET' && req.path === H5_PAGE_PATH) {
        return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: '<!doctype html><title>微信支付 sandbox</title><p>H5 cashier (sandbox): pay with POST /__sandbox/pay.</p>' };
      }
      if (!req.path.startsWith('/v3/')) return null;
      if (!authorized(req)) return signed(wxErr(401, 'SIGN_ERROR', '签名错误'));
      if (req.method === 'POST' && req.path === WX_PATH_NATIVE) return signed(openOrder(req, book, 'native'));
      if (req.method === 'POST' && req.path === WX_PATH_H5) return signed(openOrder(req, book, 'h5'));
      if (req.method === 'POST' && req.path === WX_PATH_REFUNDS) return signed(refund(req, book));
      const close = /^\/v3\/pay\/transactions\/out-trade-no\/([^/]+)\/close$/.exec(req.path);
      if (req.method === 'POST' && close) {
        let b: unknown = null;
        try {
          b = JSON.parse(req.raw.toString('utf8'));
        } catch {
          b = null;
        }
        if (!isRecord(b) || b.mchid !== ids.mchid) return signed(wxErr(400, 'PARAM_ERROR', 'mchid 不正确'));
        const outcome = book.close(decodeURIComponent(close[1]!));
        if (outcome === 'paid') return signed(wxErr(400, 'ORDERPAID', '订单已支付'));
        if (outcome === 'unknown') return signed(wxErr(404, 'ORDER_NOT_EXIST', '订单不存在'));
        return signed(json(204, undefined));
      }
      const query = /^\/v3\/pay\/transactions\/out-trade-no\/([^/]+)$/.exec(req.path);
      if (req.method === 'GET' && query) {
        if (req.query.get('mchid') !== ids.mchid) return signed(wxErr(400, 'PARAM_ERROR', 'mchid 不正确'));
        const o = book.get(decodeURIComponent(query[1]!));
        if (!o) return signed(wxErr(404, 'ORDER_NOT_EXIST', '订单不存在'));
        expire(book, o);
        return signed(json(200, transaction(o)));
      }
      if (req.method === 'GET' && req.path === WX_PATH_TRADEBILL) {
        const day = req.query.get('bill_date') ?? '';
        if (!/^\d{4}-\d\d-\d\d$/.test(day)) return signed(wxErr(400, 'PARAM_ERROR', 'bill_date 格式错误'));
        const text = billText(book, day);
        if (!text) return signed(wxErr(400, 'NO_STATEMENT_EXIST', '账单文件不存在'));
        if (bills.size >= BILLS_KEPT_MAX) bills.delete(bills.keys().next().value!);
        const token = randomBytes(12).toString('base64url');
        bills.set(token, text);
        return signed(json(200, { hash_type: 'SHA1', hash_value: createHash('sha1').update(text).digest('hex'), download_url: `${baseUrl}${WX_PATH_BILLDOWNLOAD}?token=${token}` }));
      }
      if (req.method === 'GET' && req.path === WX_PATH_BILLDOWNLOAD) {
        const text = bills.get(req.query.get('token') ?? '');
        if (!text) return signed(wxErr(400, 'PARAM_ERROR', 'token 无效'));
        // WeChat does not sign the file itself; the signed tradebill answer carries its SHA1.
        return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: text };
      }
      return signed(wxErr(404, 'NOT_FOUND', '请求的资源不存在'));
    },

    systemError() {
      return signed(wxErr(500, 'SYSTEM_ERROR', '系统错误'));
    },

    async callback(order, refund) {
      const resource: WxTransaction | WxRefundResource = refund
        ? {
            mchid: ids.mchid,
            out_trade_no: order.out_trade_no,
            transaction_id: order.trade_no ?? '',
            out_refund_no: refund.out_refund_no,
            refund_id: refund.refund_id,
            refund_status: 'SUCCESS',
            success_time: shanghaiRfc3339(refund.at_ms),
            user_received_account: '支付用户零钱',
            amount: { total: order.paid_amount ?? order.amount, refund: refund.amount, payer_total: order.paid_amount ?? order.amount, payer_refund: refund.amount },
          }
        : { ...transaction(order), trade_state: 'SUCCESS', trade_state_desc: '支付成功' };
      const originalType = refund ? 'refund' : 'transaction';
      const nonce = wxNonce(12);
      const envelope: WxNotifyEnvelope = {
        id: randomUUID(),
        create_time: shanghaiRfc3339(Date.now()),
        resource_type: 'encrypt-resource',
        event_type: refund ? 'REFUND.SUCCESS' : 'TRANSACTION.SUCCESS',
        summary: refund ? '退款成功' : '支付成功',
        resource: { original_type: originalType, algorithm: 'AEAD_AES_256_GCM', ciphertext: aesGcmEncrypt(JSON.stringify(resource), ids.apiV3Key, nonce, originalType), associated_data: originalType, nonce },
      };
      const body = JSON.stringify(envelope);
      return { url: order.notify_url, headers: { 'content-type': 'application/json', ...signHeaders(body) }, body };
    },

    feeOf: wechatPayFeeOf,
  };

  const kit = new SandboxKit(spec);
  baseUrl = await kit.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  const config: WechatPayConfig = {
    baseUrl,
    ...ids,
    merchantPrivateKeyPem: merchant.privateKey,
    platformPublicKeys: { [keys.platformSerial]: platform.publicKey },
  };
  return { kit, url: baseUrl, config };
}
