// WeChat Pay API v3 adapter: HTTP plumbing, request signing (SHA256withRSA over
// METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n with the merchant API key), verification of every answer's
// Wechatpay-* signature with the platform key, and error mapping. Pure mapping is in transformers.ts.
import { createHash } from 'node:crypto';
import {
  CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT,
  ChannelError,
  isChannelNotifyError,
  type BillLine,
  type ChannelAdapter,
  type ChannelCrypto,
  type ChannelErrorCode,
  type ChannelOrder,
  type ChannelOrderRequest,
  type ChannelOrderState,
  type ChannelRefundRequest,
  type ChannelRefundState,
  type RawHeaders,
} from '../types.ts';
import { verifyWechatPayNotify, verifyWechatpaySignature, wechatPayNotifyAnswer } from './notify.ts';
import { authorizationHeader, requestMessage, wxNonce, WX_APIV3_KEY_BYTES } from './sign.ts';
import { assertTradeNo, parseTradeBill, refundToState, toH5Request, toNativeRequest, toWxAmount, transactionToState, wxApiForScene } from './transformers.ts';
import {
  WX_PATH_H5,
  WX_PATH_NATIVE,
  WX_PATH_REFUNDS,
  WX_PATH_TRADEBILL,
  wxPathClose,
  wxPathQuery,
  type WxError,
  type WxH5Response,
  type WxNativeResponse,
  type WxRefund,
  type WxRefundRequest,
  type WxTradeBillResponse,
  type WxTransaction,
} from './wire.ts';

/** Plain JSON, loadable from a file or the environment. */
export type WechatPayConfig = {
  /** https://api.mch.weixin.qq.com (or api2.… the backup domain), or a sandbox URL. */
  baseUrl: string;
  appid: string;
  mchid: string;
  /** Serial number of the merchant API certificate (商户API证书序列号). */
  merchantSerialNo: string;
  /** The merchant API private key (apiclient_key.pem), PKCS#8 PEM. */
  merchantPrivateKeyPem: string;
  /** The APIv3 key: 32 characters, decrypts callbacks. */
  apiV3Key: string;
  /** Wechatpay-Serial → PEM: platform certificates by serial, or the 微信支付公钥 by its PUB_KEY_ID_… id. */
  platformPublicKeys: Record<string, string>;
};

export type WechatPayDeps = { crypto: ChannelCrypto; fetch?: typeof fetch; timeoutMs?: number };

/** A bill larger than this is refused rather than buffered (a day of a big merchant is ~100 MB). */
export const WX_BILL_BYTES_MAX = 256 * 1024 * 1024;

type WxResult = { status: number; body: string; json: unknown };

function wxCodeToError(status: number, code: string | null): ChannelErrorCode {
  switch (code) {
    case 'SYSTEM_ERROR':
    case 'SYSTEMERROR':
    case 'FREQUENCY_LIMITED':
    case 'BANK_ERROR':
      return 'unavailable';
    case 'ORDERPAID':
      return 'order_paid';
    case 'ORDER_NOT_EXIST':
    case 'ORDERNOTEXIST':
    case 'RESOURCE_NOT_EXISTS':
    case 'NO_STATEMENT_EXIST':
      return 'not_found';
    default:
      return status >= 500 || status === 429 ? 'unavailable' : 'rejected';
  }
}

