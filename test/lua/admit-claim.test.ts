// admitClaim-3.lua on a real Redis, a fresh key prefix per test: the nonce, the merchant's bucket
// and the Idempotency-Key claim in one script, refusing without writing anything, and claiming
// exactly as idempotencyBegin-1 does (IdempotencyStore.begin).
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyStore, type AdmissionArgs } from '../../ingress/idempotency.ts';
import { redisClient } from './redis-fixture.ts';

let redis: Redis;
beforeAll(() => {
  redis = redisClient();
});
afterAll(() => {
  redis?.disconnect();
});

const fresh = () => {
  const prefix = `ac${randomBytes(5).toString('hex')}`;
  return { prefix, store: new IdempotencyStore(redis, prefix) };
};
const keysOf = async (prefix: string) => (await redis.keys(`${prefix}:*`)).sort();
const NO_LIMIT: AdmissionArgs = { ratePerS: 0, burst: 1, nonceTtlS: 600 };

describe('admitClaim-3', () => {
  it('admits a new nonce and claims the key; the same nonce again is refused and writes nothing', async () => {
    const { prefix, store } = fresh();
    expect(await store.admitAndBegin('m1', 'key-1', 'fp-a', 'nonce-1', NO_LIMIT)).toEqual({ kind: 'admitted', claim: { state: 'new' } });
    const after = await keysOf(prefix);
    expect(after).toHaveLength(2); // the nonce and the claim; no bucket without a limit
    expect(await redis.ttl(after.find((k) => k.includes(':nonce:')) as string)).toBeGreaterThan(590);
    expect(await store.admitAndBegin('m1', 'key-2', 'fp-b', 'nonce-1', NO_LIMIT)).toEqual({ kind: 'nonce_reused' });
    expect(await keysOf(prefix)).toEqual(after);
  });

  it('claims as begin() does: in progress, mismatch, done with the stored response, retryable claimed again', async () => {
    const { store } = fresh();
    const n = () => `n-${randomBytes(4).toString('hex')}`;
    expect((await store.admitAndBegin('m1', 'k', 'fp', n(), NO_LIMIT))).toEqual({ kind: 'admitted', claim: { state: 'new' } });
    expect((await store.admitAndBegin('m1', 'k', 'fp', n(), NO_LIMIT))).toEqual({ kind: 'admitted', claim: { state: 'in_progress' } });
    expect((await store.admitAndBegin('m1', 'k', 'other', n(), NO_LIMIT))).toEqual({ kind: 'admitted', claim: { state: 'mismatch' } });
    await store.finish('m1', 'k', { status: 201, headers: { location: '/v1/x' }, body: '{"id":"x"}' });
    expect(await store.admitAndBegin('m1', 'k', 'fp', n(), NO_LIMIT)).toEqual({
      kind: 'admitted', claim: { state: 'done', response: { status: 201, headers: { location: '/v1/x' }, body: '{"id":"x"}' } },
    });
    expect(await store.begin('m1', 'k', 'fp')).toEqual({ state: 'done', response: { status: 201, headers: { location: '/v1/x' }, body: '{"id":"x"}' } });
    await store.begin('m1', 'k3', 'fp3');
    await store.retryable('m1', 'k3');
    expect((await store.admitAndBegin('m1', 'k3', 'fp3', n(), NO_LIMIT))).toEqual({ kind: 'admitted', claim: { state: 'new' } });
  });

  it('takes a token per admitted request; over the limit it answers the wait and writes no nonce and no claim', async () => {
    const { prefix, store } = fresh();
    const limit: AdmissionArgs = { ratePerS: 1, burst: 2, nonceTtlS: 600 };
    expect((await store.admitAndBegin('m1', 'a', 'fa', 'n1', limit)).kind).toBe('admitted');
    expect((await store.admitAndBegin('m1', 'b', 'fb', 'n2', limit)).kind).toBe('admitted');
    const before = await keysOf(prefix);
    const third = await store.admitAndBegin('m1', 'c', 'fc', 'n3', limit);
    expect(third.kind).toBe('limited');
    expect(third.kind === 'limited' && third.retryAfterMs).toBeGreaterThan(0);
    expect(third.kind === 'limited' && third.retryAfterMs).toBeLessThanOrEqual(1000);
    expect(await keysOf(prefix)).toEqual(before);
    // The refused request's nonce is still unused: the same request may be retried.
    await new Promise((r) => setTimeout(r, third.kind === 'limited' ? third.retryAfterMs + 20 : 0));
    expect(await store.admitAndBegin('m1', 'c', 'fc', 'n3', limit)).toEqual({ kind: 'admitted', claim: { state: 'new' } });
  });
});
