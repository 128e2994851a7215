// The engine's front-door priority (engine/shards/intake.ts), as pure logic on a clock of our own:
// when it limits, how far, how it lets go, and that a limited bucket hands out no more than its rate.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeIngressLoad, encodeIngressLoad, ACCEPT_QUEUE_BEHIND_MIN, BEHIND_RECENT_MS, HOT_REPORTS_MIN, INGRESSES_MAX, IntakeGovernor, REPORT_STALE_MS, TICK_MS, YIELD_COOLDOWN_MS,
  YIELD_MS_MAX,
  type IngressLoad,
} from '../../engine/shards/intake.ts';

const FLOOR = 200;

function governor(yieldElu = 0.95) {
  const clock = { ms: 1_000_000 };
  const g = new IntakeGovernor({ yieldElu, floorPerS: FLOOR }, () => clock.ms);
  const report = (elu: number, id = 'i1'): void => g.observe({ v: 1, ingress_id: id, elu, window_ms: 100 });
  /** One tick after `elu` was reported by `id` (and `taken` commands received during it). */
  const step = (elu: number | null, taken = 0, id = 'i1') => {
    if (elu !== null) report(elu, id);
    if (taken > 0) g.received(taken);
    clock.ms += TICK_MS;
    return g.tick();
  };
  return { g, clock, report, step };
}

describe('IntakeGovernor: when it limits', () => {
  it('stays unlimited under a busy but not saturated ingress (ELU 0.4-0.9, as a closed loop measures)', () => {
    const { step } = governor();
    for (const elu of [0.4, 0.92, 0.61, 0.94, 0.87, 0.93, 0.5]) expect(step(elu, 300).limited).toBe(false);
  });

  it('limits after HOT_REPORTS_MIN saturated reports in a row, a quarter below what it took', () => {
    const { step } = governor();
    for (let i = 1; i < HOT_REPORTS_MIN; i++) expect(step(0.99, 150).limited).toBe(false);
    // 150 commands in a 100-ms tick = 1,500/s taken: the first limit is three quarters of that.
    expect(step(1, 150)).toEqual({ limited: true, limitPerS: 1125 });
  });

  it('one saturated report between normal ones does not limit', () => {
    const { step } = governor();
    for (let i = 0; i < 20; i++) expect(step(i % 2 === 0 ? 1 : 0.5, 100).limited).toBe(false);
  });

  it('falls a quarter a tick down to floorPerS, never below', () => {
    const { step } = governor();
    for (let i = 0; i < 10; i++) step(0.5, 200); // 2,000/s for a second, unlimited
    const limits: number[] = [];
    for (let i = 0; i < 14; i++) limits.push(step(1, 200).limitPerS);
    expect(limits.slice(0, 10)).toEqual([0, 1500, 1125, 843, 632, 474, 355, 266, 200, 200]);
    expect(Math.min(...limits.slice(1))).toBe(FLOOR);
  });

  it('never below floorPerS, however little it took', () => {
    const { step } = governor();
    for (let i = 0; i < 10; i++) step(0.5, 2); // 20/s
    const limits: number[] = [];
    for (let i = 0; i < 8; i++) limits.push(step(1, 2).limitPerS);
    expect(Math.min(...limits.slice(1))).toBe(FLOOR);
  });

  it('holds between releaseElu and yieldElu, grows below it, and lifts the limit once back at the peak', () => {
    const { step } = governor();
    for (let i = 0; i < 10; i++) step(0.5, 200);
    for (let i = 0; i < 10; i++) step(1, 100);
    expect(step(1).limitPerS).toBe(FLOOR);
    // 0.9: below 0.95, above 0.85 (= 0.95 - RELEASE_ELU_MARGIN): held.
    for (let i = 0; i < 5; i++) expect(step(0.9)).toEqual({ limited: true, limitPerS: FLOOR });
    const grown: number[] = [];
    let s = step(0.3);
    while (s.limited) {
      grown.push(s.limitPerS);
      s = step(0.3);
    }
    // Lifted at the 2,000/s it took before: the next step (2,343) would be past it.
    expect(grown).toEqual([250, 313, 392, 490, 613, 767, 959, 1199, 1499, 1874]);
  });

  it('the peak where the limit is lifted is of half a second, not of one large tick', () => {
    const { step } = governor();
    for (let i = 0; i < 10; i++) step(0.5, i === 5 ? 1000 : 100); // one 10,000/s tick among 1,000/s ones
    for (let i = 0; i < 12; i++) step(1, 20);
    const grown: number[] = [];
    let s = step(0.3);
    while (s.limited) {
      grown.push(s.limitPerS);
      s = step(0.3);
    }
    // Smoothed over 5 ticks the peak is (4 × 1,000 + 10,000) / 5 = 2,800/s: lifted past 2,343, not at 10,000.
    expect(grown.at(-1)).toBe(2343);
  });

  it('limited at most YIELD_MS_MAX in a row, then not again for YIELD_COOLDOWN_MS', () => {
    const { step } = governor();
    let s = step(1, 100);
    s = step(1, 100);
    expect(s.limited).toBe(true);
    let limitedMs = TICK_MS;
    while (s.limited) {
      s = step(1, 20);
      if (s.limited) limitedMs += TICK_MS;
    }
    expect(limitedMs).toBe(YIELD_MS_MAX);
    for (let t = 0; t < YIELD_COOLDOWN_MS - TICK_MS; t += TICK_MS) expect(step(1, 100).limited).toBe(false);
    expect(step(1, 100).limited).toBe(true);
  });

  it('any saturated ingress limits; all must be relaxed to grow', () => {
    const { step, report } = governor();
    report(0.2, 'calm');
    step(1, 100, 'busy');
    expect(step(1, 100, 'busy').limited).toBe(true);
    report(0.2, 'calm');
    const held = step(0.9, 0, 'busy'); // busy ingress between release and yield: held
    expect(held.limited).toBe(true);
    report(0.2, 'calm');
    expect(step(0.2, 0, 'busy').limitPerS).toBeGreaterThan(held.limitPerS);
  });

  it("forgets an ingress that stopped reporting: its last saturated report does not keep the engine limited", () => {
    const { step, clock, g } = governor();
    step(1, 100);
    expect(step(1, 100).limited).toBe(true);
    clock.ms += REPORT_STALE_MS + 1;
    let s = g.tick();
    for (let i = 0; i < 20 && s.limited; i++) s = step(null);
    expect(s.limited).toBe(false);
  });

  it('keeps at most INGRESSES_MAX ingresses', () => {
    const { g, report, step } = governor();
    for (let i = 0; i < INGRESSES_MAX; i++) report(0.1, `i${i}`);
    // A new ingress beyond the bound is not tracked: its saturation does not count.
    report(1, 'extra');
    report(1, 'extra');
    expect(g.tick().limited).toBe(false);
    expect(step(0.1, 0, 'i0').limited).toBe(false);
  });
});

