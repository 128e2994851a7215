// The load shapes of the scenarios, shared by the k6 scripts and the Node load generator
// (loadtest/run.ts, loadtest/bench.ts) so both run the same thing. Pure data: no k6 or Node import.

/** Ramp linearly from the previous stage's target (or the start rate) to `target` in `durationS`. */
export type Stage = { durationS: number; target: number };

/** Singles' Day: normal traffic, the midnight spike of `factor` × normal, back to normal. */
export function rehearsalStages(normalPerS: number, factor: number, opts: { warmS?: number; rampS?: number; spikeS?: number; afterS?: number } = {}): Stage[] {
  const warmS = opts.warmS ?? 60;
  const rampS = opts.rampS ?? 10;
  const spikeS = opts.spikeS ?? 120;
  const afterS = opts.afterS ?? 120;
  const peak = Math.round(normalPerS * factor);
  return [
    { durationS: warmS, target: normalPerS },
    { durationS: rampS, target: peak },
    { durationS: spikeS, target: peak },
    { durationS: rampS, target: normalPerS },
    { durationS: afterS, target: normalPerS },
  ];
}

/** One merchant taking all traffic: ramp up to `ratePerS`, hold it. */
export function hotMerchantStages(ratePerS: number, holdS = 120, rampS = 20): Stage[] {
  return [
    { durationS: rampS, target: ratePerS },
    { durationS: holdS, target: ratePerS },
  ];
}

/** Seconds from the start of the stages to the end of the spike plateau of rehearsalStages(). */
export function spikeEndS(stages: readonly Stage[]): number {
  let t = 0;
  let peak = 0;
  let end = 0;
  for (const s of stages) {
    t += s.durationS;
    if (s.target > peak) peak = s.target;
    if (s.target === peak) end = t;
  }
  return end;
}

export const totalS = (stages: readonly Stage[]) => stages.reduce((a, s) => a + s.durationS, 0);

/** k6's stage format. */
export const k6Stages = (stages: readonly Stage[]) => stages.map((s) => ({ duration: `${s.durationS}s`, target: s.target }));

/** The rate a ramping-arrival-rate executor aims at `tS` seconds after the start (k6 semantics). */
export function rateAt(stages: readonly Stage[], startRate: number, tS: number): number {
  let from = startRate;
  let t0 = 0;
  for (const s of stages) {
    if (tS < t0 + s.durationS) return from + ((s.target - from) * (tS - t0)) / s.durationS;
    t0 += s.durationS;
    from = s.target;
  }
  return 0;
}

/** How many arrivals a ramping-arrival-rate executor has started by `tS` (the integral of rateAt). */
export function arrivalsBy(stages: readonly Stage[], startRate: number, tS: number): number {
  let from = startRate;
  let t0 = 0;
  let n = 0;
  for (const s of stages) {
    const span = Math.min(s.durationS, Math.max(0, tS - t0));
    const to = from + ((s.target - from) * span) / s.durationS;
    n += ((from + to) / 2) * span;
    if (tS < t0 + s.durationS) return n;
    t0 += s.durationS;
    from = s.target;
  }
  return n;
}
