import { describe, expect, it } from 'vitest';
import { isConfigError, loadConfig } from '../../engine/config.ts';

const KEY = 'ab'.repeat(32);

describe('configuration', () => {
  it('applies defaults', () => {
    const c = loadConfig({ PEAKPAY_MASTER_KEY: KEY });
    expect(c.shardCount).toBe(16);
    expect(c.masterKey.length).toBe(32);
    expect(c.namespace).toBe('pp');
    expect(c.ingressBacklogLagMs).toBe(1000);
  });

  it('leaves yielding to a saturated ingress off unless set, and reads the percentage as a share', () => {
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY }).engineYield).toBeNull();
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_ENGINE_YIELD_ELU_PERCENT: '95' }).engineYield).toEqual({ elu: 0.95, floorPerS: 200 });
    expect(() => loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_ENGINE_YIELD_ELU_PERCENT: '101' })).toThrow(/PEAKPAY_ENGINE_YIELD_ELU_PERCENT/);
    expect(() => loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_ENGINE_YIELD_FLOOR_PER_S: '0' })).toThrow(/PEAKPAY_ENGINE_YIELD_FLOOR_PER_S/);
  });

  it('keeps the backlog setting below the ingress deadline', () => {
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_INGRESS_DEADLINE_MS: '300' }).ingressBacklogLagMs).toBe(150);
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_INGRESS_BACKLOG_LAG_MS: '0' }).ingressBacklogLagMs).toBe(0);
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY }).ingressFrontDoorQueue).toBe(0);
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_ENGINE_YIELD_ELU_PERCENT: '95' }).ingressFrontDoorQueue).toBe(128);
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_ENGINE_YIELD_ELU_PERCENT: '95', PEAKPAY_INGRESS_FRONT_DOOR_QUEUE: '0' }).ingressFrontDoorQueue).toBe(0);
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_INGRESS_FRONT_DOOR_QUEUE: '300' }).ingressFrontDoorQueue).toBe(300);
    expect(() => loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_INGRESS_FRONT_DOOR_QUEUE: '-1' })).toThrow(/PEAKPAY_INGRESS_FRONT_DOOR_QUEUE/);
    expect(() => loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_INGRESS_BACKLOG_LAG_MS: '2000' })).toThrow(/PEAKPAY_INGRESS_BACKLOG_LAG_MS: must be below/);
  });

  it('names a missing variable', () => {
    try {
      loadConfig({});
      expect.unreachable();
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
      expect((err as Error).message).toMatch(/PEAKPAY_MASTER_KEY: missing/);
    }
  });

  it('names a bad variable', () => {
    expect(() => loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_SHARD_COUNT: 'many' })).toThrow(/PEAKPAY_SHARD_COUNT/);
    expect(() => loadConfig({ PEAKPAY_MASTER_KEY: KEY, REDIS_URL: 'not a url' })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ PEAKPAY_MASTER_KEY: 'short' })).toThrow(/PEAKPAY_MASTER_KEY: must be 64/);
  });
});
