// Risk rules inside paymentCreate, against a real Redis, a fresh key prefix per test: every rule,
// the evaluation order, the Asia/Shanghai day and hour boundaries, refusals changing nothing, the
// daily cap given back on cancel / expiry / partial capture, verify, and op-id replays.
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { PROTOCOL_VERSION, type CommandOf } from '../../engine/protocol/commands.ts';
import type { Buyer } from '../../engine/protocol/payment.ts';
import { ScriptCode } from '../../engine/redis/errors.ts';
import type { MoneyStore } from '../../engine/redis/store.ts';
import { BLACKLIST_ENTRIES_MAX, RISK_DEFAULTS, shanghaiDay } from '../../engine/risk/rules.ts';
import type { RiskSettings } from '../../engine/risk/settings.ts';
import { cmds, freshStore, M, opId, redisClient } from './redis-fixture.ts';

// 2025-11-28 12:00 in Asia/Shanghai (04:00 UTC): mid-day, inside no window.
const NOON = Date.UTC(2025, 10, 28, 4, 0, 0);
// Local midnight Nov 28 → 29 is 16:00 UTC on Nov 28.
const MIDNIGHT = Date.UTC(2025, 10, 28, 16, 0, 0);
const H = 3_600_000;
const FUNDS = 10_000_000;

let redis: Redis;
let store: MoneyStore;

beforeEach(async () => {
  redis ??= redisClient();
  store = freshStore(redis);
  await store.createAccount(cmds.account('a1'), NOON);
  await store.creditAccount(cmds.credit('a1', FUNDS), NOON);
});
afterAll(() => redis?.disconnect());

let n = 0;
type PayOpts = { buyer?: Buyer; capture?: 'manual' | 'automatic'; ttlS?: number; account?: string; currency?: 'CNY' | 'USD' };
function payCmd(amount: number, o: PayOpts = {}): CommandOf<'payment.create'> {
  const id = `p${++n}`;
  return {
    ...cmds.hold(id, o.account ?? 'a1', amount, { capture: o.capture ?? 'manual', ttlS: o.ttlS ?? 900 }),
    ...(o.currency && { currency: o.currency }),
    ...(o.buyer && { buyer: o.buyer }),
  };
}
const pay = (amount: number, o: PayOpts = {}, nowMs = NOON) => store.createPayment(payCmd(amount, o), nowMs);
const u = (user_id: string, more: Omit<Buyer, 'user_id'> = {}): PayOpts => ({ buyer: { user_id, ...more } });

const configure = (settings: RiskSettings, nowMs = NOON) =>
  store.configureRisk({ v: PROTOCOL_VERSION, type: 'risk.configure', cmd_id: opId(), merchant_id: M, ts_ms: 1, settings }, nowMs);
const blacklist = (action: 'add' | 'remove', kind: 'user' | 'device' | 'ip', value: string, cmd_id = opId()) =>
  store.changeBlacklist({ v: PROTOCOL_VERSION, type: 'risk.blacklist', cmd_id, merchant_id: M, ts_ms: 1, action, kind, value }, NOON);
const verifyCmd = (payment_id: string): CommandOf<'payment.verify'> => ({
  v: PROTOCOL_VERSION, type: 'payment.verify', cmd_id: opId(), merchant_id: M, ts_ms: 1, payment_id,
});

const balance = () => store.readAccount(M, 'a1');
const dayTotal = async (user: string, nowMs = NOON, currency = 'CNY') =>
  Number((await redis.hget(store.keys(M).riskUserDay(shanghaiDay(nowMs), user), currency)) ?? 0);

/** Every key of the prefix with its value: to show that a refusal changes nothing but its own record. */
async function snapshot(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const k of await redis.keys(`${store.prefix}:*`)) out.set(k, JSON.stringify(await redis.dump(k)));
  return out;
}

describe('defaults', () => {
  it('applies the documented defaults when nothing is configured', async () => {
    const r = await configure({ unusual_hours: [] });
    expect(r.code).toBe(ScriptCode.Ok);
    expect(r.risk?.settings).toEqual(RISK_DEFAULTS);
    expect(r.events).toEqual(['risk.configured']);
    expect(r.effects).toEqual([]);
  });
});

