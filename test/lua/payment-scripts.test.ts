// Behaviour of the money scripts against a real Redis, a fresh key prefix per test.
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { ScriptCode } from '../../engine/redis/errors.ts';
import type { MoneyStore } from '../../engine/redis/store.ts';
import { cmds, freshStore, M, redisClient } from './redis-fixture.ts';

const NOW = 1_764_300_000_000;
let redis: Redis;
let store: MoneyStore;

beforeEach(async () => {
  redis ??= redisClient();
  store = freshStore(redis);
  await store.createAccount(cmds.account('a1'), NOW);
  await store.creditAccount(cmds.credit('a1', 10_000), NOW);
});
afterAll(() => redis?.disconnect());

const balance = () => store.readAccount(M, 'a1');

describe('holds', () => {
  it('holds, then captures part and releases the rest', async () => {
    const h = await store.createPayment(cmds.hold('p1', 'a1', 3000), NOW);
    expect(h.code).toBe(ScriptCode.Ok);
    expect(h.payment?.status).toBe('authorized');
    expect(h.effects).toEqual([['hold', 3000]]);
    expect(await balance()).toMatchObject({ available: 7000, held: 3000 });

    const c = await store.capturePayment(cmds.capture('p1', 1200), NOW + 1);
    expect(c.code).toBe(ScriptCode.Ok);
    expect(c.payment).toMatchObject({ status: 'succeeded', amount_captured: 1200, hold_amount: 0 });
    expect(c.effects).toEqual([['capture', 1200], ['release', 1800]]);
    expect(await balance()).toMatchObject({ available: 8800, held: 0 });
  });

  it('resolves a hold at most once: a second capture or a cancel after capture is an invalid transition', async () => {
    await store.createPayment(cmds.hold('p1', 'a1', 3000), NOW);
    await store.capturePayment(cmds.capture('p1'), NOW);
    const again = await store.capturePayment(cmds.capture('p1'), NOW);
    expect(again.code).toBe(ScriptCode.InvalidTransition);
    const cancel = await store.cancelPayment(cmds.cancel('p1'), NOW);
    expect(cancel.code).toBe(ScriptCode.InvalidTransition);
    expect(await balance()).toMatchObject({ available: 7000, held: 0 });
  });

  it('replays an op id with its first result and no second effect', async () => {
    const hold = cmds.hold('p1', 'a1', 3000);
    const first = await store.createPayment(hold, NOW);
    const second = await store.createPayment(hold, NOW + 5);
    expect(second.replayed).toBe(true);
    expect({ ...second, replayed: false }).toEqual(first);
    const credit = cmds.credit('a1', 500);
    await store.creditAccount(credit, NOW);
    await store.creditAccount(credit, NOW);
    expect(await balance()).toMatchObject({ available: 7500, held: 3000 });
  });

  it('never lets available go below zero: an unfunded hold fails the payment and moves nothing', async () => {
    const r = await store.createPayment(cmds.hold('p1', 'a1', 10_001), NOW);
    expect(r.code).toBe(ScriptCode.Ok);
    expect(r.payment).toMatchObject({ status: 'failed', failure_code: 'balance.insufficient_funds' });
    expect(r.effects).toEqual([]);
    expect(r.events).toEqual(['payment.failed']);
    expect(await balance()).toMatchObject({ available: 10_000, held: 0 });
  });

  it('captures automatically in the same script', async () => {
    const r = await store.createPayment(cmds.hold('p1', 'a1', 2500, { capture: 'automatic' }), NOW);
    expect(r.payment).toMatchObject({ status: 'succeeded', amount_captured: 2500 });
    // One event: nobody ever saw the payment authorized (the hold and its capture are one call).
    expect(r.events).toEqual(['payment.succeeded']);
    expect(r.effects).toEqual([['sale', 2500]]);
    expect(await balance()).toMatchObject({ available: 7500, held: 0 });
  });

  it('cancels (voids) a hold in full', async () => {
    await store.createPayment(cmds.hold('p1', 'a1', 3000), NOW);
    const r = await store.cancelPayment(cmds.cancel('p1'), NOW);
    expect(r.payment?.status).toBe('canceled');
    expect(r.effects).toEqual([['release', 3000]]);
    expect(await balance()).toMatchObject({ available: 10_000, held: 0 });
  });

  it('expires a hold only at its deadline, and refuses to capture past it', async () => {
    await store.createPayment(cmds.hold('p1', 'a1', 3000, { ttlS: 10 }), NOW);
    const early = await store.expirePayment(cmds.expire('p1'), NOW + 9_999);
    expect(early.code).toBe(ScriptCode.NotDue);
    expect(await balance()).toMatchObject({ held: 3000 });
    const late = await store.capturePayment(cmds.capture('p1'), NOW + 10_000);
    expect(late.code).toBe(ScriptCode.HoldExpired);
    expect(late.payment?.status).toBe('expired');
    expect(await balance()).toMatchObject({ available: 10_000, held: 0 });

    await store.createPayment(cmds.hold('p2', 'a1', 1000, { ttlS: 10 }), NOW);
    const expired = await store.expirePayment(cmds.expire('p2'), NOW + 10_000);
    expect(expired.code).toBe(ScriptCode.Ok);
    expect(expired.events).toEqual(['payment.expired']);
    expect(await redis.zcard(store.keys(M).holdsExpiring)).toBe(0);

    // A cancel past the deadline expires the hold too: the outcome does not depend on who came first.
    await store.createPayment(cmds.hold('p3', 'a1', 500, { ttlS: 10 }), NOW);
    const cancel = await store.cancelPayment(cmds.cancel('p3'), NOW + 10_000);
    expect(cancel.code).toBe(ScriptCode.HoldExpired);
    expect(cancel.payment?.status).toBe('expired');
    expect(cancel.events).toEqual(['payment.expired']);
    expect(await balance()).toMatchObject({ available: 10_000, held: 0 });
  });

  it('refuses a capture above the hold, and a second out_trade_no use', async () => {
    await store.createPayment(cmds.hold('p1', 'a1', 3000, { otn: 'T1' }), NOW);
    expect((await store.capturePayment(cmds.capture('p1', 3001), NOW)).code).toBe(ScriptCode.AmountExceedsHold);
    const dup = await store.createPayment(cmds.hold('p2', 'a1', 10, { otn: 'T1' }), NOW);
    expect(dup.code).toBe(ScriptCode.DuplicateOutTradeNo);
    expect(dup.existing).toBe('p1');
    expect(await balance()).toMatchObject({ available: 7000, held: 3000 });
  });

  it('refuses unknown accounts and currency mismatches without a change', async () => {
    expect((await store.createPayment(cmds.hold('p1', 'nobody', 10), NOW)).code).toBe(ScriptCode.AccountNotFound);
    expect((await store.creditAccount(cmds.credit('a1', 10, 'USD'), NOW)).code).toBe(ScriptCode.CurrencyMismatch);
    expect((await store.createAccount(cmds.account('a1', 'USD'), NOW)).code).toBe(ScriptCode.AccountCurrencyConflict);
    expect((await store.capturePayment(cmds.capture('nope'), NOW)).code).toBe(ScriptCode.PaymentNotFound);
    expect(await balance()).toMatchObject({ available: 10_000, held: 0 });
  });

  it('keeps every key of the merchant under its hash tag', async () => {
    await store.createPayment(cmds.hold('p1', 'a1', 3000), NOW);
    const keys = await redis.keys(`${store.prefix}:*`);
    expect(keys.length).toBeGreaterThan(3);
    for (const k of keys) expect(k.startsWith(`${store.prefix}:{${M}}:`)).toBe(true);
  });
});
