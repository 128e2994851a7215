import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isBalanced, postingsFor } from '../../engine/ledger/postings.ts';
import { EFFECT_KINDS, type Effect } from '../../engine/redis/store.ts';

const effect = fc.tuple(fc.constantFrom(...EFFECT_KINDS), fc.integer({ min: 1, max: 1e12 })) as fc.Arbitrary<Effect>;

describe('ledger postings', () => {
  it('balance to zero for any sequence of effects', () => {
    fc.assert(fc.property(fc.array(effect, { maxLength: 8 }), (effects) => isBalanced(postingsFor('acc', 'CNY', effects, 'wechat_pay'))));
  });

  it('moves a channel refund from the merchant back to the channel it came through', () => {
    expect(postingsFor(null, 'CNY', [['channel_refund', 25]], 'alipay')).toEqual([
      { kind: 'channel_refund', ledger_account: 'merchant:settlement', amount: -25, currency: 'CNY' },
      { kind: 'channel_refund', ledger_account: 'channel:alipay:clearing', amount: 25, currency: 'CNY' },
    ]);
    expect(() => postingsFor(null, 'CNY', [['channel_refund', 25]], null)).toThrow(/without a channel/);
  });

  it('moves a hold from available to held, and a capture from held to the merchant', () => {
    expect(postingsFor('a', 'CNY', [['hold', 100], ['capture', 60], ['release', 40]])).toEqual([
      { kind: 'hold', ledger_account: 'wallet:a:available', amount: -100, currency: 'CNY' },
      { kind: 'hold', ledger_account: 'wallet:a:held', amount: 100, currency: 'CNY' },
      { kind: 'capture', ledger_account: 'wallet:a:held', amount: -60, currency: 'CNY' },
      { kind: 'capture', ledger_account: 'merchant:settlement', amount: 60, currency: 'CNY' },
      { kind: 'release', ledger_account: 'wallet:a:held', amount: -40, currency: 'CNY' },
      { kind: 'release', ledger_account: 'wallet:a:available', amount: 40, currency: 'CNY' },
    ]);
  });

  it('books a sale (an automatic capture) as one transfer from available to the merchant, with the balances of a hold captured in full', () => {
    expect(postingsFor('a', 'CNY', [['sale', 100]])).toEqual([
      { kind: 'capture', ledger_account: 'wallet:a:available', amount: -100, currency: 'CNY' },
      { kind: 'capture', ledger_account: 'merchant:settlement', amount: 100, currency: 'CNY' },
    ]);
    const sums = (postings: ReturnType<typeof postingsFor>) => {
      const m = new Map<string, number>();
      for (const p of postings) m.set(p.ledger_account, (m.get(p.ledger_account) ?? 0) + p.amount);
      return [...m.entries()].filter(([, v]) => v !== 0).sort();
    };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e12 }), (amount) => {
        expect(sums(postingsFor('a', 'CNY', [['sale', amount]]))).toEqual(sums(postingsFor('a', 'CNY', [['hold', amount], ['capture', amount]])));
      }),
    );
  });

  it('moves a refund from the merchant back to the wallet\'s available balance', () => {
    expect(postingsFor('a', 'CNY', [['refund', 25]])).toEqual([
      { kind: 'refund', ledger_account: 'merchant:settlement', amount: -25, currency: 'CNY' },
      { kind: 'refund', ledger_account: 'wallet:a:available', amount: 25, currency: 'CNY' },
    ]);
  });

  it('detects an unbalanced entry', () => {
    expect(isBalanced([{ kind: 'hold', ledger_account: 'x', amount: 1, currency: 'CNY' }])).toBe(false);
  });
});
