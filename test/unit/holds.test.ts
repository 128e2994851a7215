import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EXPIRE_RETRY_MS, HoldTracker } from '../../engine/shards/holds.ts';

describe('HoldTracker', () => {
  it('returns exactly the open holds that are due, earliest first, each once until re-armed', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ id: fc.integer({ min: 0, max: 30 }), deadline: fc.integer({ min: 0, max: 1000 }), resolve: fc.boolean() }), { maxLength: 80 }),
        fc.integer({ min: 0, max: 1000 }),
        (ops, now) => {
          const t = new HoldTracker();
          const model = new Map<string, number>();
          for (const op of ops) {
            const id = `p${op.id}`;
            if (op.resolve) {
              t.observe('m', { id, hold_expires_at: null } as never);
              model.delete(id);
            } else {
              t.add('m', id, op.deadline);
              model.set(id, op.deadline);
            }
          }
          const due = t.takeDue(now, 1000);
          const expected = [...model.entries()].filter(([, d]) => d <= now).map(([id]) => id).sort();
          expect(due.map((e) => e.paymentId).sort()).toEqual(expected);
          for (let i = 1; i < due.length; i++) expect((due[i]?.deadlineMs ?? 0) >= (due[i - 1]?.deadlineMs ?? 0)).toBe(true);
          expect(t.takeDue(now, 1000)).toEqual([]);
          // By then the re-armed ones are due again, and so is every other open hold (deadlines ≤ 1000).
          expect(t.takeDue(now + EXPIRE_RETRY_MS, 1000).map((e) => e.paymentId).sort()).toEqual([...model.keys()].sort());
        },
      ),
    );
  });

  it('respects the batch maximum', () => {
    const t = new HoldTracker();
    for (let i = 0; i < 10; i++) t.add('m', `p${i}`, i);
    expect(t.takeDue(100, 3).map((e) => e.paymentId)).toEqual(['p0', 'p1', 'p2']);
    expect(t.takeDue(100, 100)).toHaveLength(7);
  });
});
