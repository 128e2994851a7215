import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { merchantKeys } from '../../engine/redis/keys.ts';

const safeId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);

describe('merchant keys', () => {
  it('put every key of a merchant under its {merchantId} hash tag, one Redis Cluster slot', () => {
    fc.assert(
      fc.property(safeId, safeId, fc.integer({ min: 0, max: 100_000 }), (merchant, id, day) => {
        const k = merchantKeys('pp', merchant);
        const keys = [
          k.account(id), k.payment(id), k.refund(id), k.outTradeNo(id), k.op(id), k.queued(id), k.queuedOutTradeNo(id), k.idempotency(id),
          k.nonce(id), k.riskUserDay(day, id), k.riskUserVelocity(id), k.riskDeviceDay(day, id), k.accountPrefix, k.channelWatch,
          k.channelRefunds, k.holdsExpiring, k.rateLimit, k.riskConfig, k.riskBlacklist, k.riskUnused,
        ];
        for (const key of keys) expect(key.startsWith(`pp:{${merchant}}:`)).toBe(true);
        expect(new Set(keys).size).toBe(keys.length);
      }),
    );
  });

  it('refuse an id that could leave the hash tag or the key space (programmer error)', () => {
    expect(() => merchantKeys('pp', 'm}x')).toThrow(/merchantId is not a safe id/);
    const k = merchantKeys('pp', 'm1');
    expect(() => k.account('a:b')).toThrow(/accountId is not a safe id/);
    expect(() => k.payment('p{1}')).toThrow(/paymentId is not a safe id/);
    expect(() => k.op('')).toThrow(/opId is not a safe id/);
    expect(k.payment('pay_1')).toBe('pp:{m1}:pay:pay_1');
  });

  it('keeps its key builders on the prototype, not as closures built for every object', () => {
    const k = merchantKeys('pp', 'm1');
    expect(Object.keys(k)).not.toContain('account');
    expect(k.account('w0')).toBe('pp:{m1}:acct:w0');
  });
});