describe('risk.blacklisted', () => {
  it('refuses a blacklisted user, device or ip (IPv6 compared canonically), and lets them pay once removed', async () => {
    await blacklist('add', 'user', 'u_bad');
    await blacklist('add', 'device', 'd_bad');
    const ip = await blacklist('add', 'ip', '2001:DB8:0::9');
    expect(ip.risk?.blacklist).toEqual({ action: 'add', kind: 'ip', value: '2001:db8::9', changed: true, size: 3 });
    for (const buyer of [{ user_id: 'u_bad' }, { user_id: 'u_ok', device_id: 'd_bad' }, { user_id: 'u_ok', ip: '2001:db8::0:9' }]) {
      const r = await pay(100, { buyer });
      expect(r.code).toBe(ScriptCode.Ok);
      expect(r.payment).toMatchObject({ status: 'failed', failure_code: 'risk.blacklisted', hold_amount: 0 });
      expect(r.effects).toEqual([]);
      expect(r.events).toEqual(['payment.failed']);
    }
    expect(await balance()).toMatchObject({ available: FUNDS, held: 0 });

    const again = await blacklist('add', 'user', 'u_bad');
    expect(again.risk?.blacklist?.changed).toBe(false);
    const removed = await blacklist('remove', 'user', 'u_bad');
    expect(removed.risk?.blacklist).toMatchObject({ action: 'remove', changed: true, size: 2 });
    expect((await pay(100, u('u_bad'))).payment?.status).toBe('authorized');
  });

  it('refuses an add beyond the most entries a blacklist may hold, changing nothing', async () => {
    for (let from = 0; from < BLACKLIST_ENTRIES_MAX; from += 10_000) {
      await redis.sadd(store.keys(M).riskBlacklist, Array.from({ length: 10_000 }, (_, i) => `user:x${from + i}`));
    }
    const full = await blacklist('add', 'user', 'one_more');
    expect(full.code).toBe(ScriptCode.RiskBlacklistFull);
    expect(full.events).toEqual([]);
    expect(await redis.scard(store.keys(M).riskBlacklist)).toBe(BLACKLIST_ENTRIES_MAX);
    expect((await blacklist('add', 'user', 'x5')).code).toBe(ScriptCode.Ok); // already there: no growth
    expect((await blacklist('remove', 'user', 'x5')).code).toBe(ScriptCode.Ok);
    await redis.unlink(store.keys(M).riskBlacklist);
  });
});

describe('risk.device_multi_account', () => {
  it('refuses the (K+1)-th distinct user of a device in a day; known users and the next day pass', async () => {
    for (const user of ['u1', 'u2', 'u3']) expect((await pay(100, u(user, { device_id: 'd1' }))).payment?.status).toBe('authorized');
    const fourth = await pay(100, u('u4', { device_id: 'd1' }));
    expect(fourth.payment).toMatchObject({ status: 'failed', failure_code: 'risk.device_multi_account' });
    // The refusal did not take a slot: still three users on the device.
    expect(await redis.scard(store.keys(M).riskDeviceDay(shanghaiDay(NOON), 'd1'))).toBe(3);
    expect((await pay(100, u('u1', { device_id: 'd1' }))).payment?.status).toBe('authorized');
    expect((await pay(100, u('u4', { device_id: 'd2' }))).payment?.status).toBe('authorized');
    expect((await pay(100, u('u4', { device_id: 'd1' }), MIDNIGHT)).payment?.status).toBe('authorized');
  });

  it('follows the configured K, and is off with null', async () => {
    await configure({ device_accounts_max: 1 });
    await pay(100, u('u1', { device_id: 'd1' }));
    expect((await pay(100, u('u2', { device_id: 'd1' }))).payment?.failure_code).toBe('risk.device_multi_account');
    await configure({ device_accounts_max: null });
    expect((await pay(100, u('u2', { device_id: 'd1' }))).payment?.status).toBe('authorized');
  });
});

