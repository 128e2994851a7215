// Currency conversion (engine/channels/fx.ts): exact integer arithmetic on decimal-string rates,
// half-up rounding, and the properties the ledger relies on.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ISO_MINOR_EXPONENT, convert, isFxError, loadFxTableFile, parseFxTable, type FxTable } from '../../engine/channels/fx.ts';
import { AMOUNT_MAX } from '../../engine/protocol/money.ts';

const TABLE: FxTable = parseFxTable({
  base: 'CNY',
  rates: { USD: '0.1380', EUR: '0.1270', HKD: '1.0790', GBP: '0.1085', JPY: '21.05', KRW: '190.3', SGD: '0.1862', KWD: '0.04234', TWD: '4.4983' },
  as_of: '2025-06-01T00:00:00Z',
});
const CURRENCIES = ['CNY', ...Object.keys(TABLE.rates)];

const codeOf = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    if (isFxError(err)) return err.code;
    throw err;
  }
  return 'ok';
};

/** |amount − a·rate·10^(eTo−eFrom)| ≤ ½, ties upwards: half-up, checked in bigint against the returned rate. */
function isHalfUpOf(a: number, from: string, to: string, amount: number, rate: string): boolean {
  const [i = '0', f = ''] = rate.split('.');
  const n = BigInt(i + f);
  const d = 10n ** BigInt(f.length);
  const eFrom = 10n ** BigInt(ISO_MINOR_EXPONENT[from] ?? NaN);
  const eTo = 10n ** BigInt(ISO_MINOR_EXPONENT[to] ?? NaN);
  const exact2 = 2n * BigInt(a) * n * eTo; // 2·exact·(d·eFrom)
  const got2 = 2n * BigInt(amount) * d * eFrom;
  const half = d * eFrom;
  const diff = got2 - exact2;
  return diff <= half && diff > -half; // −½ < got − exact ≤ ½
}

