// Pure mapping between our channel contract and WeChat Pay API v3: requests, statuses, amounts,
// times and the trade bill. No I/O here, so every rule is unit-tested on its own.
import {
  ChannelError,
  type BillLine,
  type ChannelOrderRequest,
  type ChannelOrderState,
  type ChannelOrderStatus,
  type ChannelRefundState,
  type ChannelRefundStatus,
} from '../types.ts';
import {
  WX_BILL_HEADER,
  WX_TRADE_STATES,
  WX_REFUND_STATUSES,
  type WxAmountRequest,
  type WxH5Request,
  type WxNativeRequest,
  type WxRefund,
  type WxRefundStatus,
  type WxTradeState,
  type WxTransaction,
} from './wire.ts';

/** WeChat's description is string(127): 127 bytes of UTF-8. */
export const WX_DESCRIPTION_BYTES_MAX = 127;
/** out_trade_no / out_refund_no: 6–32 of [0-9A-Za-z_-|*] (WeChat's rule), unique per mchid. */
export const WX_TRADE_NO_RE = /^[0-9A-Za-z_\-|*]{6,32}$/;
const SHANGHAI_OFFSET_MS = 8 * 3600_000;

const reject = (message: string) => new ChannelError('wechat_pay', 'rejected', message);
const badResponse = (message: string) => new ChannelError('wechat_pay', 'bad_response', message);

export function assertTradeNo(v: string, what: string): void {
  if (!WX_TRADE_NO_RE.test(v)) {
    throw reject(`${what} must be 6-32 of [0-9A-Za-z_-|*]`);
  }
}

/** Our integer minor units → amount.total (fen). WeChat domestic pay is CNY only. */
export function toWxAmount(amount: number, currency: string): WxAmountRequest {
  if (currency !== 'CNY') throw reject(`WeChat Pay takes CNY only, not ${currency}`);
  if (!Number.isSafeInteger(amount) || amount <= 0) throw reject('amount must be a positive integer of fen');
  return { total: amount, currency: 'CNY' };
}

/** amount{total,currency} from WeChat → our integer minor units; anything but an integer is a bad answer. */
export function fromWxAmount(a: { total: unknown; currency?: unknown } | undefined): { amount: number; currency: string } {
  if (!a || typeof a.total !== 'number' || !Number.isSafeInteger(a.total) || a.total < 0) throw badResponse('amount.total is not an integer of fen');
  const currency = a.currency === undefined ? 'CNY' : a.currency;
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) throw badResponse('amount.currency is not an ISO code');
  return { amount: a.total, currency };
}

/** Integer fen → yuan string with `decimals` places ("19.99", fees "0.06000"), by integer math. */
export function fenToYuan(fen: number, decimals = 2): string {
  if (!Number.isSafeInteger(fen)) throw new Error('assertion: fen must be a safe integer');
  const sign = fen < 0 ? '-' : '';
  const abs = Math.abs(fen);
  const cents = String(abs % 100).padStart(2, '0');
  return `${sign}${Math.trunc(abs / 100)}.${cents}${'0'.repeat(Math.max(0, decimals - 2))}`;
}

/**
 * Yuan string → integer fen. 'exact' refuses any non-zero digit below the fen (an amount must be
 * a whole number of fen); 'half_up' rounds half away from zero, WeChat's rounding of fees, which
 * the bill shows with five decimals.
 */
export function yuanToFen(s: string, mode: 'exact' | 'half_up' = 'exact'): number {
  const m = /^(-?)(\d{1,13})(?:\.(\d{1,8}))?$/.exec(s);
  if (!m) throw badResponse(`not a yuan amount: ${JSON.stringify(s.slice(0, 24))}`);
  const [, sign, whole, frac = ''] = m;
  const fen2 = (frac + '00').slice(0, 2);
  const rest = frac.slice(2);
  let fen = Number(whole) * 100 + Number(fen2);
  if (/[1-9]/.test(rest)) {
    if (mode === 'exact') throw badResponse(`amount ${s} is not a whole number of fen`);
    if (rest.charCodeAt(0) >= 53 /* '5' */) fen += 1;
  }
  if (!Number.isSafeInteger(fen)) throw badResponse('amount out of range');
  return sign === '-' && fen !== 0 ? -fen : fen;
}