describe('risk.velocity_exceeded (sliding window)', () => {
  it('allows N payments in any window of W seconds, counting from each payment time', async () => {
    await configure({ velocity: { max: 3, window_s: 60 } });
    for (let i = 0; i < 3; i++) expect((await pay(100, u('u1'), NOON + i * 10_000)).payment?.status).toBe('authorized');
    // Payments at NOON, +10 s, +20 s: at +59.999 s all three are inside (t - 60 s, t].
    const fourth = await pay(100, u('u1'), NOON + 59_999);
    expect(fourth.payment).toMatchObject({ status: 'failed', failure_code: 'risk.velocity_exceeded' });
    expect(await redis.zcard(store.keys(M).riskUserVelocity('u1'))).toBe(3);
    // At +60 s the first has left the window.
    expect((await pay(100, u('u1'), NOON + 60_000)).payment?.status).toBe('authorized');
    expect((await pay(100, u('u1'), NOON + 60_001)).payment?.failure_code).toBe('risk.velocity_exceeded');
    expect((await pay(100, u('u2'), NOON + 60_001)).payment?.status).toBe('authorized');
  });

  it('defaults to 20 per 60 s', async () => {
    for (let i = 0; i < 20; i++) expect((await pay(100, u('u1'))).payment?.status).toBe('authorized');
    expect((await pay(100, u('u1'))).payment?.failure_code).toBe('risk.velocity_exceeded');
    await configure({ velocity: null });
    expect((await pay(100, u('u1'))).payment?.status).toBe('authorized');
  });
});

describe('risk.daily_cap_exceeded', () => {
  it('allows up to the cap (500000 fen CNY by default) and refuses what would exceed it', async () => {
    expect((await pay(300_000, u('u1'))).payment?.status).toBe('authorized');
    expect((await pay(200_000, u('u1', { device_id: 'd1' }), NOON + 1)).payment?.status).toBe('authorized');
    const over = await pay(1, u('u1'), NOON + 2);
    expect(over.payment).toMatchObject({ status: 'failed', failure_code: 'risk.daily_cap_exceeded' });
    expect(await dayTotal('u1')).toBe(500_000);
    expect((await pay(500_000, u('u2'))).payment?.status).toBe('authorized');
    expect((await pay(500_001, u('u3'))).payment?.failure_code).toBe('risk.daily_cap_exceeded');
    // Without a user_id there is nothing to count against.
    expect((await pay(600_000)).payment?.status).toBe('authorized');
  });

  it('counts automatic captures too, and has no cap for a currency without one', async () => {
    expect((await pay(500_000, { ...u('u1'), capture: 'automatic' })).payment?.status).toBe('succeeded');
    expect((await pay(1, u('u1'))).payment?.failure_code).toBe('risk.daily_cap_exceeded');
    await store.createAccount(cmds.account('usd', 'USD'), NOON);
    await store.creditAccount(cmds.credit('usd', FUNDS, 'USD'), NOON);
    const usd = await pay(FUNDS, { ...u('u1'), account: 'usd', currency: 'USD' });
    expect(usd.payment?.status).toBe('authorized');
    await configure({ daily_caps: { USD: 100 } });
    expect((await pay(1, { ...u('u1'), account: 'usd', currency: 'USD' })).payment?.failure_code).toBe('risk.daily_cap_exceeded');
  });

  it('follows a configured cap, and null switches it off', async () => {
    const r = await configure({ daily_caps: { CNY: 1_000 } });
    expect(r.risk?.settings?.daily_caps).toEqual({ CNY: 1_000 });
    expect((await pay(1_001, u('u1'))).payment?.failure_code).toBe('risk.daily_cap_exceeded');
    expect((await pay(1_000, u('u1'))).payment?.status).toBe('authorized');
    const off = await configure({ daily_caps: { CNY: null } });
    expect(off.risk?.settings?.daily_caps).toEqual({});
    expect((await pay(900_000, u('u1'))).payment?.status).toBe('authorized');
  });

  it('starts a new day at midnight Asia/Shanghai: 15:59:59.999 UTC is the old day, 16:00 UTC the new one', async () => {
    const before = MIDNIGHT - 1;
    expect(shanghaiDay(MIDNIGHT)).toBe(shanghaiDay(before) + 1);
    expect((await pay(500_000, u('u1'), before)).payment?.status).toBe('authorized');
    expect((await pay(1, u('u1'), before)).payment?.failure_code).toBe('risk.daily_cap_exceeded');
    expect((await pay(500_000, u('u1'), MIDNIGHT)).payment?.status).toBe('authorized');
    expect(await dayTotal('u1', before)).toBe(500_000);
    expect(await dayTotal('u1', MIDNIGHT)).toBe(500_000);
    // Counters live two days.
    const ttl = await redis.ttl(store.keys(M).riskUserDay(shanghaiDay(MIDNIGHT), 'u1'));
    expect(ttl).toBeGreaterThan(172_700);
    expect(ttl).toBeLessThanOrEqual(172_800);
  });
});

