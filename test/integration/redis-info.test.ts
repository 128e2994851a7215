// The benchmark says when a Redis AOF rewrite ran during a scenario (loadtest/lib/redis-info.ts):
// against the stack's real Redis, which runs with AOF on, a rewrite asked for is counted once, and
// no rewrite is counted as none.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { aofRewritesBetween, aofState, type AofState } from '../../loadtest/lib/redis-info.ts';

const redis = new Redis(inject('stack').redisUrl);
afterAll(() => redis.disconnect());

const REWRITE_WAIT_MS_MAX = 30_000;

async function settled(): Promise<AofState> {
  const deadline = Date.now() + REWRITE_WAIT_MS_MAX;
  for (;;) {
    const s = await aofState(redis);
    if (s === null) throw new Error('the stack runs Redis without AOF');
    if (!s.inProgress) return s;
    if (Date.now() > deadline) throw new Error('AOF rewrite still running');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('AOF rewrites during a scenario', () => {
  it('counts none when none ran, one when one was asked for, and one still running', async () => {
    const before = await settled();
    expect(aofRewritesBetween(before, await aofState(redis))).toBe(0);
    await redis.bgrewriteaof();
    const running = await aofState(redis);
    const after = await settled();
    expect(aofRewritesBetween(before, after)).toBe(1);
    // Seen running (or already done) at the end of a window: one rewrite in it.
    expect(aofRewritesBetween(before, running)).toBe(1);
    // Running at the start of a window (or done by then) and over at its end: counted once if it ran.
    expect(aofRewritesBetween(running, after)).toBe(running?.inProgress ? 1 : 0);
    expect(aofRewritesBetween(null, after)).toBeNull();
  });
});
