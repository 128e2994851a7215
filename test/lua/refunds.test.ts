// Behaviour of paymentRefund-3.lua against a real Redis, a fresh key prefix per test: refunds of a
// succeeded wallet payment never exceed what was captured, credit the wallet back, replay by op id
// and by refund id, and change nothing when refused.
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { PROTOCOL_VERSION, type CommandOf } from '../../engine/protocol/commands.ts';
import { isBalanced, postingsFor } from '../../engine/ledger/postings.ts';
import { unpackRaw } from '../../engine/protocol/codec.ts';
import { opResultOf } from '../../engine/rebuild/records.ts';
import { ScriptCode } from '../../engine/redis/errors.ts';
import type { MoneyStore } from '../../engine/redis/store.ts';
import { eventId, outcomeOf } from '../../engine/shards/outcome.ts';
import type { EngineEvent } from '../../engine/protocol/events.ts';
import { withCommandState } from '../../engine/protocol/command-state.ts';
import { cmds, freshStore, M, opId, redisClient } from './redis-fixture.ts';

const NOW = 1_764_300_000_000;
let redis: Redis;
let store: MoneyStore;

const refund = (payment_id: string, amount: number, opts: { refundId?: string; reason?: string } = {}): CommandOf<'payment.refund'> => ({
  v: PROTOCOL_VERSION, type: 'payment.refund', cmd_id: opId(), merchant_id: M, ts_ms: 1, payment_id,
  refund_id: opts.refundId ?? `re_${opId()}`, amount, ...(opts.reason !== undefined && { reason: opts.reason }),
});

beforeEach(async () => {
  redis ??= redisClient();
  store = freshStore(redis);
  await store.createAccount(cmds.account('a1'), NOW);
  await store.creditAccount(cmds.credit('a1', 10_000), NOW);
});
afterAll(() => redis?.disconnect());

const account = async () => {
  const h = await redis.hgetall(store.keys(M).account('a1'));
  return { available: Number(h.available), held: Number(h.held), credited: Number(h.credited), captured: Number(h.captured), refunded: Number(h.refunded) };
};
const paymentHash = (id: string) => redis.hgetall(store.keys(M).payment(id));
/** available + held = credited − captured + refunded, for every state a test reaches. */
const expectInvariant = async () => {
  const a = await account();
  expect(a.available + a.held).toBe(a.credited - a.captured + a.refunded);
};

/** A payment of `amount` captured in full (automatic) from a1. */
const paid = async (id: string, amount: number) => {
  const r = await store.createPayment(cmds.hold(id, 'a1', amount, { capture: 'automatic' }), NOW);
  expect(r.payment?.status).toBe('succeeded');
};

