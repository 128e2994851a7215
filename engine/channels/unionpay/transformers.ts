// Pure mapping between our channel contract and UnionPay 5.1.0: ids, times, amounts, requests,
// response codes and the reconciliation file. No I/O, no signing (sign.ts), so each rule is
// unit-tested on its own.
import { inflateSync } from 'node:zlib';
import {
  ChannelError,
  type BillLine,
  type ChannelOrderRequest,
  type ChannelOrderState,
  type ChannelOrderStatus,
  type ChannelRefundRequest,
  type ChannelRefundStatus,
} from '../types.ts';
import {
  UP_ACCESS_TYPE_MERCHANT,
  UP_BIZ_GATEWAY,
  UP_BIZ_QR,
  UP_CHANNEL_MOBILE,
  UP_CHANNEL_PC,
  UP_CURRENCY_CNY,
  UP_ENCODING,
  UP_RESP_CODES,
  UP_SIGN_METHOD_RSA,
  UP_SUB_CONSUME,
  UP_SUB_QR_APPLY,
  UP_TXN_CONSUME,
  UP_TXN_FILE,
  UP_TXN_QUERY,
  UP_TXN_REFUND,
  UP_VERSION,
  UP_ZM_FIELDS,
  type UpConsumeRequest,
  type UpFileRequest,
  type UpQueryRequest,
  type UpRefundRequest,
  type UpRespCode,
  type UpZmField,
} from './wire.ts';
import { readZip } from './zip.ts';

const SHANGHAI_OFFSET_MS = 8 * 3600_000;
/** orderDesc is ANS1..32 in some products; kept short. */
export const UP_ORDER_DESC_CHARS_MAX = 32;
/** txnAmt is N1..12: at most 12 digits of fen. */
export const UP_AMOUNT_FEN_MAX = 999_999_999_999;
export const UP_BILL_LINES_MAX = 1_000_000;

const reject = (message: string) => new ChannelError('unionpay', 'rejected', message);
const badResponse = (message: string) => new ChannelError('unionpay', 'bad_response', message);

// ---- ids -------------------------------------------------------------------------------------

/**
 * Our ids are `<prefix>_<26 Crockford base32 characters>` (pay_…, re_…): payment ids are derived
 * from the idempotency key and request (ingress/idempotency.ts derivedId), so they look random and
 * carry no time. UnionPay's orderId is 8–40 letters and digits, no '-' or '_': the underscore is
 * dropped, and the lower-case prefix before the upper-case characters makes it reversible. Any
 * other id shape is refused rather than mapped ambiguously.
 */
const OUR_ID_RE = /^([a-z]{1,8})_([0-9A-HJKMNP-TV-Z]{26})$/;
const UP_ORDER_ID_RE = /^([a-z]{1,8})([0-9A-HJKMNP-TV-Z]{26})$/;
const ID_SHAPE = 'unionpay needs ids of the form <prefix>_<26 Crockford base32 characters>';

export function isMappableId(id: string): boolean {
  return OUR_ID_RE.test(id);
}

export function toUpOrderId(id: string): string {
  const m = OUR_ID_RE.exec(id);
  if (!m) throw reject(ID_SHAPE);
  return `${m[1]}${m[2]}`;
}

export function fromUpOrderId(orderId: string): string | null {
  const m = UP_ORDER_ID_RE.exec(orderId);
  return m ? `${m[1]}_${m[2]}` : null;
}

/**
 * merId + orderId + txnTime identify a UnionPay transaction, and a query must name orderId and
 * txnTime. Our ids carry no time, so createOrder picks txnTime (the current second) and hands the
 * pair back as channel_order_id `<orderId>@<txnTime>`, which the engine keeps on the payment and
 * passes to queryOrder/closeOrder.
 */
export const UP_CHANNEL_ORDER_ID_SEPARATOR = '@';
export const UP_CHANNEL_ORDER_ID_NEEDED = 'unionpay needs the channel order id to find an order';

export function toUpChannelOrderId(id: string, txnTimeMs: number): string {
  return `${toUpOrderId(id)}${UP_CHANNEL_ORDER_ID_SEPARATOR}${formatUpTime(txnTimeMs)}`;
}

/** The txnTime (ms) of the transaction named by channelOrderId, which must be about `id`. */
export function txnTimeMsOfChannelOrderId(id: string, channelOrderId: string | null | undefined): number {
  if (!channelOrderId) throw reject(UP_CHANNEL_ORDER_ID_NEEDED);
  const at = channelOrderId.indexOf(UP_CHANNEL_ORDER_ID_SEPARATOR);
  const txnTimeMs = at < 0 ? null : parseUpTime(channelOrderId.slice(at + 1));
  if (txnTimeMs === null) throw reject('unionpay channel order id is not <orderId>@<txnTime>');
  if (channelOrderId.slice(0, at) !== toUpOrderId(id)) throw reject('unionpay channel order id belongs to another order');
  return txnTimeMs;
}

