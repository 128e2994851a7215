// Pure mapping between our channel contract and PayPal's wire: amounts (integer minor units ↔
// PayPal decimal strings with PayPal's decimals per currency), statuses by exhaustive switches,
// the order request, the webhook signing string, and Transaction Search rows → bill lines.
import { crc32 } from 'node:zlib';
import { CURRENCY_EXPONENT } from '../../protocol/money.ts';
import type { BillLine, ChannelOrderRequest, ChannelOrderState, ChannelOrderStatus, ChannelRefundStatus } from '../types.ts';
import { ChannelError } from '../types.ts';
import type {
  PaypalCapture,
  PaypalCaptureStatus,
  PaypalCreateOrderRequest,
  PaypalMoney,
  PaypalOrder,
  PaypalOrderStatus,
  PaypalRefundStatus,
  PaypalTransactionInfo,
} from './wire.ts';
import { PAYPAL_CAPTURE_STATUSES, PAYPAL_ORDER_STATUSES, PAYPAL_REFUND_STATUSES } from './wire.ts';

/** Currencies PayPal takes without decimals even where ISO 4217 has two (its currency code list). */
export const PAYPAL_ZERO_DECIMAL = new Set(['HUF', 'JPY', 'TWD']);
/** PayPal's cap on one amount value: 10 digits before the point. */
export const PAYPAL_VALUE_INTEGER_DIGITS_MAX = 10;

function isoExponent(currency: string): number {
  const e = (CURRENCY_EXPONENT as Record<string, number>)[currency];
  if (e === undefined) throw new ChannelError('paypal', 'rejected', `currency ${currency} is not one we settle`);
  return e;
}

/** The decimals PayPal takes for a currency. */
export function paypalDecimals(currency: string): number {
  return PAYPAL_ZERO_DECIMAL.has(currency) ? 0 : isoExponent(currency);
}

/**
 * Integer minor units (ISO 4217) → PayPal's value string: 1234 USD → "12.34", 500 JPY → "500",
 * 10000 TWD → "100" (PayPal takes TWD without decimals, so TWD must be whole dollars). Refuses
 * anything that is not a positive safe integer or cannot be said exactly in PayPal's decimals.
 */
export function toPaypalValue(amount: number, currency: string): string {
  if (!Number.isSafeInteger(amount) || amount <= 0) throw new ChannelError('paypal', 'rejected', 'amount must be a positive integer of minor units');
  const iso = isoExponent(currency);
  const dec = paypalDecimals(currency);
  const drop = 10 ** (iso - dec);
  if (amount % drop !== 0) throw new ChannelError('paypal', 'rejected', `${currency} amounts go to PayPal without decimals; ${amount} minor units is not whole`);
  const units = String(amount / drop);
  const s = dec === 0 ? units : `${units.padStart(dec + 1, '0').slice(0, -dec)}.${units.padStart(dec + 1, '0').slice(-dec)}`;
  if (s.split('.')[0]!.length > PAYPAL_VALUE_INTEGER_DIGITS_MAX) throw new ChannelError('paypal', 'rejected', 'amount over PayPal\'s limit');
  return s;
}

const VALUE_RE = /^(0|[1-9]\d{0,14})(?:\.(\d+))?$/;

/** PayPal's value string → integer minor units of `currency`; null when not exact or not a number. */
export function fromPaypalValue(value: string, currency: string): number | null {
  const e = (CURRENCY_EXPONENT as Record<string, number>)[currency];
  if (e === undefined) return null;
  const m = VALUE_RE.exec(value);
  if (!m) return null;
  const frac = m[2] ?? '';
  if (frac.length > e) return null;
  const n = Number(m[1]) * 10 ** e + Number(frac.padEnd(e, '0') || '0');
  return Number.isSafeInteger(n) ? n : null;
}

export function moneyOf(m: PaypalMoney | undefined): { amount: number; currency: string } | null {
  if (!m || typeof m.value !== 'string' || typeof m.currency_code !== 'string') return null;
  const amount = fromPaypalValue(m.value, m.currency_code);
  return amount === null ? null : { amount, currency: m.currency_code };
}

