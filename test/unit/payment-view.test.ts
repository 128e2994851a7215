// paymentViewOf() builds the public view without validating it (the settlement consumer derives
// the view of every event from its payment record); toPayment() validates the same builder's
// output. For any payment hash the engine can hold, the two must be the same object and the same
// JSON, byte for byte: webhooks and the payments table see what the API answered.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CURRENCIES } from '../../engine/protocol/money.ts';
import { METHODS, PAYMENT_STATUSES, SCENES } from '../../engine/protocol/payment.ts';
import { paymentViewOf, toPayment } from '../../engine/protocol/view.ts';
import { rawPaymentSchema, type RawPayment } from '../../engine/redis/store.ts';
import { paymentOfRecord } from '../../engine/protocol/command-state.ts';

const id = fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/);
const ms = fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 });
const jsonOr = <T>(arb: fc.Arbitrary<T>) => fc.oneof(fc.constant(''), arb.map((v) => JSON.stringify(v)));
const buyer = fc.record({ user_id: id, device_id: id, ip: fc.constantFrom('10.0.0.1', '2001:db8::1') }, { requiredKeys: [] });
const metadata = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 12 }), { maxKeys: 4 });
const nextAction = fc.oneof(
  fc.constant(''),
  fc.webUrl().map((u) => JSON.stringify({ type: 'qr_code', code_url: u })),
  fc.webUrl().map((u) => JSON.stringify({ type: 'redirect', url: u })),
);

const raw: fc.Arbitrary<RawPayment> = fc
  .record({
    id, merchant_id: id, out_trade_no: id,
    amount: fc.integer({ min: 1, max: 10_000_000 }), currency: fc.constantFrom(...CURRENCIES),
    amount_captured: fc.nat(), amount_refunded: fc.nat(), method: fc.constantFrom(...METHODS),
    channel: fc.constantFrom('', 'balance', 'alipay', 'wechat_pay'), account_id: fc.oneof(fc.constant(''), id),
    scene: fc.constantFrom(...SCENES), subject: fc.string({ maxLength: 16 }), buyer: jsonOr(buyer), metadata: jsonOr(metadata),
    notify_url: fc.constantFrom('', 'https://shop.example/n'), status: fc.constantFrom(...PAYMENT_STATUSES.filter((s) => s !== 'processing')),
    failure_code: fc.constantFrom('', 'balance.insufficient_funds', 'risk.velocity_exceeded'), failure_message: fc.string({ maxLength: 16 }),
    hold_amount: fc.nat({ max: 10_000 }), hold_expires_at_ms: ms, created_at_ms: ms, updated_at_ms: ms, version: fc.integer({ min: 1, max: 50 }),
    next_action: nextAction,
  })
  .map((r) => rawPaymentSchema.parse(r));

describe('paymentViewOf', () => {
  it('is toPayment without the validation: the same object and the same JSON for any payment hash', () => {
    fc.assert(
      fc.property(raw, (r) => {
        const checked = toPayment(r);
        const built = paymentViewOf(r);
        expect(built).toEqual(checked);
        expect(JSON.stringify(built)).toBe(JSON.stringify(checked));
        // And from the record as events carry it (strings and integers, every field).
        expect(JSON.stringify(paymentOfRecord({ ...r }))).toBe(JSON.stringify(checked));
      }),
      { numRuns: 1_000 },
    );
  });
});
