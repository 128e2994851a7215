// Pure mapping between our channel contract and Alipay's wire: amounts (integer fen ↔ yuan
// strings, by string and integer arithmetic only), Asia/Shanghai times, the RSA2 signing string,
// the raw response node a response signature covers, statuses, and the trade bill CSV.
import { inflateRawSync } from 'node:zlib';
import type { BillLine, ChannelOrderRequest, ChannelOrderStatus } from '../types.ts';
import { ChannelError } from '../types.ts';
import { ALIPAY_BILL_COLUMNS, type AlipayMethod, type AlipayTradeCreateBiz, type AlipayTradeStatus, ALIPAY_TRADE_STATUSES } from './wire.ts';

/** Alipay settles these trades in CNY only (cross-border Alipay is a different product). */
export const ALIPAY_CURRENCY = 'CNY';
/** Alipay's limit on total_amount: 100,000,000.00 yuan. */
export const ALIPAY_AMOUNT_FEN_MAX = 10_000_000_000;
const SHANGHAI_OFFSET_MS = 8 * 3600_000;

/** 1999 → "19.99". Refuses anything that is not a positive safe integer of fen within Alipay's limit. */
export function fenToYuan(fen: number): string {
  if (!Number.isSafeInteger(fen) || fen <= 0 || fen > ALIPAY_AMOUNT_FEN_MAX) {
    throw new ChannelError('alipay', 'rejected', `amount must be a positive integer of fen up to ${ALIPAY_AMOUNT_FEN_MAX}`);
  }
  const s = String(fen).padStart(3, '0');
  return `${s.slice(0, -2)}.${s.slice(-2)}`;
}

const YUAN_RE = /^(0|[1-9]\d{0,11})(?:\.(\d{1,2}))?$/;

/** "19.99" / "20" / "0.5" → fen; null for anything else (signs, exponents, a third decimal). */
export function yuanToFen(yuan: string): number | null {
  const m = YUAN_RE.exec(yuan);
  if (!m) return null;
  const frac = (m[2] ?? '').padEnd(2, '0');
  return Number(m[1]) * 100 + Number(frac);
}

/** ms since the epoch → "yyyy-MM-dd HH:mm:ss" in Asia/Shanghai (UTC+8, no daylight saving). */
export function toShanghaiTime(ms: number): string {
  return new Date(ms + SHANGHAI_OFFSET_MS).toISOString().slice(0, 19).replace('T', ' ');
}

const SHANGHAI_TIME_RE = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

/** "yyyy-MM-dd HH:mm:ss" Asia/Shanghai → ms; null when it is not exactly that shape or not a real time. */
export function fromShanghaiTime(s: string): number | null {
  const m = SHANGHAI_TIME_RE.exec(s);
  if (!m) return null;
  const [, y, mo, d, h, mi, se] = m.map(Number) as [number, number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, se) - SHANGHAI_OFFSET_MS;
  return toShanghaiTime(ms) === s ? ms : null; // rejects 2024-02-30 and 25:00:00
}

/**
 * The string Alipay signs: parameters sorted by key (ASCII), `k=v` joined by `&`, values as they
 * are (not URL-encoded), empty values and the `exclude`d keys left out. Requests exclude only
 * `sign`; asynchronous notifications exclude `sign` and `sign_type`.
 */
export function signContent(params: Record<string, string>, exclude: readonly string[]): string {
  return Object.keys(params)
    .filter((k) => !exclude.includes(k) && params[k] !== '' && params[k] !== undefined)
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
}

export const REQUEST_SIGN_EXCLUDED = ['sign'] as const;
export const NOTIFY_SIGN_EXCLUDED = ['sign', 'sign_type'] as const;

/** `alipay.trade.query` → `alipay_trade_query_response`. */
export function responseKey(method: AlipayMethod): string {
  return `${method.replaceAll('.', '_')}_response`;
}

/**
 * The raw text of each top-level value of a JSON object, by key, exactly as it appears in `raw`.
 * Alipay signs the response node's raw bytes (with its own escaping, e.g. `\/`), so verification
 * must use them, not a re-serialisation. null when `raw` is not one JSON object or repeats a key.
 */
export function topLevelRawValues(raw: string): Map<string, string> | null {
  try {
    JSON.parse(raw);
  } catch {
    return null;
  }
  const out = new Map<string, string>();
  let i = skipWs(raw, 0);
  if (raw[i] !== '{') return null;
  i = skipWs(raw, i + 1);
  if (raw[i] === '}') return out;
  for (;;) {
    if (raw[i] !== '"') return null;
    const keyEnd = stringEnd(raw, i);
    const key = JSON.parse(raw.slice(i, keyEnd)) as string;
    i = skipWs(raw, keyEnd);
    if (raw[i] !== ':') return null;
    const start = skipWs(raw, i + 1);
    const end = valueEnd(raw, start);
    if (out.has(key)) return null;
    out.set(key, raw.slice(start, end));
    i = skipWs(raw, end);
    if (raw[i] === '}') return out;
    if (raw[i] !== ',') return null;
    i = skipWs(raw, i + 1);
  }
}