export function createWechatPayAdapter(config: WechatPayConfig, deps: WechatPayDeps): ChannelAdapter {
  if (Buffer.byteLength(config.apiV3Key) !== WX_APIV3_KEY_BYTES) throw new Error('wechat_pay config: apiV3Key must be 32 bytes');
  if (Object.keys(config.platformPublicKeys).length === 0) throw new Error('wechat_pay config: platformPublicKeys is empty');
  const doFetch = deps.fetch ?? fetch;
  const timeoutMs = deps.timeoutMs ?? CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT;
  const base = config.baseUrl.replace(/\/+$/, '');
  const err = (code: ChannelErrorCode, message: string, opts: { cause?: unknown; channelCode?: string | null } = {}) =>
    new ChannelError('wechat_pay', code, message, opts);

  async function send(method: 'GET' | 'POST', url: URL, body: string): Promise<Response> {
    const pathWithQuery = `${url.pathname}${url.search}`;
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = wxNonce();
    const signature = await deps.crypto.rsaSign(config.merchantPrivateKeyPem, requestMessage(method, pathWithQuery, timestamp, nonce, body));
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': 'peakpay/wechat_pay',
      authorization: authorizationHeader({ mchid: config.mchid, nonce_str: nonce, signature, timestamp, serial_no: config.merchantSerialNo }),
    };
    if (body) headers['content-type'] = 'application/json';
    try {
      return await doFetch(url, { method, headers, body: body || undefined, signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      const name = (e as Error)?.name;
      if (name === 'TimeoutError' || name === 'AbortError') throw err('timeout', `no answer within ${timeoutMs} ms`, { cause: e });
      throw err('unavailable', 'connection failed', { cause: e });
    }
  }

  /** One signed API call; the answer's signature is verified before its body is believed. */
  async function call(method: 'GET' | 'POST', pathWithQuery: string, payload?: unknown): Promise<WxResult> {
    const body = payload === undefined ? '' : JSON.stringify(payload);
    const res = await send(method, new URL(base + pathWithQuery), body);
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw err('unavailable', 'answer cut off', { cause: e });
    }
    let json: unknown = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    const code = typeof (json as WxError | null)?.code === 'string' ? (json as WxError).code : null;
    // 5xx may come from a gateway in front of WeChat, unsigned: it only ever makes us retry.
    if (res.status >= 500) throw err('unavailable', `HTTP ${res.status}`, { channelCode: code });
    const headers: RawHeaders = Object.fromEntries(res.headers);
    try {
      await verifyWechatpaySignature(text, headers, Date.now(), config.platformPublicKeys, deps.crypto);
    } catch (e) {
      if (isChannelNotifyError(e)) throw err('bad_response', `answer signature: ${e.message}`, { cause: e });
      throw e;
    }
    if (res.status >= 400) {
      const message = typeof (json as WxError | null)?.message === 'string' ? (json as WxError).message.slice(0, 200) : `HTTP ${res.status}`;
      throw err(wxCodeToError(res.status, code), message, { channelCode: code });
    }
    if (text && json === null) throw err('bad_response', 'answer is not JSON');
    return { status: res.status, body: text, json };
  }

  const expectObject = <T>(r: WxResult, what: string): T => {
    if (typeof r.json !== 'object' || r.json === null) throw err('bad_response', `${what}: empty answer`);
    return r.json as T;
  };

  return {
    name: 'wechat_pay',

    async createOrder(req: ChannelOrderRequest): Promise<ChannelOrder> {
      const ids = { appid: config.appid, mchid: config.mchid };
      if (wxApiForScene(req.scene) === 'h5') {
        const r = expectObject<WxH5Response>(await call('POST', WX_PATH_H5, toH5Request(req, ids)), 'h5');
        if (typeof r.h5_url !== 'string' || !r.h5_url) throw err('bad_response', 'h5_url missing');
        const prepay = /[?&]prepay_id=([^&]+)/.exec(r.h5_url)?.[1] ?? null;
        return { channel_order_id: prepay ? decodeURIComponent(prepay) : null, next_action: { type: 'redirect', url: r.h5_url } };
      }
      const r = expectObject<WxNativeResponse>(await call('POST', WX_PATH_NATIVE, toNativeRequest(req, ids)), 'native');
      if (typeof r.code_url !== 'string' || !r.code_url) throw err('bad_response', 'code_url missing');
      return { channel_order_id: null, next_action: { type: 'qr_code', code_url: r.code_url } };
    },

    async queryOrder(outTradeNo: string): Promise<ChannelOrderState> {
      assertTradeNo(outTradeNo, 'out_trade_no');
      const t = expectObject<WxTransaction>(await call('GET', wxPathQuery(outTradeNo, config.mchid)), 'query');
      if (t.out_trade_no !== outTradeNo || t.mchid !== config.mchid) throw err('bad_response', 'answer is about another order');
      return transactionToState(t);
    },

    async closeOrder(outTradeNo: string): Promise<void> {
      assertTradeNo(outTradeNo, 'out_trade_no');
      try {
        await call('POST', wxPathClose(outTradeNo), { mchid: config.mchid });
      } catch (e) {
        // Closing an order WeChat does not know, or one already closed, leaves it closed.
        if (e instanceof ChannelError && (e.code === 'not_found' || e.channelCode === 'ORDER_CLOSED')) return;
        throw e;
      }
    },

    async refund(req: ChannelRefundRequest): Promise<ChannelRefundState> {
      assertTradeNo(req.out_trade_no, 'out_trade_no');
      assertTradeNo(req.out_refund_no, 'out_refund_no');
      const amount = toWxAmount(req.amount, req.currency);
      const total = toWxAmount(req.total_amount, req.currency);
      if (amount.total > total.total) throw err('rejected', 'refund larger than the order');
      const body: WxRefundRequest = {
        out_trade_no: req.out_trade_no,
        out_refund_no: req.out_refund_no,
        ...(req.reason ? { reason: req.reason.slice(0, 80) } : {}),
        notify_url: req.notify_url,
        amount: { refund: amount.total, total: total.total, currency: 'CNY' },
      };
      const r = expectObject<WxRefund>(await call('POST', WX_PATH_REFUNDS, body), 'refund');
      if (r.out_refund_no !== req.out_refund_no) throw err('bad_response', 'answer is about another refund');
      return refundToState(r);
    },

    async verifyNotify(raw: Buffer, headers: RawHeaders, nowMs: number) {
      return verifyWechatPayNotify(raw, headers, nowMs, config, deps.crypto);
    },

    notifyAnswer: wechatPayNotifyAnswer,

    async downloadBill(day: string): Promise<BillLine[]> {
      if (!/^\d{4}-\d\d-\d\d$/.test(day)) throw err('rejected', 'day must be YYYY-MM-DD');
      let meta: WxTradeBillResponse;
      try {
        meta = expectObject<WxTradeBillResponse>(await call('GET', `${WX_PATH_TRADEBILL}?bill_date=${day}&bill_type=ALL`), 'tradebill');
      } catch (e) {
        // WeChat has no bill for a day without transactions (NO_STATEMENT_EXIST): an empty day.
        if (e instanceof ChannelError && e.channelCode === 'NO_STATEMENT_EXIST') return [];
        throw e;
      }
      if (typeof meta.download_url !== 'string' || typeof meta.hash_value !== 'string') throw err('bad_response', 'download_url/hash_value missing');
      let url: URL;
      try {
        url = new URL(meta.download_url);
      } catch (e) {
        throw err('bad_response', 'download_url is not a URL', { cause: e });
      }
      // The download answer is not signed: the SHA1 in the signed tradebill answer vouches for it.
      const res = await send('GET', url, '');
      if (res.status >= 500) throw err('unavailable', `bill download HTTP ${res.status}`);
      if (res.status >= 400) throw err('rejected', `bill download HTTP ${res.status}`);
      const declared = Number(res.headers.get('content-length') ?? '0');
      if (declared > WX_BILL_BYTES_MAX) throw err('bad_response', 'bill too large');
      const bytes = Buffer.from(await res.arrayBuffer());
      if (bytes.length > WX_BILL_BYTES_MAX) throw err('bad_response', 'bill too large');
      const sha1 = createHash('sha1').update(bytes).digest('hex');
      if (sha1 !== meta.hash_value.toLowerCase()) throw err('bad_response', 'bill does not match its hash_value');
      return parseTradeBill(bytes.toString('utf8'));
    },
  };
}
