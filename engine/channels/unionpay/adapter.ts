// UnionPay 5.1.0 adapter (网关支付 for pc, 云闪付 QR for app/h5/mini_program): signs every request
// with the merchant's key (certId names its certificate), verifies every synchronous answer with the
// signPubKeyCert it carries (chained to the configured UnionPay root and middle certificates), and
// maps response codes. Pure mapping is in transformers.ts.
//
// txnTime: UnionPay names a transaction by merId + orderId + txnTime, and our ids carry no time, so
// createOrder picks txnTime and returns it in channel_order_id (`<orderId>@<txnTime>`); the engine
// passes that back to queryOrder/closeOrder (and, where it can, to refund as channel_order_id).
import {
  CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT,
  NOTIFY_WINDOW_MS,
  ChannelError,
  type BillLine,
  type ChannelAdapter,
  type ChannelCrypto,
  type ChannelErrorCode,
  type ChannelOrder,
  type ChannelOrderRequest,
  type ChannelOrderState,
  type ChannelRefundRequest,
  type ChannelRefundState,
} from '../types.ts';
import { unionPayNotifyAnswer, verifyUnionPayNotify, UP_NOTIFY_TXN_AGE_MAX_MS_DEFAULT } from './notify.ts';
import { encodeForm, parseAnswer, signParams, UpCertVerifier, verifyParams } from './sign.ts';
import {
  decodeFileContent,
  outcomeOf,
  parseZmFile,
  queryAnswerToState,
  toConsumeRequest,
  toFileRequest,
  toQueryRequest,
  toRefundRequest,
  toUpChannelOrderId,
  toUpOrderId,
  txnTimeMsOfChannelOrderId,
  upApiForScene,
  upRequestErrorCode,
  upTxnTimeMs,
  UP_CHANNEL_ORDER_ID_NEEDED,
} from './transformers.ts';
import { UP_PATH_BACK, UP_PATH_FRONT, UP_PATH_QUERY } from './wire.ts';

/** Plain JSON, loadable from a file or the environment. */
export type UnionPayConfig = {
  /** https://gateway.95516.com (production), https://gateway.test.95516.com, or a sandbox URL. */
  gatewayUrl: string;
  /** https://filedownload.95516.com/ (file transfer has its own host). */
  fileDownloadUrl: string;
  /** 商户代码, 15 characters. */
  merId: string;
  /** certId: serial number (decimal) of the merchant's signing certificate (from its .pfx). */
  certId: string;
  /** The merchant signing key, PKCS#8 PEM (exported from the .pfx). */
  merchantPrivateKeyPem: string;
  /** UnionPay's root and middle CA certificates (acp_prod_root.cer, acp_prod_middle.cer). */
  rootCertPem: string;
  middleCertPem: string;
  /** Third @-field of the signing certificate's CN: "中国银联股份有限公司" in production, "00040000:SIGN" in UnionPay's test environment. */
  signCertCompany: string;
  /** Oldest txnTime a notification may carry (see notify.ts); payTimeout is clamped to fit. Default 2 h. */
  notifyTxnAgeMaxMs?: number;
};

export type UnionPayDeps = { crypto: ChannelCrypto; fetch?: typeof fetch; timeoutMs?: number };

/**
 * A refund request that may carry the channel_order_id createOrder returned for the payment: the
 * refund finds the paid consume's queryId by a query, and a query needs the consume's txnTime.
 * The change to the contract we propose is this field on ChannelRefundRequest (as PayPal's).
 */
export type UnionPayRefundRequest = ChannelRefundRequest & { channel_order_id?: string | null };

export type UnionPayAdapter = ChannelAdapter & { refund(req: UnionPayRefundRequest): Promise<ChannelRefundState> };

/** Our ids whose txnTime this process chose, so a retry resends the same transaction (a bounded memo, oldest forgotten first). */
export const UP_TXN_TIMES_REMEMBERED_MAX = 100_000;

/**
 * Our id (out_trade_no or out_refund_no) → the txnTime (ms) this process sent it with. A retried
 * create or refund reuses it: with the same orderId, another txnTime would be another transaction
 * to UnionPay (refused as a duplicate, respCode 12, on the same day; a second one on another day).
 * It lives in memory only: after a restart a retry gets a new txnTime (docs/CHANNELS.md).
 */
