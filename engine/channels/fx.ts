// Currency conversion for cross-border channels (Stripe, PayPal): the buyer pays in their
// currency, we book CNY (issue 6 item 8). Rates come from a configurable table whose rates are
// decimal STRINGS, and every step is bigint arithmetic on integer minor units, so no float ever
// touches an amount.
//
// Rounding rule: half-up (ties away from zero; amounts are never negative here), the 四舍五入 of
// Chinese accounting practice and of the card schemes' currency conversion, so a buyer, an
// auditor and a bank statement all get the same number from the same rate. Half-even would lower
// the bias of long sums of rounded values, but each payment is converted once and both the
// original and the converted amount are stored, so there is no such sum to protect.
//
// Reproducibility: the cross rate from → to is first fixed as a decimal string (exact when it
// terminates within RATE_SIGNIFICANT_DIGITS, else rounded half-up to that many significant
// digits), and the amount is computed from that string. Anyone holding (amount, rate, the two
// exponents) recomputes the converted amount exactly.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { CURRENCY_EXPONENT } from '../protocol/money.ts';

/** ISO 4217 minor-unit exponents of the currencies we may convert between. */
export const ISO_MINOR_EXPONENT: Readonly<Record<string, number>> = {
  ...CURRENCY_EXPONENT,
  AUD: 2, CAD: 2, CHF: 2, NZD: 2, SEK: 2, NOK: 2, DKK: 2, PLN: 2, CZK: 2, HUF: 2,
  THB: 2, MYR: 2, PHP: 2, IDR: 2, INR: 2, AED: 2, SAR: 2, ILS: 2, MXN: 2, BRL: 2,
  VND: 0, CLP: 0, ISK: 0, UGX: 0, XAF: 0, XOF: 0,
  KWD: 3, BHD: 3, JOD: 3, OMR: 3, TND: 3,
};

/** Significant digits kept of a cross rate that does not terminate (e.g. USD → EUR via CNY). */
export const RATE_SIGNIFICANT_DIGITS = 18;
/** Longest rate string we accept in a table: bounds the bigint work per conversion. */
export const RATE_CHARS_MAX = 32;
/** Decimal places a scaled cross rate may need; bounds the search loop in decimalOf. */
const RATE_SCALE_MAX = 64;

export type FxTable = {
  /** The currency every rate is quoted against: 1 unit of base = rates[c] units of c. */
  base: string;
  rates: Record<string, string>;
  /** When the rates were taken (ISO 8601), carried on every conversion for the ledger. */
  as_of: string;
};

export type FxConversion = {
  /** Integer minor units of `currency`. */
  amount: number;
  currency: string;
  /** Units of the target currency per unit of the source currency, as a decimal string. */
  rate: string;
  rate_as_of: string;
};

export type FxErrorCode = 'bad_table' | 'unknown_currency' | 'no_rate' | 'bad_amount' | 'amount_too_large';

export class FxError extends Error {
  readonly code: FxErrorCode;

  constructor(code: FxErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'FxError';
    this.code = code;
  }
}
export const isFxError = (e: unknown): e is FxError => e instanceof FxError;

const currencyCode = z.string().refine((c) => Object.hasOwn(ISO_MINOR_EXPONENT, c), 'unknown currency (not in ISO_MINOR_EXPONENT)');
const rateString = z
  .string()
  .max(RATE_CHARS_MAX)
  .regex(/^(0|[1-9][0-9]*)(\.[0-9]+)?$/, 'must be a plain decimal string such as "0.1380"')
  .refine((s) => /[1-9]/.test(s), 'must be positive');

const fxTableSchema = z
  .strictObject({
    base: currencyCode,
    rates: z.record(currencyCode, rateString),
    as_of: z.union([z.iso.datetime({ offset: true }), z.iso.date()]),
  })
  .refine((t) => t.rates[t.base] === undefined || decimalOf(t.rates[t.base] ?? '') === '1', 'the base may only be listed with rate "1"');

