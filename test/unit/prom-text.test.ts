// unlabelledValues (loadtest/lib/prom-text.ts) on what prom-client really exposes.
import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { unlabelledValues } from '../../loadtest/lib/prom-text.ts';

describe('unlabelledValues', () => {
  it('reads unlabelled series by name, skips labelled ones, comments and names not asked for', async () => {
    const registry = new Registry();
    const c = new Counter({ name: 'x_accepts_total', help: 'h', registers: [registry] });
    const g = new Gauge({ name: 'x_limited_seconds_total', help: 'h', registers: [registry] });
    const labelled = new Counter({ name: 'x_labelled_total', help: 'h', labelNames: ['kind'] as const, registers: [registry] });
    c.inc(41);
    c.inc();
    g.set(12.5);
    labelled.labels('a').inc(7);
    const text = await registry.metrics();
    expect(unlabelledValues(text, ['x_accepts_total', 'x_limited_seconds_total', 'x_labelled_total', 'x_missing_total'])).toEqual({
      x_accepts_total: 42, x_limited_seconds_total: 12.5,
    });
    expect(unlabelledValues(text, [])).toEqual({});
  });

  it('takes +Inf and -Inf, and leaves out a value that is not a number', () => {
    expect(unlabelledValues('a_total +Inf\nb -Inf\nc NaN\nd notanumber\n# HELP a_total x\n', ['a_total', 'b', 'c', 'd'])).toEqual({ a_total: Infinity, b: -Infinity });
  });
});