function skipWs(s: string, i: number): number {
  while (i < s.length && (s[i] === ' ' || s[i] === '\n' || s[i] === '\r' || s[i] === '\t')) i++;
  return i;
}

/** Index just past the string literal starting at `i` (which is a quote). */
function stringEnd(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    if (s[j] === '\\') j++;
    else if (s[j] === '"') return j + 1;
  }
  return s.length;
}

/** Index just past the JSON value starting at `i` (the input already parsed as JSON). */
function valueEnd(s: string, i: number): number {
  if (s[i] === '"') return stringEnd(s, i);
  if (s[i] === '{' || s[i] === '[') {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const c = s[j];
      if (c === '"') j = stringEnd(s, j) - 1;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return s.length;
  }
  let j = i;
  while (j < s.length && s[j] !== ',' && s[j] !== '}' && s[j] !== ' ' && s[j] !== '\n' && s[j] !== '\r' && s[j] !== '\t') j++;
  return j;
}

export function isTradeStatus(s: string): s is AlipayTradeStatus {
  return (ALIPAY_TRADE_STATUSES as readonly string[]).includes(s);
}

/** Alipay's trade_status → ours. TRADE_FINISHED is a paid trade that can no longer be refunded. */
export function mapTradeStatus(s: AlipayTradeStatus): ChannelOrderStatus {
  switch (s) {
    case 'WAIT_BUYER_PAY':
      return 'pending';
    case 'TRADE_SUCCESS':
    case 'TRADE_FINISHED':
      return 'succeeded';
    case 'TRADE_CLOSED':
      return 'closed';
    default: {
      const never: never = s;
      throw new Error(`assertion: unmapped Alipay trade_status ${String(never)}`);
    }
  }
}

/** Which gateway method opens a trade for a scene: a QR code (当面付) or the mobile cashier page. */
export function createMethodFor(scene: ChannelOrderRequest['scene']): 'alipay.trade.precreate' | 'alipay.trade.wap.pay' {
  switch (scene) {
    case 'pc':
    case 'app':
    case 'mini_program':
      return 'alipay.trade.precreate';
    case 'h5':
      return 'alipay.trade.wap.pay';
    default: {
      const never: never = scene;
      throw new Error(`assertion: unknown scene ${String(never)}`);
    }
  }
}

/** Alipay limits subject to 256 characters and refuses some; we send a trimmed plain one. */
export const SUBJECT_CHARS_MAX = 256;

export function toCreateBiz(req: ChannelOrderRequest): AlipayTradeCreateBiz {
  if (req.currency !== ALIPAY_CURRENCY) throw new ChannelError('alipay', 'rejected', `alipay settles ${ALIPAY_CURRENCY} only, not ${req.currency}`);
  const biz: AlipayTradeCreateBiz = {
    out_trade_no: req.out_trade_no,
    total_amount: fenToYuan(req.amount),
    subject: [...req.subject].slice(0, SUBJECT_CHARS_MAX).join('') || req.out_trade_no,
    time_expire: toShanghaiTime(req.expires_at_ms),
  };
  if (createMethodFor(req.scene) === 'alipay.trade.wap.pay') {
    biz.product_code = 'QUICK_WAP_WAY';
    if (req.return_url) biz.quit_url = req.return_url;
  }
  return biz;
}

/** Splits one CSV line (RFC 4180 quotes allowed; Alipay pads numbers with a tab, which is trimmed). */
export function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      cells.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  cells.push(cur.trim());
  return cells;
}

export function csvCell(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

export class AlipayBillError extends Error {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AlipayBillError';
  }
}
export const isAlipayBillError = (e: unknown): e is AlipayBillError => e instanceof AlipayBillError;

/** Signed yuan ("-0.12", "19.99") → fen. */
function signedYuanToFen(s: string, what: string): number {
  const neg = s.startsWith('-');
  const fen = yuanToFen(neg ? s.slice(1) : s);
  if (fen === null) throw new AlipayBillError(`bill: ${what} "${s}" is not a yuan amount`);
  return neg ? -fen : fen;
}

/**
 * Parses the trade bill (业务明细) CSV: '#' lines are Alipay's header and footer, then a header
 * row and one row per payment (业务类型 交易) or refund (退款). Alipay shows the fee it charged
 * as a negative 服务费 and a fee it returns with a refund as a positive one; BillLine.fee is the
 * fee charged on the line, so it is the negated 服务费.
 */
