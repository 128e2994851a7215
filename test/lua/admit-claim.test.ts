// admitClaim-3.lua on a real Redis, a fresh key prefix per test: the nonce, the merchant's bucket
// and the Idempotency-Key claim in one script, refusing without writing anything, and claiming
// exactly as idempotencyBegin-1 does (IdempotencyStore.begin).
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyStore, idempotencyKeySha256, IDEMPOTENCY_TTL_S, type AdmissionArgs } from '../../ingress/idempotency.ts';
import { ScriptCode } from '../../engine/redis/errors.ts';
import { cmds, freshStore, M, redisClient } from './redis-fixture.ts';

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
    expect(await store.admitAndBegin('m1', 'key-1', 'fp-a', 'nonce-1', NO_LIMIT, 'cmd_1')).toEqual({ kind: 'admitted', claim: { state: 'new' } });
    const after = await keysOf(prefix);
    expect(after).toHaveLength(2); // the nonce and the claim; no bucket without a limit
    expect(await redis.ttl(after.find((k) => k.includes(':nonce:')) as string)).toBeGreaterThan(590);
    expect(await store.admitAndBegin('m1', 'key-2', 'fp-b', 'nonce-1', NO_LIMIT, 'cmd_1')).toEqual({ kind: 'nonce_reused' });
    expect(await keysOf(prefix)).toEqual(after);
  });

  it('claims as begin() does: in progress, mismatch, done with the stored response, retryable claimed again', async () => {
    const { store } = fresh();
    const n = () => `n-${randomBytes(4).toString('hex')}`;
    expect((await store.admitAndBegin('m1', 'k', 'fp', n(), NO_LIMIT, 'cmd_1'))).toEqual({ kind: 'admitted', claim: { state: 'new' } });
    expect((await store.admitAndBegin('m1', 'k', 'fp', n(), NO_LIMIT, 'cmd_1'))).toEqual({ kind: 'admitted', claim: { state: 'in_progress' } });
    expect((await store.admitAndBegin('m1', 'k', 'other', n(), NO_LIMIT, 'cmd_1'))).toEqual({ kind: 'admitted', claim: { state: 'mismatch' } });
    await store.finish('m1', 'k', { status: 201, headers: { location: '/v1/x' }, body: '{"id":"x"}' });
    expect(await store.admitAndBegin('m1', 'k', 'fp', n(), NO_LIMIT, 'cmd_1')).toEqual({
      kind: 'admitted', claim: { state: 'done', response: { status: 201, headers: { location: '/v1/x' }, body: '{"id":"x"}' } },
    });
    expect(await store.begin('m1', 'k', 'fp', 'cmd_1')).toEqual({ state: 'done', response: { status: 201, headers: { location: '/v1/x' }, body: '{"id":"x"}' } });
    await store.begin('m1', 'k3', 'fp3', 'cmd_1');
    await store.retryable('m1', 'k3');
    expect((await store.admitAndBegin('m1', 'k3', 'fp3', n(), NO_LIMIT, 'cmd_1'))).toEqual({ kind: 'admitted', claim: { state: 'new' } });
  });

  it('takes a token per admitted request; over the limit it answers the wait and writes no nonce and no claim', async () => {
    const { prefix, store } = fresh();
    const limit: AdmissionArgs = { ratePerS: 1, burst: 2, nonceTtlS: 600 };
    expect((await store.admitAndBegin('m1', 'a', 'fa', 'n1', limit, 'cmd_1')).kind).toBe('admitted');
    expect((await store.admitAndBegin('m1', 'b', 'fb', 'n2', limit, 'cmd_1')).kind).toBe('admitted');
    const before = await keysOf(prefix);
    const third = await store.admitAndBegin('m1', 'c', 'fc', 'n3', limit, 'cmd_1');
    expect(third.kind).toBe('limited');
    expect(third.kind === 'limited' && third.retryAfterMs).toBeGreaterThan(0);
    expect(third.kind === 'limited' && third.retryAfterMs).toBeLessThanOrEqual(1000);
    expect(await keysOf(prefix)).toEqual(before);
    // The refused request's nonce is still unused: the same request may be retried.
    await new Promise((r) => setTimeout(r, third.kind === 'limited' ? third.retryAfterMs + 20 : 0));
    expect(await store.admitAndBegin('m1', 'c', 'fc', 'n3', limit, 'cmd_1')).toEqual({ kind: 'admitted', claim: { state: 'new' } });
  });
});