/** txnTime has a resolution of one second. */
export const upTxnTimeMs = (nowMs: number): number => Math.floor(nowMs / 1000) * 1000;

// ---- times and amounts -----------------------------------------------------------------------

/** YYYYMMDDhhmmss in Asia/Shanghai (txnTime, payTimeout). */
export function formatUpTime(ms: number): string {
  return new Date(ms + SHANGHAI_OFFSET_MS).toISOString().slice(0, 19).replace(/[-T:]/g, '');
}

export function parseUpTime(s: string): number | null {
  const m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/.exec(s);
  if (!m) return null;
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) - SHANGHAI_OFFSET_MS;
  return formatUpTime(ms) === s ? ms : null; // refuses 20261332…
}

/** MMDDhhmmss (traceTime, the bill's 交易传输时间) → ms, in the year that puts it nearest `nearMs`. */
export function parseMmddhhmmss(s: string, nearMs: number): number | null {
  if (!/^\d{10}$/.test(s)) return null;
  const year = new Date(nearMs + SHANGHAI_OFFSET_MS).getUTCFullYear();
  let best: number | null = null;
  for (const y of [year - 1, year, year + 1]) {
    const ms = parseUpTime(`${y}${s}`);
    if (ms !== null && (best === null || Math.abs(ms - nearMs) < Math.abs(best - nearMs))) best = ms;
  }
  return best;
}

/** Integer fen → txnAmt. UnionPay gateway consumes here are CNY. */
export function toUpAmount(amount: number, currency: string): string {
  if (currency !== 'CNY') throw reject(`unionpay takes CNY only, not ${currency}`);
  if (!Number.isSafeInteger(amount) || amount <= 0 || amount > UP_AMOUNT_FEN_MAX) throw reject('amount must be a positive integer of fen (at most 12 digits)');
  return String(amount);
}

/** txnAmt → integer fen; null for anything but 1–12 digits without a leading zero. */
export function fromUpAmount(s: string | undefined): number | null {
  return s !== undefined && /^[1-9]\d{0,11}$/.test(s) ? Number(s) : null;
}

export function fromUpCurrency(code: string | undefined): string | null {
  return code === undefined || code === UP_CURRENCY_CNY ? 'CNY' : null;
}

// ---- response codes --------------------------------------------------------------------------

export function isUpRespCode(s: unknown): s is UpRespCode {
  return typeof s === 'string' && Object.hasOwn(UP_RESP_CODES, s);
}

export type UpOutcome = 'success' | 'in_doubt' | 'final_failure';

/** Every published code by the SDK's rule: 00/A6 success, 03/04/05 query again, the rest final. */
export function upOutcome(code: UpRespCode): UpOutcome {
  switch (code) {
    case '00':
    case 'A6':
      return 'success';
    case '03':
    case '04':
    case '05':
      return 'in_doubt';
    case '01': case '02': case '06': case '10': case '11': case '12': case '13': case '14': case '30': case '31': case '32':
    case '33': case '34': case '35': case '36': case '37': case '38': case '39': case '40': case '41': case '42': case '43':
    case '44': case '45': case '46': case '60': case '61': case '62': case '63': case '64': case '65': case '66': case '67':
    case '68': case '69': case '71': case '73': case '80': case '98': case '99':
      return 'final_failure';
    default: {
      const never: never = code;
      throw new Error(`assertion: unknown respCode ${String(never)}`);
    }
  }
}

/** A code outside the published list is final too, by the same rule (only 03/04/05 are "ask again"). */
export function outcomeOf(code: string | undefined): UpOutcome {
  return isUpRespCode(code) ? upOutcome(code) : 'final_failure';
}

/** The original transaction's origRespCode (query) or a notification's respCode → our order status. */
export function upOrderStatus(code: string | undefined): ChannelOrderStatus {
  const o = outcomeOf(code);
  switch (o) {
    case 'success':
      return 'succeeded';
    case 'in_doubt':
      return 'pending';
    case 'final_failure':
      return 'failed';
    default: {
      const never: never = o;
      throw new Error(`assertion: ${String(never)}`);
    }
  }
}

export function upRefundStatus(code: string | undefined): ChannelRefundStatus {
  const o = outcomeOf(code);
  switch (o) {
    case 'success':
      return 'succeeded';
    case 'in_doubt':
      return 'pending';
    case 'final_failure':
      return 'failed';
    default: {
      const never: never = o;
      throw new Error(`assertion: ${String(never)}`);
    }
  }
}