describe('IntakeGovernor: busy is not enough where the ingress knows whether it falls behind its connections', () => {
  function withOverflows() {
    const g = governor();
    /** One tick after a report of `elu`, `overflows` connections turned away and `waiting` in the accept queue. */
    const step = (elu: number, overflows: number, waiting = 0, taken = 100) => {
      g.g.observe({ v: 1, ingress_id: 'i1', elu, window_ms: 100, listen_overflows: overflows, accept_queue: waiting });
      g.g.received(taken);
      g.clock.ms += TICK_MS;
      return g.g.tick();
    };
    return { ...g, step };
  }

  it('a saturated ingress that turns no connection away (a steady overload) does not limit', () => {
    const { step } = withOverflows();
    for (let i = 0; i < 30; i++) expect(step(1, 0).limited).toBe(false);
  });

  it('a saturated ingress turning connections away (a spike) limits', () => {
    const { step } = withOverflows();
    step(1, 0);
    step(1, 0);
    expect(step(1, 40).limited).toBe(true);
  });

  it('a saturated ingress with ACCEPT_QUEUE_BEHIND_MIN connections waiting limits, before any is turned away', () => {
    const { step } = withOverflows();
    for (let i = 0; i < 10; i++) expect(step(1, 0, ACCEPT_QUEUE_BEHIND_MIN - 1).limited).toBe(false);
    expect(step(1, 0, ACCEPT_QUEUE_BEHIND_MIN).limited).toBe(true);
  });

  it('a queue alone, with the ingress not saturated, does not limit', () => {
    const { step } = withOverflows();
    for (let i = 0; i < 10; i++) expect(step(0.5, 0, 4_096).limited).toBe(false);
  });

  it('an ingress that reports only its accept queue (no overflow count) is judged by it', () => {
    const g = governor();
    const step = (waiting: number) => {
      g.g.observe({ v: 1, ingress_id: 'i1', elu: 1, window_ms: 100, accept_queue: waiting });
      g.clock.ms += TICK_MS;
      return g.g.tick();
    };
    for (let i = 0; i < 10; i++) expect(step(0).limited).toBe(false);
    expect(step(ACCEPT_QUEUE_BEHIND_MIN).limited).toBe(true);
  });

  it('falling behind counts for BEHIND_RECENT_MS: later, a still saturated ingress holds the limit', () => {
    const { step } = withOverflows();
    step(1, 10);
    let s = step(1, 10);
    expect(s.limited).toBe(true);
    for (let t = 0; t < BEHIND_RECENT_MS; t += TICK_MS) s = step(1, 0);
    const reached = s.limitPerS;
    // Past the window: no longer falling (not saturated by this rule), not growing (ELU is high).
    for (let i = 0; i < 10; i++) expect(step(1, 0)).toEqual({ limited: true, limitPerS: reached });
  });
});