describe('the cap given back', () => {
  it('on cancel the same day: the whole hold', async () => {
    const h = await pay(400_000, u('u1'));
    const c = await store.cancelPayment(cmds.cancel(h.payment?.id as string), NOON + H);
    expect(c.effects).toEqual([['release', 400_000]]);
    expect(await dayTotal('u1')).toBe(0);
    expect((await pay(500_000, u('u1'), NOON + H)).payment?.status).toBe('authorized');
  });

  it('on expiry the same day', async () => {
    const h = await pay(400_000, { ...u('u1'), ttlS: 60 });
    const e = await store.expirePayment(cmds.expire(h.payment?.id as string), NOON + 60_000);
    expect(e.payment?.status).toBe('expired');
    expect(await dayTotal('u1')).toBe(0);
  });

  it('on a partial capture: the released rest only', async () => {
    const h = await pay(400_000, u('u1'));
    await store.capturePayment(cmds.capture(h.payment?.id as string, 100_000), NOON + 1);
    expect(await dayTotal('u1')).toBe(100_000);
    expect((await pay(400_000, u('u1'), NOON + 2)).payment?.status).toBe('authorized');
    expect((await pay(1, u('u1'), NOON + 3)).payment?.failure_code).toBe('risk.daily_cap_exceeded');
    // A full capture gives nothing back.
    const full = await pay(100, u('u2'));
    await store.capturePayment(cmds.capture(full.payment?.id as string), NOON + 4);
    expect(await dayTotal('u2')).toBe(100);
  });

  it('not on a later day: that day never counted it, and the old day is left as it was', async () => {
    const h = await pay(400_000, u('u1'), MIDNIGHT - 1);
    await pay(100_000, u('u1'), MIDNIGHT);
    await store.cancelPayment(cmds.cancel(h.payment?.id as string), MIDNIGHT);
    expect(await dayTotal('u1', MIDNIGHT - 1)).toBe(400_000);
    expect(await dayTotal('u1', MIDNIGHT)).toBe(100_000);
    expect(await balance()).toMatchObject({ held: 100_000 });
  });
});