/** RFC 3339 in Asia/Shanghai with an explicit +08:00 offset, to the second (time_expire). */
export function shanghaiRfc3339(ms: number): string {
  return `${new Date(Math.floor(ms / 1000) * 1000 + SHANGHAI_OFFSET_MS).toISOString().slice(0, 19)}+08:00`;
}

/** Strict RFC 3339 (WeChat's success_time, create_time) → epoch ms; null when it is not one. */
export function parseRfc3339(s: unknown): number | null {
  if (typeof s !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)$/.test(s)) return null;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? ms : null;
}

/** "YYYY-MM-DD hh:mm:ss" in Asia/Shanghai (bill times) → epoch ms. */
export function parseShanghaiDateTime(s: string): number {
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)$/.exec(s);
  if (!m) throw badResponse(`not a bill time: ${JSON.stringify(s.slice(0, 24))}`);
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) - SHANGHAI_OFFSET_MS;
}

export function formatShanghaiDateTime(ms: number): string {
  return new Date(ms + SHANGHAI_OFFSET_MS).toISOString().slice(0, 19).replace('T', ' ');
}

/** Cuts to at most `max` bytes of UTF-8 without splitting a character. */
export function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

type MerchantIds = { appid: string; mchid: string };

function commonOrderFields(req: ChannelOrderRequest, ids: MerchantIds) {
  assertTradeNo(req.out_trade_no, 'out_trade_no');
  return {
    appid: ids.appid,
    mchid: ids.mchid,
    description: truncateUtf8(req.subject, WX_DESCRIPTION_BYTES_MAX) || req.out_trade_no,
    out_trade_no: req.out_trade_no,
    time_expire: shanghaiRfc3339(req.expires_at_ms),
    notify_url: req.notify_url,
    amount: toWxAmount(req.amount, req.currency),
  };
}

/** Native pay (a code_url to show as a QR): scene pc, and app/mini_program in this integration. */
export function toNativeRequest(req: ChannelOrderRequest, ids: MerchantIds): WxNativeRequest {
  return { ...commonOrderFields(req, ids), scene_info: { payer_client_ip: req.client_ip } };
}

/** H5 pay (an h5_url to redirect a mobile browser to): scene h5. */
export function toH5Request(req: ChannelOrderRequest, ids: MerchantIds): WxH5Request {
  return { ...commonOrderFields(req, ids), scene_info: { payer_client_ip: req.client_ip, h5_info: { type: 'Wap' } } };
}

/** Which API a scene uses. app and mini_program need WeChat's SDK parameters, which next_action cannot carry: they get the Native QR. */
export function wxApiForScene(scene: ChannelOrderRequest['scene']): 'native' | 'h5' {
  switch (scene) {
    case 'h5':
      return 'h5';
    case 'pc':
    case 'app':
    case 'mini_program':
      return 'native';
    default: {
      const never: never = scene;
      throw new Error(`assertion: unknown scene ${String(never)}`);
    }
  }
}

export function isWxTradeState(s: unknown): s is WxTradeState {
  return typeof s === 'string' && (WX_TRADE_STATES as readonly string[]).includes(s);
}
export function isWxRefundStatus(s: unknown): s is WxRefundStatus {
  return typeof s === 'string' && (WX_REFUND_STATUSES as readonly string[]).includes(s);
}

/**
 * trade_state → ours. REFUND means the order was paid and (part of) it refunded since: the payment
 * itself succeeded. REVOKED (a cancelled 付款码 order) can never be paid: closed. PAYERROR (bank
 * refused) is final for this order: failed.
 */
export function wxTradeStateToStatus(s: WxTradeState): ChannelOrderStatus {
  switch (s) {
    case 'SUCCESS':
    case 'REFUND':
      return 'succeeded';
    case 'NOTPAY':
    case 'USERPAYING':
      return 'pending';
    case 'CLOSED':
    case 'REVOKED':
      return 'closed';
    case 'PAYERROR':
      return 'failed';
    default: {
      const never: never = s;
      throw new Error(`assertion: unknown trade_state ${String(never)}`);
    }
  }
}

