// The Alipay adapter: openapi gateway (OpenAPI 2.0), RSA2 request signatures, signed JSON
// answers verified over the raw response node, form notifications (notify.ts), trade bills.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type {
  BillLine,
  ChannelAdapter,
  ChannelCrypto,
  ChannelOrder,
  ChannelOrderRequest,
  ChannelOrderState,
  ChannelRefundRequest,
  ChannelRefundState,
  RawHeaders,
} from '../types.ts';
import { CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT, ChannelError, NOTIFY_WINDOW_MS } from '../types.ts';
import { alipayNotifyAnswer, verifyAlipayNotify } from './notify.ts';
import {
  ALIPAY_CURRENCY,
  billCsvText,
  createMethodFor,
  fenToYuan,
  fromShanghaiTime,
  isAlipayBillError,
  isTradeStatus,
  mapTradeStatus,
  parseTradeBill,
  REQUEST_SIGN_EXCLUDED,
  responseKey,
  signContent,
  toCreateBiz,
  toShanghaiTime,
  topLevelRawValues,
  yuanToFen,
} from './transformers.ts';
import type {
  AlipayBillResponse,
  AlipayCloseResponse,
  AlipayMethod,
  AlipayPrecreateResponse,
  AlipayQueryResponse,
  AlipayRefundQueryResponse,
  AlipayRefundResponse,
  AlipayResponseBase,
} from './wire.ts';

/** Plain JSON, loadable from a file or the environment. */
export type AlipayConfig = {
  /** https://openapi.alipay.com/gateway.do in production; the sandbox's /gateway.do locally. */
  gatewayUrl: string;
  appId: string;
  /** The app's RSA private key (应用私钥): PEM (PKCS#8 or PKCS#1) or Alipay's bare base64. */
  appPrivateKeyPem: string;
  /** Alipay's public key (支付宝公钥) for answers and notifications: PEM or bare base64. */
  alipayPublicKeyPem: string;
  /** notify_time window; NOTIFY_WINDOW_MS when absent. */
  notifyWindowMs?: number;
};

export type AlipayDeps = { crypto: ChannelCrypto; fetch?: typeof fetch; timeoutMs?: number };

/** The largest answer or bill we read (a day's bill of a busy app is a few MB). */
export const ALIPAY_RESPONSE_BYTES_MAX = 64 * 1024 * 1024;

/** Sub-codes that mean Alipay itself failed: worth a retry elsewhere, not a rejection. */
const SYSTEM_SUB_CODES = new Set(['ACQ.SYSTEM_ERROR', 'isp.unknow-error', 'aop.ACQ.SYSTEM_ERROR']);

/** Alipay hands keys out as bare base64; accept those as well as PEM. */
export function normalizePrivateKey(key: string): string {
  if (key.includes('-----BEGIN')) return createPrivateKey(key).export({ type: 'pkcs8', format: 'pem' }) as string;
  const der = Buffer.from(key.replace(/\s+/g, ''), 'base64');
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  } catch {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs1' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  }
}