describe('unusual hours → requires_action → verify', () => {
  // Local 01:00 is 17:00 UTC the day before; local 05:00 is 21:00 UTC.
  const localOne = MIDNIGHT + H;
  const localFive = MIDNIGHT + 5 * H;

  beforeEach(async () => {
    await configure({ unusual_hours: [{ from: '01:00', to: '05:00' }] });
  });

  it('challenges inside [from, to) and holds the funds; not outside', async () => {
    const cases: [number, string][] = [
      [localOne - 1, 'authorized'], [localOne, 'requires_action'], [localFive - 1, 'requires_action'], [localFive, 'authorized'],
    ];
    for (const [at, status] of cases) {
      const r = await pay(100, {}, at);
      expect(r.payment?.status, new Date(at).toISOString()).toBe(status);
      expect(r.effects).toEqual([['hold', 100]]);
      expect(r.payment?.hold_amount).toBe(100);
      expect(r.events).toEqual([status === 'requires_action' ? 'payment.requires_action' : 'payment.authorized']);
    }
    expect(await balance()).toMatchObject({ held: 400 });
  });

  it('handles a window across midnight', async () => {
    await configure({ unusual_hours: [{ from: '23:00', to: '02:00' }] });
    expect((await pay(100, {}, MIDNIGHT - H - 1)).payment?.status).toBe('authorized'); // 22:59:59.999
    expect((await pay(100, {}, MIDNIGHT - H)).payment?.status).toBe('requires_action'); // 23:00
    expect((await pay(100, {}, MIDNIGHT)).payment?.status).toBe('requires_action'); // 00:00
    expect((await pay(100, {}, MIDNIGHT + 2 * H)).payment?.status).toBe('authorized'); // 02:00
  });

  it('comes after the funds check: an unfunded payment fails rather than being challenged', async () => {
    const r = await pay(FUNDS + 1, {}, localOne);
    expect(r.payment).toMatchObject({ status: 'failed', failure_code: 'balance.insufficient_funds' });
  });

  it('verify (manual) → authorized, then capture; capture before verify is an invalid transition', async () => {
    const h = await pay(3_000, u('u1'), localOne);
    const id = h.payment?.id as string;
    expect((await store.capturePayment(cmds.capture(id), localOne + 1)).code).toBe(ScriptCode.InvalidTransition);
    const cmd = verifyCmd(id);
    const v = await store.verifyPayment(cmd, localOne + 2);
    expect(v.code).toBe(ScriptCode.Ok);
    expect(v.payment).toMatchObject({ status: 'authorized', hold_amount: 3_000, hold_expires_at_ms: localOne + 900_000 });
    expect(v.effects).toEqual([]);
    expect(v.events).toEqual(['payment.authorized']);
    const replay = await store.verifyPayment(cmd, localOne + 3);
    expect({ ...replay, replayed: false }).toEqual(v);
    expect((await store.verifyPayment(verifyCmd(id), localOne + 3)).code).toBe(ScriptCode.InvalidTransition);
    const c = await store.capturePayment(cmds.capture(id), localOne + 4);
    expect(c.payment).toMatchObject({ status: 'succeeded', amount_captured: 3_000 });
    expect(await balance()).toMatchObject({ available: FUNDS - 3_000, held: 0 });
  });

  it('verify (automatic) → succeeded, posting the hold', async () => {
    const h = await pay(3_000, { capture: 'automatic' }, localOne);
    expect(h.payment?.status).toBe('requires_action');
    expect(h.effects).toEqual([['hold', 3_000]]);
    const v = await store.verifyPayment(verifyCmd(h.payment?.id as string), localOne + 1);
    expect(v.payment).toMatchObject({ status: 'succeeded', amount_captured: 3_000, hold_amount: 0 });
    expect(v.effects).toEqual([['capture', 3_000]]);
    expect(v.events).toEqual(['payment.succeeded']);
    expect(await balance()).toMatchObject({ available: FUNDS - 3_000, held: 0 });
    expect(await redis.zcard(store.keys(M).holdsExpiring)).toBe(0);
  });

  it('cancel and expiry release a requires_action hold and give the cap back; verify past the deadline expires it', async () => {
    const a = await pay(1_000, { ...u('u1'), ttlS: 60 }, localOne);
    const b = await pay(2_000, { ...u('u1'), ttlS: 60 }, localOne);
    const c = await pay(4_000, { ...u('u1'), ttlS: 60 }, localOne);
    expect(await dayTotal('u1', localOne)).toBe(7_000);
    const canceled = await store.cancelPayment(cmds.cancel(a.payment?.id as string), localOne + 1);
    expect(canceled.payment?.status).toBe('canceled');
    expect(canceled.effects).toEqual([['release', 1_000]]);
    const expired = await store.expirePayment(cmds.expire(b.payment?.id as string), localOne + 60_000);
    expect(expired.code).toBe(ScriptCode.Ok);
    expect(expired.effects).toEqual([['release', 2_000]]);
    const late = await store.verifyPayment(verifyCmd(c.payment?.id as string), localOne + 60_000);
    expect(late.code).toBe(ScriptCode.HoldExpired);
    expect(late.payment?.status).toBe('expired');
    expect(late.effects).toEqual([['release', 4_000]]);
    expect(await balance()).toMatchObject({ available: FUNDS, held: 0 });
    expect(await dayTotal('u1', localOne)).toBe(0);
    expect(await redis.zcard(store.keys(M).holdsExpiring)).toBe(0);
  });
});