/** Validates a rate table (e.g. parsed from a JSON file); throws FxError('bad_table'). */
export function parseFxTable(json: unknown): FxTable {
  const r = fxTableSchema.safeParse(json);
  if (!r.success) throw new FxError('bad_table', `fx table: ${z.prettifyError(r.error)}`, { cause: r.error });
  return r.data;
}

export function loadFxTableFile(path: string): FxTable {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FxError('bad_table', `fx table ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseFxTable(json);
}

/** A positive rational n/d of bigints. */
type Ratio = { n: bigint; d: bigint };

function ratioOf(decimal: string): Ratio {
  const [int = '0', frac = ''] = decimal.split('.');
  return { n: BigInt(int + frac), d: 10n ** BigInt(frac.length) };
}

/** n/d rounded half-up, for n ≥ 0 and d > 0. */
export function divRoundHalfUp(n: bigint, d: bigint): bigint {
  if (n < 0n || d <= 0n) throw new Error('assertion: divRoundHalfUp needs n ≥ 0 and d > 0');
  return (2n * n + d) / (2n * d);
}

/** The rational n/d as a decimal string: exact if it terminates within `sig` significant digits, else rounded half-up there. */
function decimalString(r: Ratio, sig = RATE_SIGNIFICANT_DIGITS): string {
  const floor = 10n ** BigInt(sig - 1);
  let scale = 0;
  while (scale < RATE_SCALE_MAX && (r.n * 10n ** BigInt(scale)) / r.d < floor) scale++;
  let m = divRoundHalfUp(r.n * 10n ** BigInt(scale), r.d);
  if (m === 0n) throw new FxError('bad_table', 'a cross rate underflows the rate precision');
  while (scale > 0 && m % 10n === 0n) {
    m /= 10n;
    scale--;
  }
  const digits = m.toString().padStart(scale + 1, '0');
  return scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/** A rate string in its shortest form ("0.1380" → "0.138"). */
function decimalOf(s: string): string {
  return decimalString(ratioOf(s));
}

function exponentOf(currency: string): number {
  const e = ISO_MINOR_EXPONENT[currency];
  if (e === undefined || !Object.hasOwn(ISO_MINOR_EXPONENT, currency)) throw new FxError('unknown_currency', `unknown currency ${JSON.stringify(currency)}`);
  return e;
}

function rateAgainstBase(currency: string, table: FxTable): Ratio {
  if (currency === table.base) return { n: 1n, d: 1n };
  const s = Object.hasOwn(table.rates, currency) ? table.rates[currency] : undefined;
  if (s === undefined) throw new FxError('no_rate', `no rate for ${currency} in the table of ${table.as_of}`);
  return ratioOf(s);
}

/**
 * Converts integer minor units of `from` into minor units of `to` at the table's cross rate,
 * rounded half-up. The rate used and its date come back with the amount for the ledger.
 */
export function convert(amountMinor: number, from: string, to: string, table: FxTable): FxConversion {
  if (!Number.isSafeInteger(amountMinor) || amountMinor < 0) {
    throw new FxError('bad_amount', `amount must be a non-negative integer of minor units, got ${String(amountMinor)}`);
  }
  const eFrom = exponentOf(from);
  const eTo = exponentOf(to);
  if (from === to) return { amount: amountMinor, currency: to, rate: '1', rate_as_of: table.as_of };
  const rFrom = rateAgainstBase(from, table);
  const rTo = rateAgainstBase(to, table);
  // 1 from = (rTo / rFrom) to.
  const rate = decimalString({ n: rTo.n * rFrom.d, d: rTo.d * rFrom.n });
  const r = ratioOf(rate);
  const out = divRoundHalfUp(BigInt(amountMinor) * r.n * 10n ** BigInt(eTo), r.d * 10n ** BigInt(eFrom));
  if (out > BigInt(Number.MAX_SAFE_INTEGER)) throw new FxError('amount_too_large', `converted amount exceeds the safe integer range`);
  return { amount: Number(out), currency: to, rate, rate_as_of: table.as_of };
}