describe('the events of an automatic capture', () => {
  /** The same command as scripts v7 emitted it: a payment.authorized stub, then payment.succeeded with the state and hold + capture entries. */
  const asBeforeV8 = (e: EngineEvent, amount: number): EngineEvent[] => [
    { ...e, id: eventId(e.cmd_id, 0), type: 'payment.authorized', payment: null, postings: [], cmd_events: 2, payment_record: undefined },
    { ...e, id: eventId(e.cmd_id, 1), cmd_events: 2, postings: postingsFor('a1', 'CNY', [['hold', amount], ['capture', amount]], 'balance') },
  ];

  it('is one payment.succeeded, carrying the payment record (the view is derived from it) and one transfer from available to the merchant', async () => {
    const cmd = { ...cmds.hold('p9', 'a1', 2500, { capture: 'automatic' }), notify_url: 'https://shop.example/n' };
    const o = outcomeOf(cmd, await store.createPayment(cmd, NOW), NOW);
    expect(o.events.map((e) => [e.id, e.type, 'payment' in e, e.payment_record?.status, e.cmd_events])).toEqual([
      [eventId(cmd.cmd_id, 0), 'payment.succeeded', false, 'succeeded', 1],
    ]);
    // The view, derived from the record, is the one the reply showed.
    expect(withCommandState(o.events)[0]?.payment).toEqual(o.payment);
    // Nothing was ever held where anyone could see it.
    expect(o.events[0]?.postings).toEqual([
      { kind: 'capture', ledger_account: 'wallet:a1:available', amount: -2500, currency: 'CNY' },
      { kind: 'capture', ledger_account: 'merchant:settlement', amount: 2500, currency: 'CNY' },
    ]);
    expect(o.events[0]?.payment_record).toMatchObject({ id: 'p9', status: 'succeeded', notify_url: 'https://shop.example/n', amount_captured: 2500 });
  });

  it('events written before v8 (a stub, then the state): a reader that needs the state on every event gives the stub its command\'s', async () => {
    const cmd = cmds.hold('p7', 'a1', 700, { capture: 'automatic' });
    const o = outcomeOf(cmd, await store.createPayment(cmd, NOW), NOW);
    const old = asBeforeV8(o.events[0] as EngineEvent, 700);
    const [first] = withCommandState(old);
    expect(first).toMatchObject({ type: 'payment.authorized', payment: o.payment, payment_record: old[1]?.payment_record });
  });

  it('rebuilds the op record from the one event, and from the two events of scripts v7 as v7 stored it', async () => {
    const cmd = cmds.hold('p8', 'a1', 1200, { capture: 'automatic' });
    const o = outcomeOf(cmd, await store.createPayment(cmd, NOW), NOW);
    const stored = unpackRaw(Buffer.from((await redis.getBuffer(store.keys(M).op(cmd.cmd_id))) as Buffer)) as { effects: unknown; events: unknown };
    expect(stored).toMatchObject({ effects: [['sale', 1200]], events: ['payment.succeeded'] });
    const asNow = opResultOf(o.events);
    expect(asNow.result).toMatchObject({ effects: stored.effects, events: stored.events });
    const old = asBeforeV8(o.events[0] as EngineEvent, 1200);
    expect(old[1]?.postings).toHaveLength(4);
    expect(opResultOf(old).result).toEqual({ ...asNow.result, effects: [['hold', 1200], ['capture', 1200]], events: ['payment.authorized', 'payment.succeeded'] });
  });
});