/**
 * Refund status → ours. ABNORMAL (the buyer's card was closed, …) returns no money until an
 * operator re-routes it in the merchant platform: for the engine the refund failed.
 */
export function wxRefundStatusToStatus(s: WxRefundStatus): ChannelRefundStatus {
  switch (s) {
    case 'SUCCESS':
      return 'succeeded';
    case 'PROCESSING':
      return 'pending';
    case 'CLOSED':
    case 'ABNORMAL':
      return 'failed';
    default: {
      const never: never = s;
      throw new Error(`assertion: unknown refund status ${String(never)}`);
    }
  }
}

export function transactionToState(t: WxTransaction): ChannelOrderState {
  if (!isWxTradeState(t.trade_state)) throw badResponse('unknown trade_state');
  if (typeof t.out_trade_no !== 'string') throw badResponse('out_trade_no missing');
  const { amount, currency } = fromWxAmount(t.amount);
  const status = wxTradeStateToStatus(t.trade_state);
  return {
    out_trade_no: t.out_trade_no,
    status,
    amount,
    currency,
    channel_trade_no: typeof t.transaction_id === 'string' && t.transaction_id ? t.transaction_id : null,
    paid_at_ms: status === 'succeeded' ? parseRfc3339(t.success_time) : null,
  };
}

export function refundToState(r: WxRefund): ChannelRefundState {
  if (!isWxRefundStatus(r.status)) throw badResponse('unknown refund status');
  if (typeof r.out_refund_no !== 'string') throw badResponse('out_refund_no missing');
  const refund = r.amount?.refund;
  if (typeof refund !== 'number' || !Number.isSafeInteger(refund) || refund <= 0) throw badResponse('amount.refund is not an integer of fen');
  return { out_refund_no: r.out_refund_no, status: wxRefundStatusToStatus(r.status), channel_refund_id: r.refund_id || null, amount: refund };
}

const BILL_LINES_MAX = 1_000_000;

/** One field of a bill line: WeChat prefixes every field with a backtick so spreadsheets keep it text. */
function billCells(line: string): string[] {
  return line.split(',').map((c) => (c.startsWith('`') ? c.slice(1) : c));
}

/**
 * The trade bill (bill_type=ALL) → bill lines. SUCCESS rows are payments (订单金额), REFUND rows
 * refunds (申请退款金额, 商户退款单号); REVOKED rows moved no money. Fees (手续费, five decimals)
 * are rounded half up to the fen; on refund rows the fee is negative (returned).
 */
export function parseTradeBill(text: string): BillLine[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const header = lines[0]?.split(',') ?? [];
  const col = (name: (typeof WX_BILL_HEADER)[number]) => {
    const i = header.indexOf(name);
    if (i < 0) throw badResponse(`bill header lacks ${name}`);
    return i;
  };
  const c = {
    time: col('交易时间'), txn: col('微信订单号'), out: col('商户订单号'), state: col('交易状态'), currency: col('货币种类'),
    refundNo: col('商户退款单号'), fee: col('手续费'), total: col('订单金额'), refund: col('申请退款金额'),
  };
  const out: BillLine[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith('`')) break; // the summary caption follows the rows
    if (out.length >= BILL_LINES_MAX) throw badResponse(`bill has more than ${BILL_LINES_MAX} lines`);
    const cells = billCells(line);
    const get = (j: number) => cells[j] ?? '';
    const state = get(c.state);
    if (state === 'REVOKED') continue;
    if (state !== 'SUCCESS' && state !== 'REFUND') throw badResponse(`unknown bill 交易状态 ${JSON.stringify(state.slice(0, 16))}`);
    const refund = state === 'REFUND';
    out.push({
      out_trade_no: get(c.out),
      channel_trade_no: get(c.txn),
      kind: refund ? 'refund' : 'payment',
      out_refund_no: refund ? get(c.refundNo) : null,
      amount: yuanToFen(get(refund ? c.refund : c.total)),
      currency: get(c.currency) || 'CNY',
      fee: yuanToFen(get(c.fee), 'half_up'),
      at_ms: parseShanghaiDateTime(get(c.time)),
    });
  }
  return out;
}