export const isOrderStatus = (s: unknown): s is PaypalOrderStatus => (PAYPAL_ORDER_STATUSES as readonly unknown[]).includes(s);
export const isCaptureStatus = (s: unknown): s is PaypalCaptureStatus => (PAYPAL_CAPTURE_STATUSES as readonly unknown[]).includes(s);
export const isRefundStatus = (s: unknown): s is PaypalRefundStatus => (PAYPAL_REFUND_STATUSES as readonly unknown[]).includes(s);

/** A capture's status → the payment's. A refunded capture was paid: refunds are separate records. */
export function mapCaptureStatus(s: PaypalCaptureStatus): ChannelOrderStatus {
  switch (s) {
    case 'COMPLETED':
    case 'PARTIALLY_REFUNDED':
    case 'REFUNDED':
      return 'succeeded';
    case 'PENDING':
      return 'pending';
    case 'DECLINED':
    case 'FAILED':
      return 'failed';
    default: {
      const never: never = s;
      throw new Error(`assertion: unmapped PayPal capture status ${String(never)}`);
    }
  }
}

/**
 * An order's status → ours. APPROVED is still pending: money moves only when we capture (the
 * adapter captures an approved order on query). A COMPLETED order is as paid as its capture.
 */
export function mapOrderStatus(s: PaypalOrderStatus, capture: PaypalCaptureStatus | null): ChannelOrderStatus {
  switch (s) {
    case 'CREATED':
    case 'SAVED':
    case 'APPROVED':
    case 'PAYER_ACTION_REQUIRED':
      return 'pending';
    case 'VOIDED':
      return 'closed';
    case 'COMPLETED':
      return capture === null ? 'pending' : mapCaptureStatus(capture);
    default: {
      const never: never = s;
      throw new Error(`assertion: unmapped PayPal order status ${String(never)}`);
    }
  }
}

export function mapRefundStatus(s: PaypalRefundStatus): ChannelRefundStatus {
  switch (s) {
    case 'COMPLETED':
      return 'succeeded';
    case 'PENDING':
      return 'pending';
    case 'CANCELLED':
    case 'FAILED':
      return 'failed';
    default: {
      const never: never = s;
      throw new Error(`assertion: unmapped PayPal refund status ${String(never)}`);
    }
  }
}

/**
 * PayPal has no call that closes an order; an order moves no money until its merchant captures
 * it. Closing therefore marks the order (custom_id) so that this adapter never captures it, and
 * the mark lives at PayPal, not in our memory.
 */
export const CLOSED_MARK_PREFIX = 'closed:';
export const closedMark = (outTradeNo: string): string => `${CLOSED_MARK_PREFIX}${outTradeNo}`;

export function toCreateOrderBody(req: ChannelOrderRequest, brandName?: string): PaypalCreateOrderRequest {
  const body: PaypalCreateOrderRequest = {
    intent: 'CAPTURE',
    purchase_units: [
      {
        reference_id: req.out_trade_no,
        custom_id: req.out_trade_no,
        invoice_id: req.out_trade_no,
        description: [...req.subject].slice(0, 127).join(''),
        amount: { currency_code: req.currency, value: toPaypalValue(req.amount, req.currency) },
      },
    ],
  };
  const ctx: NonNullable<PaypalCreateOrderRequest['payment_source']>['paypal']['experience_context'] = { user_action: 'PAY_NOW', shipping_preference: 'NO_SHIPPING' };
  if (req.return_url) {
    ctx.return_url = req.return_url;
    ctx.cancel_url = req.return_url;
  }
  if (brandName) ctx.brand_name = brandName;
  body.payment_source = { paypal: { experience_context: ctx } };
  return body;
}

/** The capture that carries the payment, if any (the last one: a declined capture may precede it). */
export function captureOf(order: PaypalOrder): PaypalCapture | null {
  const caps = order.purchase_units?.[0]?.payments?.captures ?? [];
  return caps.at(-1) ?? null;
}