describe('IntakeGovernor: the bucket', () => {
  it('hands out everything at once while not limited', async () => {
    const { g } = governor();
    await expect(g.take(512)).resolves.toBe(512);
  });

  it('while limited, never hands out more than the rate allows (plus one tick banked)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ max: fc.integer({ min: 1, max: 512 }), extra: fc.integer({ min: 0, max: 8 }), advanceMs: fc.integer({ min: 0, max: 50 }) }), { minLength: 1, maxLength: 60 }),
        (takes) => {
          const { g, clock, step } = governor();
          for (let i = 0; i < 8; i++) step(1, 2);
          const { limitPerS } = g.state;
          expect(limitPerS).toBe(FLOOR);
          const startMs = clock.ms;
          let commands = 0;
          for (const t of takes) {
            clock.ms += t.advanceMs;
            const n = g.tryTake(t.max);
            if (n === 0) continue;
            expect(n).toBeGreaterThanOrEqual(1);
            expect(n).toBeLessThanOrEqual(t.max);
            g.received(n + t.extra);
            commands += n + t.extra;
          }
          const allowed = ((clock.ms - startMs) * limitPerS) / 1000 + (limitPerS * TICK_MS) / 1000;
          // Extras may overdraw the bucket once; what was handed out by take() itself is bounded.
          const extras = takes.reduce((a, t) => a + t.extra, 0);
          expect(commands - extras).toBeLessThanOrEqual(Math.ceil(allowed) + 1);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a limited take waits for its token', async () => {
    const { g, step } = governor();
    for (let i = 0; i < 8; i++) step(1, 2);
    // Take what the bucket banked (one tick at 200/s: 20); this governor's clock stands still, so
    // no token comes back and take() must still be waiting.
    expect(g.tryTake(1000)).toBe(20);
    expect(g.tryTake(1)).toBe(0);
    let result: number | null = null;
    let cancelled = false;
    const taking = g.take(10, () => cancelled).then((n) => (result = n));
    await new Promise((r) => setTimeout(r, 30));
    expect(result).toBeNull();
    cancelled = true;
    await taking;
    expect(result).toBe(0);
  });

  it('a waiting take gets its token once time passes', async () => {
    const { g, clock, step } = governor();
    for (let i = 0; i < 8; i++) step(1, 2);
    expect(g.state.limitPerS).toBe(FLOOR);
    g.tryTake(1000);
    const taking = g.take(10);
    clock.ms += 50; // 200/s × 50 ms = 10 tokens
    await expect(taking).resolves.toBe(10);
  });

  it('refuses programmer errors', async () => {
    expect(() => new IntakeGovernor({ yieldElu: 0, floorPerS: 1 })).toThrow(/assertion/);
    expect(() => new IntakeGovernor({ yieldElu: 0.9, floorPerS: 0 })).toThrow(/assertion/);
    await expect(governor().g.take(0)).rejects.toThrow(/assertion/);
  });
});

describe('ingress load reports on the wire', () => {
  it('round-trip, and anything else decodes to null', () => {
    const r: IngressLoad = { v: 1, ingress_id: 'ingress-1-ab', elu: 0.97, window_ms: 100 };
    expect(decodeIngressLoad(encodeIngressLoad(r))).toEqual(r);
    expect(decodeIngressLoad(encodeIngressLoad({ ...r, listen_overflows: 12 }))).toEqual({ ...r, listen_overflows: 12 });
    expect(decodeIngressLoad(encodeIngressLoad({ ...r, accept_queue: 300 }))).toEqual({ ...r, accept_queue: 300 });
    const enc = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));
    expect(decodeIngressLoad(new TextEncoder().encode('not json'))).toBeNull();
    expect(decodeIngressLoad(enc({ ...r, v: 2 }))).toBeNull();
    expect(decodeIngressLoad(enc({ ...r, elu: 1.5 }))).toBeNull();
    expect(decodeIngressLoad(enc({ ...r, ingress_id: '' }))).toBeNull();
    expect(decodeIngressLoad(enc({ elu: 0.5 }))).toBeNull();
    expect(decodeIngressLoad(enc({ ...r, listen_overflows: -1 }))).toBeNull();
    expect(decodeIngressLoad(enc({ ...r, listen_overflows: 1.5 }))).toBeNull();
    expect(decodeIngressLoad(enc({ ...r, accept_queue: -1 }))).toBeNull();
    expect(decodeIngressLoad(enc({ ...r, accept_queue: 'many' }))).toBeNull();
  });
});