export function parseTradeBill(csv: string): BillLine[] {
  const lines = csv.replace(/^\uFEFF/, '').split(/\r?\n/);
  let header: string[] | null = null;
  const out: BillLine[] = [];
  for (const line of lines) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const cells = splitCsvLine(line);
    if (!header) {
      if (cells[0] !== ALIPAY_BILL_COLUMNS[0]) throw new AlipayBillError('bill: no header row');
      header = cells;
      continue;
    }
    const col = (name: (typeof ALIPAY_BILL_COLUMNS)[number]): string => {
      const idx = header!.indexOf(name);
      if (idx < 0) throw new AlipayBillError(`bill: no column ${name}`);
      return cells[idx] ?? '';
    };
    const type = col('业务类型');
    const at = fromShanghaiTime(col('完成时间'));
    if (at === null) throw new AlipayBillError(`bill: bad 完成时间 "${col('完成时间')}"`);
    const fee = 0 - signedYuanToFen(col('服务费（元）') || '0', '服务费');
    if (type === '交易') {
      out.push({ out_trade_no: col('商户订单号'), channel_trade_no: col('支付宝交易号'), kind: 'payment', out_refund_no: null, amount: signedYuanToFen(col('订单金额（元）'), '订单金额'), currency: ALIPAY_CURRENCY, fee, at_ms: at });
    } else if (type === '退款') {
      out.push({ out_trade_no: col('商户订单号'), channel_trade_no: col('支付宝交易号'), kind: 'refund', out_refund_no: col('退款批次号/请求号') || null, amount: Math.abs(signedYuanToFen(col('商家实收（元）'), '商家实收')), currency: ALIPAY_CURRENCY, fee, at_ms: at });
    } else {
      throw new AlipayBillError(`bill: unknown 业务类型 "${type}"`);
    }
  }
  if (!header) throw new AlipayBillError('bill: no header row');
  return out;
}

/** Bounds on a downloaded bill archive. */
export const BILL_ZIP_ENTRIES_MAX = 64;
export const BILL_CSV_BYTES_MAX = 64 * 1024 * 1024;

const gbk = new TextDecoder('gbk');

/**
 * The detail CSV's text from what the bill URL serves: production ships a zip holding the detail
 * (…业务明细.csv) and summary (…业务明细(汇总).csv) files in GBK; the sandbox serves the detail
 * CSV as plain UTF-8. Only stored and deflated entries occur in Alipay's archives.
 */
export function billCsvText(file: Buffer): string {
  if (file.subarray(0, 4).toString('latin1') !== 'PK\x03\x04') return file.toString('utf8');
  const entries = unzip(file);
  const detail = entries.find((e) => e.name.endsWith('.csv') && e.name.includes('业务明细') && !e.name.includes('汇总')) ?? entries.find((e) => e.name.endsWith('.csv') && !e.name.includes('汇总'));
  if (!detail) throw new AlipayBillError('bill: no detail CSV in the archive');
  return gbk.decode(detail.data);
}

/** Entries of a zip archive, read from its central directory. */
export function unzip(zip: Buffer): Array<{ name: string; data: Buffer }> {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0 || eocd + 22 > zip.length) throw new AlipayBillError('bill: zip without an end record');
  const count = zip.readUInt16LE(eocd + 10);
  if (count > BILL_ZIP_ENTRIES_MAX) throw new AlipayBillError(`bill: zip with ${count} entries`);
  let p = zip.readUInt32LE(eocd + 16);
  const out: Array<{ name: string; data: Buffer }> = [];
  for (let i = 0; i < count; i++) {
    if (p + 46 > zip.length || zip.readUInt32LE(p) !== 0x02014b50) throw new AlipayBillError('bill: bad zip directory');
    const flags = zip.readUInt16LE(p + 8);
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const nameBytes = zip.subarray(p + 46, p + 46 + nameLen);
    const name = flags & 0x800 ? nameBytes.toString('utf8') : gbk.decode(nameBytes);
    p += 46 + nameLen + extraLen + commentLen;
    if (size > BILL_CSV_BYTES_MAX || local + 30 > zip.length || zip.readUInt32LE(local) !== 0x04034b50) throw new AlipayBillError(`bill: entry ${name} unreadable`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + compressed);
    let data: Buffer;
    if (method === 0) data = raw;
    else if (method === 8) data = inflateRawSync(raw, { maxOutputLength: BILL_CSV_BYTES_MAX });
    else throw new AlipayBillError(`bill: entry ${name} uses zip method ${method}`);
    if (data.length !== size) throw new AlipayBillError(`bill: entry ${name} is ${data.length} bytes, not ${size}`);
    out.push({ name, data });
  }
  return out;
}