/** A PayPal order as our ChannelOrderState; null when it is not the order of `outTradeNo` or not readable. */
export function orderState(order: PaypalOrder, outTradeNo: string): ChannelOrderState | null {
  const pu = order.purchase_units?.[0];
  if (!pu || (pu.invoice_id ?? pu.reference_id) !== outTradeNo || !isOrderStatus(order.status)) return null;
  const cap = captureOf(order);
  if (cap && !isCaptureStatus(cap.status)) return null;
  let status = mapOrderStatus(order.status, cap?.status ?? null);
  if (status === 'pending' && pu.custom_id === closedMark(outTradeNo)) status = 'closed';
  const money = moneyOf(cap?.amount ?? pu.amount);
  if (!money) return null;
  const paidAt = status === 'succeeded' && cap?.create_time ? Date.parse(cap.create_time) : NaN;
  return {
    out_trade_no: outTradeNo,
    status,
    amount: money.amount,
    currency: money.currency,
    channel_trade_no: cap?.id ?? null,
    paid_at_ms: Number.isFinite(paidAt) ? paidAt : null,
  };
}

/** CRC32 of the raw body as an unsigned decimal, as PayPal's webhook signature uses it. */
export function bodyCrc32(raw: Buffer): string {
  return String(crc32(raw) >>> 0);
}

/** `<transmission_id>|<transmission_time>|<webhook_id>|<crc32>`: what PayPal signs (SHA256withRSA). */
export function webhookSigContent(transmissionId: string, transmissionTime: string, webhookId: string, raw: Buffer): string {
  return `${transmissionId}|${transmissionTime}|${webhookId}|${bodyCrc32(raw)}`;
}

/** Transaction Search event codes we read into the bill. */
export const TXN_PAYMENT_CODE = 'T0006';
export const TXN_REFUND_CODE = 'T1107';

/**
 * Transaction Search rows → bill lines: successful (S) checkout payments and merchant refunds.
 * PayPal shows its fee as a negative fee_amount on a payment and a returned fee as a positive
 * one on a refund; BillLine.fee is the fee charged on the line, so it is the negated fee_amount.
 * Other event codes (transfers, holds, disputes) are not payments of ours and are skipped.
 */
export function billLines(rows: PaypalTransactionInfo[]): BillLine[] {
  const out: BillLine[] = [];
  for (const t of rows) {
    if (t.transaction_status !== 'S') continue;
    const isPayment = t.transaction_event_code === TXN_PAYMENT_CODE;
    const isRefund = t.transaction_event_code === TXN_REFUND_CODE;
    if (!isPayment && !isRefund) continue;
    const amt = signedMinor(t.transaction_amount);
    const fee = t.fee_amount ? signedMinor(t.fee_amount) : 0;
    const at = Date.parse(t.transaction_initiation_date);
    if (amt === null || fee === null || !Number.isFinite(at)) throw new ChannelError('paypal', 'bad_response', `transaction ${t.transaction_id}: unreadable amount or date`);
    if (isPayment) {
      if (!t.invoice_id) continue; // not an order of ours
      out.push({ out_trade_no: t.invoice_id, channel_trade_no: t.transaction_id, kind: 'payment', out_refund_no: null, amount: amt, currency: t.transaction_amount.currency_code, fee: 0 - fee, at_ms: at });
    } else {
      if (!t.custom_field) continue;
      out.push({ out_trade_no: t.custom_field, channel_trade_no: t.paypal_reference_id ?? t.transaction_id, kind: 'refund', out_refund_no: t.invoice_id ?? null, amount: Math.abs(amt), currency: t.transaction_amount.currency_code, fee: 0 - fee, at_ms: at });
    }
  }
  return out;
}

function signedMinor(m: PaypalMoney): number | null {
  const neg = m.value.startsWith('-');
  const v = fromPaypalValue(neg ? m.value.slice(1) : m.value, m.currency_code);
  return v === null ? null : neg ? -v : v;
}