/** The error for a request whose own respCode is not a success. */
export function upRequestErrorCode(code: string | undefined): 'unavailable' | 'not_found' | 'rejected' {
  switch (code) {
    case '02': // closed for now
    case '03': // timed out inside UnionPay
    case '04':
    case '05':
    case '06': // busy
    case '37': // too frequent
    case '80': // internal error
      return 'unavailable';
    case '34':
      return 'not_found';
    default:
      return 'rejected';
  }
}

// ---- requests --------------------------------------------------------------------------------

export type UpIds = { merId: string; certId: string };

const common = (ids: UpIds, txnType: string, txnSubType: string, bizType: string, txnTime: string) => ({
  version: UP_VERSION,
  encoding: UP_ENCODING,
  signMethod: UP_SIGN_METHOD_RSA,
  certId: ids.certId,
  txnType,
  txnSubType,
  bizType,
  accessType: UP_ACCESS_TYPE_MERCHANT,
  merId: ids.merId,
  txnTime,
}) as const;

/** pc → the gateway form (a browser redirect); app, h5, mini_program → a 云闪付 QR code. */
export function upApiForScene(scene: ChannelOrderRequest['scene']): 'front' | 'qr' {
  switch (scene) {
    case 'pc':
      return 'front';
    case 'app':
    case 'h5':
    case 'mini_program':
      return 'qr';
    default: {
      const never: never = scene;
      throw new Error(`assertion: unknown scene ${String(never)}`);
    }
  }
}

/** A consume sent at txnTimeMs. Both times are the adapter's (payTimeout clamped to what notifications can prove). */
export function toConsumeRequest(req: ChannelOrderRequest, ids: UpIds, txnTimeMs: number, payTimeoutMs: number): Omit<UpConsumeRequest, 'signature'> {
  const front = upApiForScene(req.scene) === 'front';
  const orderDesc = req.subject.replace(/[&=\r\n{}[\]]/g, ' ').slice(0, UP_ORDER_DESC_CHARS_MAX).trim();
  return {
    ...common(ids, UP_TXN_CONSUME, front ? UP_SUB_CONSUME : UP_SUB_QR_APPLY, front ? UP_BIZ_GATEWAY : UP_BIZ_QR, formatUpTime(txnTimeMs)),
    channelType: front ? UP_CHANNEL_PC : UP_CHANNEL_MOBILE,
    orderId: toUpOrderId(req.out_trade_no),
    txnAmt: toUpAmount(req.amount, req.currency),
    currencyCode: UP_CURRENCY_CNY,
    backUrl: req.notify_url,
    // The browser comes back here after the cashier; without a return_url it lands on the notify URL, which accepts the signed front notification too.
    ...(front ? { frontUrl: req.return_url ?? req.notify_url } : {}),
    payTimeout: formatUpTime(payTimeoutMs),
    ...(orderDesc ? { orderDesc } : {}),
    ...(front ? { customerIp: req.client_ip } : {}),
  };
}

/**
 * 退货 (txnType 04) of the paid consume origQryId, a transaction of its own: orderId from our
 * refund id, sent at txnTimeMs. reqReserved carries our out_trade_no, which the notification echoes.
 */
export function toRefundRequest(req: ChannelRefundRequest, ids: UpIds, origQryId: string, txnTimeMs: number): Omit<UpRefundRequest, 'signature'> {
  if (!isMappableId(req.out_trade_no)) throw reject(ID_SHAPE);
  return {
    ...common(ids, UP_TXN_REFUND, '00', UP_BIZ_GATEWAY, formatUpTime(txnTimeMs)),
    channelType: UP_CHANNEL_PC,
    orderId: toUpOrderId(req.out_refund_no),
    origQryId,
    txnAmt: toUpAmount(req.amount, req.currency),
    backUrl: req.notify_url,
    reqReserved: req.out_trade_no,
  };
}

/** A query of the transaction our id `outTradeNo` sent at txnTimeMs (UnionPay's query names the queried txnTime). */
export function toQueryRequest(outTradeNo: string, txnTimeMs: number, ids: UpIds): Omit<UpQueryRequest, 'signature'> {
  return { ...common(ids, UP_TXN_QUERY, '00', UP_BIZ_QR, formatUpTime(txnTimeMs)), orderId: toUpOrderId(outTradeNo) };
}

/** File transfer of one settlement day (MMDD), sent at `nowMs`. */
export function toFileRequest(day: string, ids: UpIds, nowMs: number): Omit<UpFileRequest, 'signature'> {
  const m = /^\d{4}-(\d\d)-(\d\d)$/.exec(day);
  if (!m) throw reject('day must be YYYY-MM-DD');
  return { ...common(ids, UP_TXN_FILE, '01', UP_BIZ_QR, formatUpTime(nowMs)), settleDate: `${m[1]}${m[2]}`, fileType: '00' };
}