describe('evaluation order and absent inputs', () => {
  it('blacklist, device, velocity, daily cap, funds, unusual hours', async () => {
    await configure({ velocity: { max: 1, window_s: 60 }, device_accounts_max: 1 });
    await pay(100, u('u1', { device_id: 'd1' }));
    // u1 is now at its velocity limit; d1 has its one user.
    await blacklist('add', 'ip', '198.51.100.7');
    const all = await pay(FUNDS * 2, u('u2', { device_id: 'd1', ip: '198.51.100.7' }));
    expect(all.payment?.failure_code).toBe('risk.blacklisted');
    expect((await pay(FUNDS * 2, u('u2', { device_id: 'd1' }))).payment?.failure_code).toBe('risk.device_multi_account');
    expect((await pay(FUNDS * 2, u('u1', { device_id: 'd1' }))).payment?.failure_code).toBe('risk.velocity_exceeded');
    expect((await pay(FUNDS * 2, u('u3'))).payment?.failure_code).toBe('risk.daily_cap_exceeded');
    await configure({ daily_caps: { CNY: null }, unusual_hours: [{ from: '11:00', to: '13:00' }] });
    expect((await pay(FUNDS * 2, u('u4'))).payment?.failure_code).toBe('balance.insufficient_funds');
    expect((await pay(100, u('u5'))).payment?.status).toBe('requires_action');
  });

  it('skips every rule whose input is absent', async () => {
    await configure({ velocity: { max: 1, window_s: 60 }, device_accounts_max: 1 });
    await blacklist('add', 'device', 'd1');
    // No buyer at all; a device without a user (device rule needs both); a user without a device.
    expect((await pay(600_000)).payment?.status).toBe('authorized');
    expect((await pay(100, { buyer: { device_id: 'd2' } })).payment?.status).toBe('authorized');
    expect((await pay(100, { buyer: { device_id: 'd2' } })).payment?.status).toBe('authorized');
    expect((await pay(100, u('u1'))).payment?.status).toBe('authorized');
    expect((await pay(100, { buyer: { device_id: 'd1' } })).payment?.failure_code).toBe('risk.blacklisted');
  });
});

describe('refusals and replays', () => {
  it('a refusal changes nothing but its own payment record, out_trade_no and op record', async () => {
    await configure({ velocity: { max: 2, window_s: 60 } });
    await pay(100, u('u1', { device_id: 'd1', ip: '192.0.2.1' }));
    await pay(100, u('u1', { device_id: 'd1', ip: '192.0.2.1' }));
    const before = await snapshot();
    const cmd = payCmd(100, u('u1', { device_id: 'd1', ip: '192.0.2.1' }));
    const r = await store.createPayment(cmd, NOON + 1);
    expect(r.payment?.failure_code).toBe('risk.velocity_exceeded');
    const after = await snapshot();
    const k = store.keys(M);
    const own = new Set([k.payment(cmd.payment_id), k.outTradeNo(cmd.out_trade_no), k.op(cmd.cmd_id)]);
    expect([...after.keys()].filter((key) => !before.has(key)).sort()).toEqual([...own].sort());
    for (const [key, value] of before) expect(after.get(key), key).toBe(value);
  });

  it('replays an op id with its first result, even after the rules changed', async () => {
    await blacklist('add', 'user', 'u1');
    const cmd = payCmd(100, u('u1'));
    const first = await store.createPayment(cmd, NOON);
    expect(first.payment?.failure_code).toBe('risk.blacklisted');
    await blacklist('remove', 'user', 'u1');
    const second = await store.createPayment(cmd, NOON + 1);
    expect(second.replayed).toBe(true);
    expect({ ...second, replayed: false }).toEqual(first);

    const cfg = { v: PROTOCOL_VERSION, type: 'risk.configure', cmd_id: opId(), merchant_id: M, ts_ms: 1, settings: { device_accounts_max: 5 } } as const;
    const c1 = await store.configureRisk(cfg, NOON);
    await configure({ device_accounts_max: 7 });
    const c2 = await store.configureRisk(cfg, NOON + 5);
    expect(c2.replayed).toBe(true);
    expect({ ...c2, replayed: false }).toEqual(c1);
    expect(c2.atMs).toBe(NOON);
    const bl = opId();
    const b1 = await blacklist('add', 'device', 'd9', bl);
    const b2 = await blacklist('add', 'device', 'd9', bl);
    expect({ ...b2, replayed: false }).toEqual(b1);
    expect(b2.risk?.blacklist?.changed).toBe(true);
  });

  it('keeps every risk key under the merchant hash tag, whatever the buyer ids contain', async () => {
    await pay(100, u('用户:{x}', { device_id: 'dev with spaces', ip: '::1' }));
    const keys = await redis.keys(`${store.prefix}:*`);
    expect(keys.some((key) => key.includes(':risk:day:'))).toBe(true);
    for (const key of keys) {
      expect(key.startsWith(`${store.prefix}:{${M}}:`)).toBe(true);
      expect(key.indexOf('}')).toBe(`${store.prefix}:{${M}`.length);
    }
  });
});