describe('fx convert', () => {
  it('converts known amounts', () => {
    expect(convert(1999, 'USD', 'CNY', TABLE)).toEqual({ amount: 14486, currency: 'CNY', rate: '7.2463768115942029', rate_as_of: '2025-06-01T00:00:00Z' });
    expect(convert(10000, 'CNY', 'USD', TABLE)).toEqual({ amount: 1380, currency: 'USD', rate: '0.138', rate_as_of: '2025-06-01T00:00:00Z' });
    expect(convert(500, 'JPY', 'CNY', TABLE).amount).toBe(2375); // 500 / 21.05 = 23.75 CNY
    expect(convert(12345, 'KWD', 'JPY', TABLE).amount).toBe(6138); // 12.345 KWD = 6137.5… JPY
    expect(convert(777, 'CNY', 'CNY', TABLE)).toMatchObject({ amount: 777, rate: '1' });
  });

  it('rounds ties upwards', () => {
    const t = parseFxTable({ base: 'CNY', rates: { USD: '0.5', JPY: '0.5' }, as_of: '2025-06-01' });
    expect(convert(1, 'CNY', 'USD', t).amount).toBe(1); // 0.5 cent
    expect(convert(3, 'CNY', 'USD', t).amount).toBe(2); // 1.5 cents
    expect(convert(101, 'CNY', 'JPY', t).amount).toBe(1); // 1.01 CNY = 0.505 JPY
    expect(convert(99, 'CNY', 'JPY', t).amount).toBe(0); // 0.495 JPY
  });

  it('refuses bad amounts, unknown currencies and missing rates', () => {
    expect(codeOf(() => convert(19.99, 'USD', 'CNY', TABLE))).toBe('bad_amount');
    expect(codeOf(() => convert(-1, 'USD', 'CNY', TABLE))).toBe('bad_amount');
    expect(codeOf(() => convert(Number.NaN, 'USD', 'CNY', TABLE))).toBe('bad_amount');
    expect(codeOf(() => convert(100, 'usd', 'CNY', TABLE))).toBe('unknown_currency');
    expect(codeOf(() => convert(100, 'XYZ', 'CNY', TABLE))).toBe('unknown_currency');
    expect(codeOf(() => convert(100, 'AUD', 'CNY', TABLE))).toBe('no_rate');
    expect(codeOf(() => convert(Number.MAX_SAFE_INTEGER, 'CNY', 'KRW', TABLE))).toBe('amount_too_large');
  });

  it('gives an integer, the half-up of amount × rate, for every pair (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CURRENCIES), fc.constantFrom(...CURRENCIES), fc.integer({ min: 0, max: AMOUNT_MAX }), (from, to, a) => {
        const r = convert(a, from, to, TABLE);
        expect(Number.isSafeInteger(r.amount)).toBe(true);
        expect(r.rate).toMatch(/^(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$/);
        expect(isHalfUpOf(a, from, to, r.amount, r.rate)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('is monotone in the amount (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CURRENCIES), fc.constantFrom(...CURRENCIES), fc.integer({ min: 0, max: AMOUNT_MAX }), fc.integer({ min: 0, max: AMOUNT_MAX }), (from, to, x, y) => {
        const [a, b] = x <= y ? [x, y] : [y, x];
        expect(convert(a, from, to, TABLE).amount).toBeLessThanOrEqual(convert(b, from, to, TABLE).amount);
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips within one minor unit into a currency whose minor unit is worth no more (property)', () => {
    const worthNoMore = CURRENCIES.flatMap((from) => CURRENCIES.filter((to) => to !== from).map((to) => [from, to] as const)).filter(
      ([from, to]) => convert(1_000_000, from, to, TABLE).amount >= 1_000_000, // one minor unit of `from` buys ≥ 1 of `to`
    );
    expect(worthNoMore.length).toBeGreaterThan(10);
    fc.assert(
      fc.property(fc.constantFrom(...worthNoMore), fc.integer({ min: 0, max: AMOUNT_MAX }), ([from, to], a) => {
        const there = convert(a, from, to, TABLE);
        const back = convert(there.amount, to, from, TABLE);
        expect(Math.abs(back.amount - a)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips within half a minor unit of the coarser currency plus one (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CURRENCIES), fc.constantFrom(...CURRENCIES), fc.integer({ min: 0, max: AMOUNT_MAX }), (from, to, a) => {
        const there = convert(a, from, to, TABLE);
        const back = convert(there.amount, to, from, TABLE);
        // One minor unit of `to` is worth `unit` minor units of `from`; its half is the loss of the first rounding.
        const unit = convert(1_000_000_000, to, from, TABLE).amount / 1_000_000_000;
        expect(Math.abs(back.amount - a)).toBeLessThanOrEqual(Math.floor(0.5 + unit / 2 + 1e-6));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('fx table', () => {
  it.each([
    ['a float rate', { base: 'CNY', rates: { USD: 0.138 }, as_of: '2025-06-01' }],
    ['a zero rate', { base: 'CNY', rates: { USD: '0.000' }, as_of: '2025-06-01' }],
    ['a negative rate', { base: 'CNY', rates: { USD: '-0.138' }, as_of: '2025-06-01' }],
    ['an exponent', { base: 'CNY', rates: { USD: '1.38e-1' }, as_of: '2025-06-01' }],
    ['an unknown currency', { base: 'CNY', rates: { XYZ: '1' }, as_of: '2025-06-01' }],
    ['the base at another rate', { base: 'CNY', rates: { CNY: '1.01' }, as_of: '2025-06-01' }],
    ['no as_of', { base: 'CNY', rates: { USD: '0.138' } }],
    ['an extra field', { base: 'CNY', rates: { USD: '0.138' }, as_of: '2025-06-01', note: 'x' }],
  ])('refuses %s', (_name, json) => {
    expect(codeOf(() => parseFxTable(json))).toBe('bad_table');
  });

  it('loads a JSON file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fx-'));
    const path = join(dir, 'rates.json');
    writeFileSync(path, JSON.stringify({ base: 'CNY', rates: { USD: '0.1380', CNY: '1' }, as_of: '2025-06-01T08:00:00+08:00' }));
    expect(convert(100, 'CNY', 'USD', loadFxTableFile(path)).amount).toBe(14);
    writeFileSync(path, '{');
    expect(codeOf(() => loadFxTableFile(path))).toBe('bad_table');
  });
});