describe('paymentRefund', () => {
  it('refunds in parts up to the captured amount, crediting the wallet back; the payment stays succeeded', async () => {
    await paid('p1', 3000);
    const first = await store.refundPayment(refund('p1', 1000, { refundId: 're_1', reason: 'one card was faulty' }), NOW + 10);
    expect(first.code).toBe(ScriptCode.Ok);
    expect(first.replayed).toBe(false);
    expect(first.effects).toEqual([['refund', 1000]]);
    expect(first.events).toEqual(['refund.succeeded']);
    expect(first.payment).toMatchObject({ status: 'succeeded', amount_captured: 3000, amount_refunded: 1000, version: 2, updated_at_ms: NOW + 10 });
    expect(first.account).toEqual({ account_id: 'a1', currency: 'CNY', available: 8000, held: 0 });
    expect(first.refund).toEqual({
      id: 're_1', merchant_id: M, payment_id: 'p1', account_id: 'a1', amount: 1000, currency: 'CNY', status: 'succeeded',
      reason: 'one card was faulty', created_at_ms: NOW + 10,
    });
    expect(await store.readRefund(M, 're_1')).toEqual(first.refund);
    expect(await account()).toEqual({ available: 8000, held: 0, credited: 10_000, captured: 3000, refunded: 1000 });
    await expectInvariant();

    const rest = await store.refundPayment(refund('p1', 2000), NOW + 20);
    expect(rest.code).toBe(ScriptCode.Ok);
    expect(rest.payment).toMatchObject({ status: 'succeeded', amount_refunded: 3000, version: 3 });
    expect(rest.refund?.reason).toBe('');
    expect(await account()).toEqual({ available: 10_000, held: 0, credited: 10_000, captured: 3000, refunded: 3000 });
    await expectInvariant();
  });

  it('refuses a refund that would exceed the captured amount and changes nothing', async () => {
    await paid('p1', 3000);
    await store.refundPayment(refund('p1', 1000), NOW);
    const before = { account: await account(), payment: await paymentHash('p1') };

    const over = await store.refundPayment(refund('p1', 2001, { refundId: 're_over' }), NOW + 1);
    expect(over.code).toBe(ScriptCode.RefundExceedsCaptured);
    expect(over.effects).toEqual([]);
    expect(over.events).toEqual([]);
    expect(over.refund).toBeUndefined();
    expect(over.payment).toMatchObject({ amount_refunded: 1000 });
    expect({ account: await account(), payment: await paymentHash('p1') }).toEqual(before);
    expect(await store.readRefund(M, 're_over')).toBeNull();

    expect((await store.refundPayment(refund('p1', 2000), NOW + 2)).code).toBe(ScriptCode.Ok);
    expect((await store.refundPayment(refund('p1', 1), NOW + 3)).code).toBe(ScriptCode.RefundExceedsCaptured);
    expect(await account()).toMatchObject({ available: 10_000, refunded: 3000 });
    await expectInvariant();
  });

  it('bounds refunds by the captured part of a partial capture, not by the payment amount', async () => {
    await store.createPayment(cmds.hold('p1', 'a1', 3000), NOW);
    await store.capturePayment(cmds.capture('p1', 1200), NOW);
    expect((await store.refundPayment(refund('p1', 1201), NOW)).code).toBe(ScriptCode.RefundExceedsCaptured);
    expect((await store.refundPayment(refund('p1', 1200), NOW)).code).toBe(ScriptCode.Ok);
    expect(await account()).toEqual({ available: 10_000, held: 0, credited: 10_000, captured: 1200, refunded: 1200 });
    await expectInvariant();
  });

  it('refuses payments that are not succeeded (authorized, canceled, expired, failed) and unknown ones', async () => {
    await store.createPayment(cmds.hold('p_auth', 'a1', 1000), NOW);
    await store.createPayment(cmds.hold('p_cancel', 'a1', 1000), NOW);
    await store.cancelPayment(cmds.cancel('p_cancel'), NOW);
    await store.createPayment(cmds.hold('p_exp', 'a1', 1000, { ttlS: 1 }), NOW);
    await store.expirePayment(cmds.expire('p_exp'), NOW + 1000);
    await store.createPayment(cmds.hold('p_fail', 'a1', 1_000_000), NOW);
    const before = await account();
    for (const id of ['p_auth', 'p_cancel', 'p_exp', 'p_fail']) {
      const r = await store.refundPayment(refund(id, 1), NOW + 2000);
      expect(r.code, id).toBe(ScriptCode.InvalidTransition);
      expect(r.effects).toEqual([]);
      expect(r.payment?.amount_refunded).toBe(0);
    }
    const unknown = await store.refundPayment(refund('p_nobody', 1), NOW);
    expect(unknown.code).toBe(ScriptCode.PaymentNotFound);
    expect(unknown.payment).toBeNull();
    expect(await account()).toEqual(before);
  });

  it('replays an op id with its first result and no second effect, also after the state moved on', async () => {
    await paid('p1', 3000);
    const cmd = refund('p1', 1000);
    const first = await store.refundPayment(cmd, NOW);
    await store.refundPayment(refund('p1', 2000), NOW + 1); // now fully refunded
    const again = await store.refundPayment(cmd, NOW + 5);
    expect(again.replayed).toBe(true);
    expect({ ...again, replayed: false }).toEqual(first);
    expect(await account()).toMatchObject({ available: 10_000, refunded: 3000 });

    const refused = refund('p1', 1);
    const r1 = await store.refundPayment(refused, NOW + 6);
    const r2 = await store.refundPayment(refused, NOW + 7);
    expect(r2).toEqual({ ...r1, replayed: true });
  });

  it('reports a refund id seen before (op record lost) as it is, without a second effect', async () => {
    await paid('p1', 3000);
    const first = await store.refundPayment(refund('p1', 1000, { refundId: 're_same' }), NOW);
    const again = await store.refundPayment(refund('p1', 1000, { refundId: 're_same' }), NOW + 1); // a new op id
    expect(again.code).toBe(ScriptCode.Ok);
    expect(again.replayed).toBe(false);
    expect(again.effects).toEqual([]);
    expect(again.events).toEqual([]);
    expect(again.refund).toEqual(first.refund);
    expect(again.payment).toMatchObject({ amount_refunded: 1000, version: first.payment?.version });
    expect(await account()).toMatchObject({ available: 8000, refunded: 1000 });

    // The same refund id against another payment is refused: an id names one refund.
    await paid('p2', 500);
    const other = await store.refundPayment(refund('p2', 100, { refundId: 're_same' }), NOW + 2);
    expect(other.code).toBe(ScriptCode.InvalidTransition);
    expect(other.effects).toEqual([]);
    expect((await paymentHash('p2')).amount_refunded).toBe('0');
  });

  it('decides two refunds of one batch in order: the second that would exceed is refused', async () => {
    await paid('p1', 3000);
    const [a, b, c] = await Promise.all([
      store.refundPayment(refund('p1', 2000), NOW),
      store.refundPayment(refund('p1', 1500), NOW),
      store.refundPayment(refund('p1', 1000), NOW),
    ]);
    expect([a?.code, b?.code, c?.code]).toEqual([ScriptCode.Ok, ScriptCode.RefundExceedsCaptured, ScriptCode.Ok]);
    expect(await account()).toMatchObject({ available: 10_000, refunded: 3000 });
    await expectInvariant();
  });

  it('becomes one refund.succeeded event with the refund, the payment after it and balanced postings', async () => {
    await paid('p1', 3000);
    const cmd = refund('p1', 700, { reason: 'late delivery' });
    const result = await store.refundPayment(cmd, NOW + 50);
    const o = outcomeOf(cmd, result, NOW + 999);
    expect(o.events).toHaveLength(1);
    const e = o.events[0];
    expect(e).toMatchObject({
      id: `evt_${cmd.cmd_id}_0`, type: 'refund.succeeded', ts_ms: NOW + 50, memo: 'late delivery',
      refund: { id: cmd.refund_id, payment_id: 'p1', amount: 700, currency: 'CNY', status: 'succeeded', reason: 'late delivery', created_at: new Date(NOW + 50).toISOString() },
      payment_record: { id: 'p1', status: 'succeeded', amount_captured: 3000, amount_refunded: 700 },
      account: { account_id: 'a1', available: 7700, held: 0 },
    });
    // No public view in the event: readers derive it from the record, as the reply showed it.
    expect('payment' in (e as object)).toBe(false);
    expect(withCommandState(o.events)[0]?.payment).toEqual(o.reply.ok ? o.reply.payment : null);
    expect(e?.postings).toEqual([
      { kind: 'refund', ledger_account: 'merchant:settlement', amount: -700, currency: 'CNY' },
      { kind: 'refund', ledger_account: 'wallet:a1:available', amount: 700, currency: 'CNY' },
    ]);
    expect(isBalanced(e?.postings ?? [])).toBe(true);
    expect(o.reply).toMatchObject({ ok: true, refund: e?.refund, payment: { amount_refunded: 700 } });

    const refused = refund('p1', 5000);
    const no = outcomeOf(refused, await store.refundPayment(refused, NOW + 60), NOW + 60);
    expect(no.events).toEqual([]);
    expect(no.reply).toMatchObject({ ok: false, code: 'payment.invalid_transition', payment_id: 'p1' });
  });

  it('keeps the refund under the merchant hash tag', async () => {
    await paid('p1', 3000);
    await store.refundPayment(refund('p1', 1, { refundId: 're_tag' }), NOW);
    const keys = await redis.keys(`${store.prefix}:*`);
    expect(keys).toContain(`${store.prefix}:{${M}}:refund:re_tag`);
    for (const k of keys) expect(k.startsWith(`${store.prefix}:{${M}}:`)).toBe(true);
  });
});