describe('paymentCreate-11 completes the claim of its own command', () => {
  const NOW = 1_764_300_000_000;
  const setup = async () => {
    const money = freshStore(redis);
    const idem = new IdempotencyStore(redis, money.prefix);
    await money.createAccount(cmds.account('a1'), NOW);
    await money.creditAccount(cmds.credit('a1', 10_000), NOW);
    const record = (key: string) => money.keys(M).idempotency(idempotencyKeySha256(key));
    return { money, idem, record };
  };
  const n = () => `n-${randomBytes(4).toString('hex')}`;

  it('a balance payment: the record is done, kept 24 h, and a claim answers done_op naming the op record', async () => {
    const { money, idem, record } = await setup();
    for (const [key, cmd] of [
      ['k-auto', cmds.hold('p1', 'a1', 2500, { capture: 'automatic' })],
      ['k-hold', cmds.hold('p2', 'a1', 1000)],
      ['k-unfunded', cmds.hold('p3', 'a1', 1_000_000)], // failed for funds: still a 201 answer
    ] as const) {
      expect(await idem.admitAndBegin(M, key, 'fp', n(), NO_LIMIT, cmd.cmd_id)).toEqual({ kind: 'admitted', claim: { state: 'new' } });
      const r = await money.createPayment({ ...cmd, idempotency_key_sha256: idempotencyKeySha256(key) }, NOW);
      expect(r.code).toBe(ScriptCode.Ok);
      expect(r.idempotencyCompleted).toBe(true);
      expect(await redis.hgetall(record(key))).toEqual({ state: 'done', fp: 'fp', cmd: cmd.cmd_id });
      expect(await redis.ttl(record(key))).toBeGreaterThan(IDEMPOTENCY_TTL_S - 5);
      expect(await idem.begin(M, key, 'fp', cmd.cmd_id)).toEqual({ state: 'done_op', cmdId: cmd.cmd_id });
      expect(await idem.begin(M, key, 'other-fp', 'cmd_other')).toEqual({ state: 'mismatch' });
      const { idempotencyCompleted, ...decided } = r;
      expect(idempotencyCompleted).toBe(true);
      expect(await money.readOpResult(M, cmd.cmd_id)).toEqual({ ...decided, replayed: true });
    }
  });

  it('completes nothing that is not its own running claim: another command, an answered key, an expired claim, a replay', async () => {
    const { money, idem, record } = await setup();
    // The claim of a later request whose first claim expired: another command id.
    const late = cmds.hold('p1', 'a1', 100);
    await idem.begin(M, 'k1', 'fp2', 'cmd_later');
    const r1 = await money.createPayment({ ...late, idempotency_key_sha256: idempotencyKeySha256('k1') }, NOW);
    expect(r1.code).toBe(ScriptCode.Ok);
    expect(r1.idempotencyCompleted).toBeUndefined();
    expect(await redis.hgetall(record('k1'))).toEqual({ state: 'running', fp: 'fp2', cmd: 'cmd_later' });

    // Answered by the ingress first (a 202 past its deadline): its answer stays.
    const slow = cmds.hold('p2', 'a1', 100);
    await idem.begin(M, 'k2', 'fp', slow.cmd_id);
    const answered = { status: 202, headers: { location: '/v1/payments/p2' }, body: '{"status":"processing"}' };
    await idem.finish(M, 'k2', answered);
    const r2 = await money.createPayment({ ...slow, idempotency_key_sha256: idempotencyKeySha256('k2') }, NOW);
    expect(r2.idempotencyCompleted).toBeUndefined();
    expect(await idem.begin(M, 'k2', 'fp', slow.cmd_id)).toEqual({ state: 'done', response: answered });

    // No record at all (the claim expired): nothing is created.
    const orphan = cmds.hold('p3', 'a1', 100);
    const r3 = await money.createPayment({ ...orphan, idempotency_key_sha256: idempotencyKeySha256('k3') }, NOW);
    expect(r3.idempotencyCompleted).toBeUndefined();
    expect(await redis.exists(record('k3'))).toBe(0);

    // The same command again (a redelivery, or a retry after the claim was made retryable): the op
    // record answers, the script completes nothing, and the ingress stores the answer itself.
    const cmd = cmds.hold('p4', 'a1', 100);
    await idem.begin(M, 'k4', 'fp', cmd.cmd_id);
    await money.createPayment(cmd, NOW); // first delivery, with no record named
    const again = await money.createPayment({ ...cmd, idempotency_key_sha256: idempotencyKeySha256('k4') }, NOW);
    expect(again.replayed).toBe(true);
    expect(again.idempotencyCompleted).toBeUndefined();
    expect((await redis.hgetall(record('k4'))).state).toBe('running');
  });

  it('completes nothing for a refusal or a channel payment: those answers are not the op record alone', async () => {
    const { money, idem, record } = await setup();
    const unknown = cmds.hold('p1', 'nobody', 100);
    await idem.begin(M, 'k1', 'fp', unknown.cmd_id);
    const r1 = await money.createPayment({ ...unknown, idempotency_key_sha256: idempotencyKeySha256('k1') }, NOW);
    expect(r1.code).toBe(ScriptCode.AccountNotFound);
    expect(r1.idempotencyCompleted).toBeUndefined();
    expect((await redis.hgetall(record('k1'))).state).toBe('running');

    const channel = { ...cmds.hold('p2', 'a1', 100), method: 'alipay' as const, idempotency_key_sha256: idempotencyKeySha256('k2') };
    await idem.begin(M, 'k2', 'fp', channel.cmd_id);
    const r2 = await money.createPayment(channel, NOW);
    expect(r2.payment?.status).toBe('pending');
    expect(r2.idempotencyCompleted).toBeUndefined();
    expect((await redis.hgetall(record('k2'))).state).toBe('running');
  });
});
