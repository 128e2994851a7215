// Money is an integer count of the currency's minor unit (fen for CNY) with an ISO 4217 code.
// Never a float: every schema here rejects non-integers before they reach Redis or Postgres.
import { z } from 'zod';

/** Currencies we settle, with their minor-unit exponent (ISO 4217). */
export const CURRENCY_EXPONENT = {
  CNY: 2, HKD: 2, USD: 2, EUR: 2, GBP: 2, SGD: 2, TWD: 2, MOP: 2, JPY: 0, KRW: 0,
} as const;
export type Currency = keyof typeof CURRENCY_EXPONENT;
export const CURRENCIES = Object.keys(CURRENCY_EXPONENT) as [Currency, ...Currency[]];

/** Largest single amount we accept: far below 2^53 so sums of many stay exact in JS and Lua. */
export const AMOUNT_MAX = 1_000_000_000_000; // 10 billion CNY in fen

export const currencySchema = z.enum(CURRENCIES);
export const amountSchema = z.number().int().positive().max(AMOUNT_MAX);
/** Signed amounts for ledger postings and balances. */
export const signedAmountSchema = z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER);

export function assertMinorUnits(n: number): void {
  if (!Number.isSafeInteger(n)) throw new Error(`assertion: money must be a safe integer, got ${n}`);
}