export class UpTxnTimes {
  private readonly max: number;
  private readonly byId = new Map<string, number>();

  constructor(max = UP_TXN_TIMES_REMEMBERED_MAX) {
    this.max = max;
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): number | undefined {
    return this.byId.get(id);
  }

  /** The txnTime remembered for `id`, or `nowMs` (to the second), now remembered. */
  pick(id: string, nowMs: number): number {
    const known = this.byId.get(id);
    if (known !== undefined) return known;
    if (this.byId.size >= this.max) this.byId.delete(this.byId.keys().next().value as string);
    const t = upTxnTimeMs(nowMs);
    this.byId.set(id, t);
    return t;
  }
}

export function createUnionPayAdapter(config: UnionPayConfig, deps: UnionPayDeps): UnionPayAdapter {
  const doFetch = deps.fetch ?? fetch;
  const timeoutMs = deps.timeoutMs ?? CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT;
  const verifier = new UpCertVerifier(config.rootCertPem, config.middleCertPem, config.signCertCompany);
  const ids = { merId: config.merId, certId: config.certId };
  const ageMaxMs = config.notifyTxnAgeMaxMs ?? UP_NOTIFY_TXN_AGE_MAX_MS_DEFAULT;
  const gateway = config.gatewayUrl.replace(/\/+$/, '');
  const txnTimes = new UpTxnTimes();
  const err = (code: ChannelErrorCode, message: string, opts: { cause?: unknown; channelCode?: string | null } = {}) => new ChannelError('unionpay', code, message, opts);

  /** POSTs signed params; returns the verified answer. Only a transport failure or an unsigned answer throws here. */
  async function post(url: string, params: Record<string, string>): Promise<Record<string, string>> {
    const signed = await signParams(params, config.merchantPrivateKeyPem, deps.crypto);
    let res: Response;
    try {
      res = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8', 'user-agent': 'peakpay/unionpay' },
        body: encodeForm(signed),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const name = (e as Error)?.name;
      if (name === 'TimeoutError' || name === 'AbortError') throw err('timeout', `no answer within ${timeoutMs} ms`, { cause: e });
      throw err('unavailable', 'connection failed', { cause: e });
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw err('unavailable', 'answer cut off', { cause: e });
    }
    if (res.status >= 500) throw err('unavailable', `HTTP ${res.status}`);
    if (res.status !== 200) throw err('rejected', `HTTP ${res.status}`);
    const a = parseAnswer(text.trim());
    if (!a || !a.respCode) throw err('bad_response', 'answer is not key=value text with a respCode');
    // UnionPay signs its answers, error answers included; a refused request (e.g. respCode 11) may come unsigned.
    const signedAnswer = Boolean(a.signature);
    if (signedAnswer && !(await verifyParams(a, verifier, deps.crypto, Date.now()))) throw err('bad_response', 'answer signature does not verify');
    if (outcomeOf(a.respCode) !== 'success') {
      throw err(upRequestErrorCode(a.respCode), (a.respMsg ?? `respCode ${a.respCode}`).slice(0, 200), { channelCode: a.respCode });
    }
    if (!signedAnswer) throw err('bad_response', 'a successful answer without a signature');
    if (a.merId !== undefined && a.merId !== config.merId) throw err('bad_response', 'answer is about another merId');
    return a;
  }

  async function queryOrder(outTradeNo: string, channelOrderId?: string | null): Promise<ChannelOrderState> {
    const txnTimeMs = txnTimeMsOfChannelOrderId(outTradeNo, channelOrderId);
    return queryAnswerToState(outTradeNo, txnTimeMs, await post(`${gateway}${UP_PATH_QUERY}`, toQueryRequest(outTradeNo, txnTimeMs, ids)));
  }

  return {
    name: 'unionpay',

    async createOrder(req: ChannelOrderRequest): Promise<ChannelOrder> {
      const now = Date.now();
      toUpOrderId(req.out_trade_no); // a malformed id is refused before it takes a place in the memo
      // A retry in this process resends the same orderId + txnTime (and so the same payTimeout): the same transaction.
      const txnTimeMs = txnTimes.pick(req.out_trade_no, now);
      // payTimeout must end before a notification's txnTime falls out of the window notify.ts enforces.
      const payTimeoutMs = Math.min(req.expires_at_ms, txnTimeMs + ageMaxMs - NOTIFY_WINDOW_MS);
      if (payTimeoutMs <= now) throw err('rejected', 'the order would expire before it could be paid');
      const params = toConsumeRequest(req, ids, txnTimeMs, payTimeoutMs);
      const channelOrderId = toUpChannelOrderId(req.out_trade_no, txnTimeMs);
      if (upApiForScene(req.scene) === 'front') {
        // The gateway is a browser form: the signed fields travel with the buyer to frontTransReq.do.
        const signed = await signParams(params, config.merchantPrivateKeyPem, deps.crypto);
        return { channel_order_id: channelOrderId, next_action: { type: 'redirect', url: `${gateway}${UP_PATH_FRONT}?${encodeForm(signed)}` } };
      }
      const a = await post(`${gateway}${UP_PATH_BACK}`, params);
      if (!a.qrCode) throw err('bad_response', 'qrCode missing');
      return { channel_order_id: channelOrderId, next_action: { type: 'qr_code', code_url: a.qrCode } };
    },

    queryOrder,

    async closeOrder(outTradeNo: string, channelOrderId?: string | null): Promise<void> {
      // UnionPay has no close for an unpaid order: it lapses at payTimeout (set from expires_at_ms).
      // What can be checked is that it is not paid; a paid one is the engine's to refund.
      txnTimeMsOfChannelOrderId(outTradeNo, channelOrderId); // without it nothing can be checked: refused, not "fine"
      let state: ChannelOrderState;
      try {
        state = await queryOrder(outTradeNo, channelOrderId);
      } catch (e) {
        if (e instanceof ChannelError && e.code === 'not_found') return;
        throw e;
      }
      if (state.status === 'succeeded') throw err('order_paid', 'the order is paid', { channelCode: '00' });
    },

    async refund(req: UnionPayRefundRequest): Promise<ChannelRefundState> {
      // The consume's txnTime: from the engine's channel_order_id, else from this process's own create.
      const createdMs = txnTimes.get(req.out_trade_no);
      const paymentOrderId = req.channel_order_id || (createdMs === undefined ? null : toUpChannelOrderId(req.out_trade_no, createdMs));
      if (!paymentOrderId) throw err('rejected', UP_CHANNEL_ORDER_ID_NEEDED);
      const paid = await queryOrder(req.out_trade_no, paymentOrderId);
      if (paid.status !== 'succeeded' || !paid.channel_trade_no) throw err('rejected', 'the order is not paid');
      if (req.amount > paid.amount) throw err('rejected', 'refund larger than the order');
      toUpOrderId(req.out_refund_no); // a malformed id is refused before it takes a place in the memo
      // The refund is a transaction of its own, sent now; a retry in this process resends it with the same txnTime.
      const txnTimeMs = txnTimes.pick(req.out_refund_no, Date.now());
      const a = await post(`${gateway}${UP_PATH_BACK}`, toRefundRequest(req, ids, paid.channel_trade_no, txnTimeMs));
      // respCode 00 on a refund means accepted; its outcome comes by notification (or a query of the refund's orderId).
      return { out_refund_no: req.out_refund_no, status: 'pending', channel_refund_id: a.queryId || null, amount: req.amount };
    },

    async verifyNotify(raw, _headers, nowMs) {
      return verifyUnionPayNotify(raw, nowMs, { merId: config.merId, notifyTxnAgeMaxMs: ageMaxMs }, verifier, deps.crypto);
    },

    notifyAnswer: unionPayNotifyAnswer,

    async downloadBill(day: string): Promise<BillLine[]> {
      let a: Record<string, string>;
      try {
        a = await post(config.fileDownloadUrl, toFileRequest(day, ids, Date.now()));
      } catch (e) {
        // 98: no file for that day (no transactions).
        if (e instanceof ChannelError && e.channelCode === '98') return [];
        throw e;
      }
      if (!a.fileContent) throw err('bad_response', 'fileContent missing');
      const files = decodeFileContent(a.fileContent);
      const zm = files.filter((f) => /ZM_/.test(f.name));
      const dayMs = Date.parse(`${day}T12:00:00+08:00`);
      return zm.flatMap((f) => parseZmFile(f.data.toString('utf8'), dayMs));
    },
  };
}
