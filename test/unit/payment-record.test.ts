// isPaymentRecord is a hand-written loop standing in for zod's record-of-unions (12 µs an event):
// it must accept and refuse exactly what that schema did, within the new field bound.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isPaymentRecord, PAYMENT_RECORD_FIELDS_MAX, paymentRecordSchema } from '../../engine/protocol/events.ts';

const zodRecord = z.record(z.string().min(1).max(64), z.union([z.string().max(65_536), z.number().int()]));

const value = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom('x'.repeat(65_536), 'x'.repeat(65_537)),
  fc.integer(),
  fc.constantFrom(2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1.5, Number.NaN, Infinity),
  fc.constantFrom(null, undefined, true, [], {}),
);
const key = fc.oneof(fc.string({ minLength: 0, maxLength: 4 }), fc.constantFrom('k'.repeat(64), 'k'.repeat(65)));

describe('isPaymentRecord', () => {
  it('agrees with the zod record it replaces on any flat object', () => {
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 12 }), (rec) => {
        expect(isPaymentRecord(rec)).toBe(zodRecord.safeParse(rec).success);
        expect(paymentRecordSchema.safeParse(rec).success).toBe(zodRecord.safeParse(rec).success);
      }),
      { numRuns: 2_000 },
    );
  });

  it('refuses what is not a plain object, and more than the field bound', () => {
    for (const v of [null, undefined, 1, 'x', [], [1], new Map(), new Date(0)]) expect(isPaymentRecord(v)).toBe(false);
    const full = Object.fromEntries(Array.from({ length: PAYMENT_RECORD_FIELDS_MAX }, (_, i) => [`f${i}`, i]));
    expect(isPaymentRecord(full)).toBe(true);
    expect(isPaymentRecord({ ...full, one_more: 1 })).toBe(false);
  });
});