export function normalizePublicKey(key: string): string {
  if (key.includes('-----BEGIN')) return createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
  return createPublicKey({ key: Buffer.from(key.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }) as string;
}

type Node<T> = T & AlipayResponseBase;

export function createAlipayAdapter(config: AlipayConfig, deps: AlipayDeps): ChannelAdapter {
  const doFetch = deps.fetch ?? fetch;
  const timeoutMs = deps.timeoutMs ?? CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT;
  let appKey: string;
  let alipayKey: string;
  try {
    appKey = normalizePrivateKey(config.appPrivateKeyPem);
    alipayKey = normalizePublicKey(config.alipayPublicKeyPem);
  } catch (err) {
    // The key's text never goes into the message.
    throw new Error('alipay config: appPrivateKeyPem or alipayPublicKeyPem is not a valid RSA key', { cause: (err as Error).name });
  }
  const notifyKeys = { appId: config.appId, alipayPublicKeyPem: alipayKey, windowMs: config.notifyWindowMs ?? NOTIFY_WINDOW_MS };

  /** The signed parameters of one gateway call. */
  async function signedParams(method: AlipayMethod, biz: object, extra: Record<string, string> = {}): Promise<Record<string, string>> {
    const params: Record<string, string> = {
      app_id: config.appId,
      method,
      format: 'JSON',
      charset: 'utf-8',
      sign_type: 'RSA2',
      timestamp: toShanghaiTime(Date.now()),
      version: '1.0',
      ...extra,
      biz_content: JSON.stringify(biz),
    };
    params.sign = await deps.crypto.rsaSign(appKey, signContent(params, REQUEST_SIGN_EXCLUDED));
    return params;
  }

  async function httpBytes(url: string, init: RequestInit, what: string): Promise<Buffer> {
    let res: Response;
    try {
      res = await doFetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') throw new ChannelError('alipay', 'timeout', `${what}: no answer within ${timeoutMs} ms`, { cause: err });
      throw new ChannelError('alipay', 'unavailable', `${what}: ${(err as Error).message}`, { cause: err });
    }
    let buf: Buffer;
    try {
      buf = Buffer.from(await res.arrayBuffer());
      if (buf.length > ALIPAY_RESPONSE_BYTES_MAX) throw new ChannelError('alipay', 'bad_response', `${what}: answer over ${ALIPAY_RESPONSE_BYTES_MAX} bytes`);
    } catch (err) {
      if (err instanceof ChannelError) throw err;
      const name = (err as Error).name;
      throw new ChannelError('alipay', name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'unavailable', `${what}: answer cut off`, { cause: err });
    }
    if (res.status >= 500) throw new ChannelError('alipay', 'unavailable', `${what}: HTTP ${res.status}`);
    if (res.status !== 200) throw new ChannelError('alipay', 'rejected', `${what}: HTTP ${res.status}`);
    return buf;
  }

  /**
   * One gateway call. Returns the method's response node once its signature verified; a system
   * failure throws 'unavailable'; business codes are left to the caller, which knows which of
   * them mean "not found" or "already paid".
   */
  async function call<T>(method: AlipayMethod, biz: object, extra: Record<string, string> = {}): Promise<Node<T>> {
    const params = await signedParams(method, biz, extra);
    const text = (await httpBytes(config.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded;charset=utf-8', accept: 'application/json' },
      body: new URLSearchParams(params).toString(),
    }, method)).toString('utf8');
    const values = topLevelRawValues(text);
    if (!values) throw new ChannelError('alipay', 'bad_response', `${method}: answer is not a JSON object`);
    const nodeText = values.get(responseKey(method));
    if (nodeText === undefined) {
      // A gateway-level error (error_response) is unsigned; it can only ever fail the call.
      const err = values.get('error_response');
      if (err === undefined) throw new ChannelError('alipay', 'bad_response', `${method}: no ${responseKey(method)} in the answer`);
      const node = JSON.parse(err) as AlipayResponseBase;
      throw failure(method, node);
    }
    const signText = values.get('sign');
    const sign = signText === undefined ? null : (JSON.parse(signText) as unknown);
    if (typeof sign !== 'string' || !(await deps.crypto.rsaVerify(alipayKey, nodeText, sign))) {
      throw new ChannelError('alipay', 'bad_response', `${method}: answer signature does not verify`);
    }
    const node = JSON.parse(nodeText) as Node<T>;
    if (typeof node !== 'object' || node === null || typeof node.code !== 'string') throw new ChannelError('alipay', 'bad_response', `${method}: answer without code`);
    if (node.code === '20000' || (node.sub_code !== undefined && SYSTEM_SUB_CODES.has(node.sub_code))) throw failure(method, node);
    return node;
  }

  function failure(method: string, node: AlipayResponseBase): ChannelError {
    const channelCode = node.sub_code ?? node.code;
    const code = node.code === '20000' || (node.sub_code !== undefined && SYSTEM_SUB_CODES.has(node.sub_code)) ? 'unavailable' : 'rejected';
    return new ChannelError('alipay', code, `${method}: ${node.code} ${node.msg}${node.sub_code ? ` ${node.sub_code} ${node.sub_msg ?? ''}` : ''}`, { channelCode });
  }

  const amountOf = (yuan: string | undefined, what: string): number => {
    const fen = yuan === undefined ? null : yuanToFen(yuan);
    if (fen === null) throw new ChannelError('alipay', 'bad_response', `${what}: amount ${yuan ?? '(none)'} is not yuan`);
    return fen;
  };

  async function query(outTradeNo: string): Promise<ChannelOrderState> {
    const node = await call<AlipayQueryResponse>('alipay.trade.query', { out_trade_no: outTradeNo });
    if (node.code !== '10000') {
      if (node.sub_code === 'ACQ.TRADE_NOT_EXIST') throw new ChannelError('alipay', 'not_found', `alipay.trade.query: no trade ${outTradeNo}`, { channelCode: node.sub_code });
      throw failure('alipay.trade.query', node);
    }
    const ts = node.trade_status;
    if (ts === undefined || !isTradeStatus(ts)) throw new ChannelError('alipay', 'bad_response', `alipay.trade.query: trade_status ${String(ts)}`);
    const status = mapTradeStatus(ts);
    return {
      out_trade_no: outTradeNo,
      status,
      amount: amountOf(node.total_amount, 'alipay.trade.query'),
      currency: ALIPAY_CURRENCY,
      channel_trade_no: node.trade_no ?? null,
      paid_at_ms: status === 'succeeded' && node.send_pay_date ? fromShanghaiTime(node.send_pay_date) : null,
    };
  }

  return {
    name: 'alipay',

    async createOrder(req: ChannelOrderRequest): Promise<ChannelOrder> {
      const biz = toCreateBiz(req);
      const method = createMethodFor(req.scene);
      if (method === 'alipay.trade.wap.pay') {
        // A page method: the buyer's browser opens the signed gateway URL, and Alipay opens the
        // trade then. Nothing is sent from here; time_expire bounds when that page can be paid.
        const extra: Record<string, string> = { notify_url: req.notify_url };
        if (req.return_url) extra.return_url = req.return_url;
        const params = await signedParams(method, biz, extra);
        const url = new URL(config.gatewayUrl);
        for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
        return { channel_order_id: null, next_action: { type: 'redirect', url: url.toString() } };
      }
      const node = await call<AlipayPrecreateResponse>(method, biz, { notify_url: req.notify_url });
      if (node.code !== '10000') throw failure(method, node);
      if (!node.qr_code) throw new ChannelError('alipay', 'bad_response', `${method}: no qr_code`);
      return { channel_order_id: null, next_action: { type: 'qr_code', code_url: node.qr_code } };
    },

    queryOrder: query,

    async closeOrder(outTradeNo: string): Promise<void> {
      const node = await call<AlipayCloseResponse>('alipay.trade.close', { out_trade_no: outTradeNo });
      if (node.code === '10000' || node.sub_code === 'ACQ.TRADE_NOT_EXIST') return;
      if (node.sub_code === 'ACQ.TRADE_HAS_SUCCESS') throw new ChannelError('alipay', 'order_paid', `alipay.trade.close: ${outTradeNo} is paid`, { channelCode: node.sub_code });
      if (node.sub_code === 'ACQ.TRADE_STATUS_ERROR') {
        // Alipay answers this both for a paid trade and for one already closed: ask which.
        const state = await query(outTradeNo);
        if (state.status === 'closed') return;
        if (state.status === 'succeeded') throw new ChannelError('alipay', 'order_paid', `alipay.trade.close: ${outTradeNo} is paid`, { channelCode: node.sub_code });
      }
      throw failure('alipay.trade.close', node);
    },

    async refund(req: ChannelRefundRequest): Promise<ChannelRefundState> {
      if (req.currency !== ALIPAY_CURRENCY) throw new ChannelError('alipay', 'rejected', `alipay refunds ${ALIPAY_CURRENCY} only`);
      const biz: Record<string, string> = { out_trade_no: req.out_trade_no, refund_amount: fenToYuan(req.amount), out_request_no: req.out_refund_no };
      if (req.reason) biz.refund_reason = req.reason;
      const node = await call<AlipayRefundResponse>('alipay.trade.refund', biz);
      if (node.code !== '10000') {
        if (node.sub_code === 'ACQ.TRADE_NOT_EXIST') throw new ChannelError('alipay', 'not_found', `alipay.trade.refund: no trade ${req.out_trade_no}`, { channelCode: node.sub_code });
        throw failure('alipay.trade.refund', node);
      }
      const base = { out_refund_no: req.out_refund_no, channel_refund_id: null, amount: req.amount };
      if (node.fund_change === 'Y') return { ...base, status: 'succeeded' };
      // fund_change N: this call moved no money, e.g. a retry of a refund already made. Only the
      // refund query says whether that refund went through.
      const q = await call<AlipayRefundQueryResponse>('alipay.trade.fastpay.refund.query', { out_trade_no: req.out_trade_no, out_request_no: req.out_refund_no });
      if (q.code !== '10000') throw failure('alipay.trade.fastpay.refund.query', q);
      return { ...base, status: q.refund_status === 'REFUND_SUCCESS' ? 'succeeded' : 'pending' };
    },

    verifyNotify(raw: Buffer, headers: RawHeaders, nowMs: number) {
      return verifyAlipayNotify(raw, headers, nowMs, notifyKeys, deps.crypto);
    },

    notifyAnswer: alipayNotifyAnswer,

    async downloadBill(day: string): Promise<BillLine[]> {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new ChannelError('alipay', 'rejected', `bill day ${day} is not YYYY-MM-DD`);
      const method = 'alipay.data.dataservice.bill.downloadurl.query';
      const node = await call<AlipayBillResponse>(method, { bill_type: 'trade', bill_date: day });
      if (node.code !== '10000') {
        if (node.sub_code === 'isp.bill_not_exist') return [];
        throw failure(method, node);
      }
      if (!node.bill_download_url) throw new ChannelError('alipay', 'bad_response', `${method}: no bill_download_url`);
      const file = await httpBytes(node.bill_download_url, { method: 'GET' }, 'bill download');
      try {
        return parseTradeBill(billCsvText(file));
      } catch (err) {
        if (isAlipayBillError(err)) throw new ChannelError('alipay', 'bad_response', err.message, { cause: err });
        throw err;
      }
    },
  };
}