// ---- answers ---------------------------------------------------------------------------------

/** A query answer whose respCode is 00 → the state of the order sent at txnTimeMs. */
export function queryAnswerToState(outTradeNo: string, txnTimeMs: number, a: Record<string, string>): ChannelOrderState {
  if (a.orderId !== undefined && a.orderId !== toUpOrderId(outTradeNo)) throw badResponse('answer is about another order');
  const amount = fromUpAmount(a.txnAmt);
  const currency = fromUpCurrency(a.currencyCode);
  if (amount === null || currency === null) throw badResponse('txnAmt/currencyCode missing or malformed');
  const status = upOrderStatus(a.origRespCode);
  return {
    out_trade_no: outTradeNo,
    status,
    amount,
    currency,
    channel_trade_no: status === 'succeeded' && a.queryId ? a.queryId : null,
    paid_at_ms: status === 'succeeded' && a.traceTime ? parseMmddhhmmss(a.traceTime, txnTimeMs) : null,
  };
}

// ---- reconciliation file ---------------------------------------------------------------------

/** fileContent of a file transfer: base64 of the zlib-deflated zip. */
export function decodeFileContent(fileContent: string): Array<{ name: string; data: Buffer }> {
  try {
    return readZip(inflateSync(Buffer.from(fileContent, 'base64')));
  } catch (err) {
    throw new ChannelError('unionpay', 'bad_response', 'fileContent is not a deflated zip', { cause: err });
  }
}

export function formatZmLine(values: Partial<Record<UpZmField, string>>): string {
  return UP_ZM_FIELDS.map(([name, width]) => {
    const v = values[name] ?? '';
    if (v.length > width) throw new Error(`assertion: ${name} wider than ${width}`);
    return v.padEnd(width, ' ');
  }).join(' ');
}

function zmCells(line: string): Record<UpZmField, string> {
  const out = {} as Record<UpZmField, string>;
  let at = 0;
  for (const [name, width] of UP_ZM_FIELDS) {
    out[name] = line.slice(at, at + width).trim();
    at += width + 1;
  }
  return out;
}

/** 商户手续费 is a sign letter and 12 digits of fen: D debits the merchant (a fee), C credits it (a fee returned). */
function signedFen(s: string): number {
  const m = /^([CD])(\d{12})$/.exec(s);
  if (!m) throw badResponse(`bill fee ${JSON.stringify(s)} is not [CD]+12 digits`);
  const fen = Number(m[2]);
  return m[1] === 'D' || fen === 0 ? fen : -fen;
}

/**
 * The ZM file → bill lines. txnType 01 rows are payments; 04 (退货) and 31 (撤销) rows refunds,
 * whose out_trade_no comes from 商户自定义域 (our reqReserved) or, failing that, from the
 * payment row with the same queryId in the file (else left empty for the reconciler).
 */
export function parseZmFile(text: string, dayMs: number): BillLine[] {
  const rows = text.split(/\r?\n/).filter((l) => l.trim().length > 0);
  if (rows.length > UP_BILL_LINES_MAX) throw badResponse(`bill has more than ${UP_BILL_LINES_MAX} lines`);
  const cells = rows.map(zmCells);
  const paymentOf = new Map<string, string>();
  for (const c of cells) if (c.txnType === UP_TXN_CONSUME) paymentOf.set(c.queryId, fromUpOrderId(c.orderId) ?? '');
  const out: BillLine[] = [];
  for (const c of cells) {
    const refund = c.txnType === UP_TXN_REFUND || c.txnType === '31';
    if (!refund && c.txnType !== UP_TXN_CONSUME) continue;
    const amount = fromUpAmount(c.txnAmt.replace(/^0+(?=\d)/, ''));
    const at = parseMmddhhmmss(c.txnTime, dayMs);
    const id = fromUpOrderId(c.orderId);
    if (amount === null || at === null || id === null) throw badResponse('bill row with a malformed amount, time or orderId');
    const outTradeNo = refund ? (isMappableId(c.merReserved) ? c.merReserved : (paymentOf.get(c.origQryId) ?? '')) : id;
    out.push({
      out_trade_no: outTradeNo,
      channel_trade_no: refund ? c.origQryId : c.queryId,
      kind: refund ? 'refund' : 'payment',
      out_refund_no: refund ? id : null,
      amount,
      currency: 'CNY',
      fee: signedFen(c.merFee),
      at_ms: at,
    });
  }
  return out;
}
