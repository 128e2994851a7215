// Model-based test of the money scripts (engine/redis/lua/) against the real Redis.
//
// Runs: 200 sequences by default (CI, a few seconds). For a nightly-sized run, set
// PEAKPAY_MODEL_RUNS, e.g.
//   PEAKPAY_MODEL_RUNS=5000 npx vitest run test/lua/holds.model.test.ts
//
// fast-check generates sequences of up to 40 steps over four accounts (a0 and a1 in CNY, a2 in
// USD, opened and credited up front; a3 opened only by the sequence): hold (manual capture, random
// ttl), automatic pay, capture (full, exactly the hold, a part, or over the hold → refused),
// cancel, expire, clock advances (random, or to just before / at / after a hold's deadline),
// top-ups, refunds of succeeded payments (the rest, a part of it, more than the rest → refused, a
// random amount; now and then of a payment that is not succeeded), a refund id sent again under a
// new cmd_id (for its payment, or for another), account opens (also in the other currency), a new
// payment reusing an out_trade_no, a
// create re-sent under a new cmd_id, re-sends of an earlier command object (same cmd_id, later
// time), and engine-style batches of 2–4 of those sent in one tick. Each command runs on the
// reference model (model-fixture.ts) and on Redis with an explicit nowMs; every result must match
// the model (code, effects, events, account, payment), a re-sent op id must answer replayed: true
// with the first result unchanged (except expire's NotDue, which the script does not store, by
// design), and a resolved payment refuses capture / cancel / expire with InvalidTransition. After
// EVERY step, Redis must equal the model (account and payment hashes, open holds by deadline,
// out_trade_no index, refund records, which op records exist), available + held = credited −
// captured + refunded with both ≥ 0, amount_refunded ≤ amount_captured, and the effects of all results, each op id counted once, must add up to the balances (and
// this step's to the balance delta; a replay's to none).
//
// Each run uses a fresh key prefix (freshStore) and deletes its keys when it passes. A failure
// prints fast-check's shrunk step list (their toString) and, in the error, the resolved trace of
// that run (payment and cmd ids, amounts, clock, result codes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { HOLD_TTL_S_MAX } from '../../engine/protocol/commands.ts';
import { ScriptCode } from '../../engine/redis/errors.ts';
import type { MoneyStore, RawPayment, ScriptResult } from '../../engine/redis/store.ts';
import { freshStore, redisClient } from './redis-fixture.ts';
import {
  ACCOUNTS, FINAL, HOME_CURRENCY, MODEL_MERCHANT, OPENED, T0, ZERO,
  applyEffects, balancesFromEffects, build, describeCommand, newModel, predict, refCreate, refPayment, refSucceeded, refText,
  type AccountId, type Balances, type Cur, type Model, type ModelPayment, type MoneyCommand, type PaymentRef, type Prediction,
} from './model-fixture.ts';

const NUM_RUNS = Number(process.env.PEAKPAY_MODEL_RUNS ?? 200);
if (!Number.isSafeInteger(NUM_RUNS) || NUM_RUNS < 1) throw new Error(`PEAKPAY_MODEL_RUNS must be a positive integer, got ${process.env.PEAKPAY_MODEL_RUNS}`);
const MAX_COMMANDS = 40;

type Real = { redis: Redis; store: MoneyStore; snapshot: Map<string, Balances> };

let redis: Redis;
beforeAll(() => {
  redis = redisClient();
});
afterAll(() => redis?.disconnect());

function send(store: MoneyStore, cmd: MoneyCommand, nowMs: number): Promise<ScriptResult> {
  switch (cmd.type) {
    case 'payment.create': return store.createPayment(cmd, nowMs);
    case 'payment.capture': return store.capturePayment(cmd, nowMs);
    case 'payment.cancel': return store.cancelPayment(cmd, nowMs);
    case 'payment.expire': return store.expirePayment(cmd, nowMs);
    case 'payment.refund': return store.refundPayment(cmd, nowMs);
    case 'account.create': return store.createAccount(cmd, nowMs);
    case 'account.credit': return store.creditAccount(cmd, nowMs);
  }
}

/** The modelled fields of a payment as Redis has them (fields added later are not the model's concern). */
function project(actual: RawPayment | null, like: ModelPayment | null): Partial<RawPayment> | null {
  if (!actual || !like) return actual;
  return Object.fromEntries(Object.keys(like).map((k) => [k, actual[k as keyof RawPayment]]));
}

type Moved = { account: string; effects: ScriptResult['effects'] };

/** A command with what the model says of it, decided before it is sent. */
type Planned = {
  cmd: MoneyCommand;
  nowMs: number;
  /** Sent before under this cmd_id (a re-send of the same object). */
  again: boolean;
  /** The op id has a stored result: the answer must be that result, replayed. */
  replay: boolean;
  want: Prediction | null;
  /** The target payment was already final (succeeded, canceled, expired, failed). */
  resolvedBefore: boolean;
};

/** Applies cmd to the model (predict is pure with respect to Redis, so this may run ahead of it). */
function plan(m: Model, cmd: MoneyCommand): Planned {
  const again = m.sentIds.has(cmd.cmd_id);
  if (!again) {
    m.sentIds.add(cmd.cmd_id);
    m.sent.push(cmd);
  }
  if (m.stored.has(cmd.cmd_id)) return { cmd, nowMs: m.now, again, replay: true, want: null, resolvedBefore: false };
  const target = cmd.type === 'payment.capture' || cmd.type === 'payment.cancel' || cmd.type === 'payment.expire'
    ? m.payments.get(cmd.payment_id) : undefined;
  const resolvedBefore = target !== undefined && FINAL.has(target.status);
  const want = predict(m, cmd);
  if (want.stored) m.stored.add(cmd.cmd_id);
  return { cmd, nowMs: m.now, again, replay: false, want, resolvedBefore };
}

/** Compares one result with its plan; returns the money it moved. */
function check(m: Model, p: Planned, res: ScriptResult): Moved | null {
  const { cmd, want } = p;
  m.log.push(`t+${p.nowMs - T0}ms ${cmd.cmd_id}${p.again ? ' (re-sent)' : ''}: ${describeCommand(cmd)} → ${ScriptCode[res.code]}` +
    `${res.replayed ? ' replayed' : ''}${res.payment ? ` [${res.payment.status}]` : ''}` +
    `${res.effects.length ? ` ${JSON.stringify(res.effects)}` : ''}`);

  if (p.replay || !want) {
    // A stored op id: the first result, unchanged, and no second effect (verify sees no delta).
    const first = m.ops.get(cmd.cmd_id);
    expect(res.replayed, `${cmd.cmd_id} re-sent must be a replay`).toBe(true);
    expect({ ...res, replayed: false }, `${cmd.cmd_id} replay must equal the first result`).toEqual(first);
    return null;
  }

  expect(res.replayed, `${cmd.cmd_id} has no stored result, so it cannot be a replay`).toBe(false);
  expect({
    code: ScriptCode[res.code], effects: res.effects, events: res.events, existing: res.existing, account: res.account,
    payment: project(res.payment, want.payment), refund: res.refund ?? null,
  }, `result of ${cmd.cmd_id}`).toEqual({
    code: ScriptCode[want.code], effects: want.effects, events: want.events, existing: want.existing, account: want.account,
    payment: want.payment, refund: want.refund ?? null,
  });
  if (p.resolvedBefore) {
    // A payment resolves at most once.
    expect(res.code, `${cmd.type} of a resolved payment`).toBe(ScriptCode.InvalidTransition);
    expect(res.effects).toEqual([]);
  }
  if (want.stored) m.ops.set(cmd.cmd_id, res);
  if (res.effects.length === 0) return null;
  expect(res.account, `${cmd.cmd_id} moved money, so it names the account`).not.toBeNull();
  expect(m.applied.has(cmd.cmd_id), `${cmd.cmd_id} applied a second time`).toBe(false);
  const moved = { account: res.account?.account_id ?? '', effects: res.effects };
  m.applied.set(cmd.cmd_id, moved);
  return moved;
}

/**
 * Runs commands on the model and on Redis, compares every result, then checks the whole state.
 * Several commands are one engine batch: built and planned in order, then sent in the same tick
 * (ioredis pipelines them into one write; Redis runs them in that order).
 */
async function execute(m: Model, r: Real, builders: ((m: Model) => MoneyCommand | undefined)[]): Promise<void> {
  const planned: Planned[] = [];
  for (const b of builders) {
    const cmd = b(m);
    if (cmd) planned.push(plan(m, cmd));
  }
  if (planned.length === 0) return;
  const results = await Promise.all(planned.map((p) => send(r.store, p.cmd, p.nowMs)));
  const moved: Moved[] = [];
  planned.forEach((p, i) => {
    const res = results[i];
    if (!res) throw new Error('assertion: a result per command');
    const mv = check(m, p, res);
    if (mv) moved.push(mv);
  });
  if (planned.length > 1) m.log.push(`(the last ${planned.length} in one batch)`);
  await verify(m, r, moved);
}

const one = (cmd: MoneyCommand) => [() => cmd];

/**
 * Redis against the model, the invariants, and the effects of the results against the balances.
 * Each check compares one whole structure (a cheap run, and one readable diff on failure).
 */
async function verify(m: Model, r: Real, moved: Moved[]): Promise<void> {
  const k = r.store.keys(MODEL_MERCHANT);
  const creates = m.sent.filter((c) => c.type === 'payment.create');
  const paymentIds = [...new Set(creates.map((c) => c.payment_id))];
  const otns = [...new Set(creates.map((c) => c.out_trade_no))];
  const refundIds = [...new Set(m.sent.flatMap((c) => (c.type === 'payment.refund' ? [c.refund_id] : [])))];
  // Op records: EXISTS counts the keys present, so "all stored present, none of the others" is
  // two counts (ids are distinct).
  const storedIds = m.sent.filter((c) => m.stored.has(c.cmd_id)).map((c) => k.op(c.cmd_id));
  const unstoredIds = m.sent.filter((c) => !m.stored.has(c.cmd_id)).map((c) => k.op(c.cmd_id));
  const [accountHashes, paymentHashes, refundHashes, open, storedPresent, unstoredPresent, owners] = await Promise.all([
    Promise.all(ACCOUNTS.map((id) => r.redis.hgetall(k.account(id)))),
    Promise.all(paymentIds.map((id) => r.redis.hgetall(k.payment(id)))),
    Promise.all(refundIds.map((id) => r.redis.hgetall(k.refund(id)))),
    r.redis.zrange(k.holdsExpiring, 0, '-1', 'WITHSCORES'),
    storedIds.length ? r.redis.exists(...storedIds) : 0,
    unstoredIds.length ? r.redis.exists(...unstoredIds) : 0,
    otns.length ? r.redis.mget(...otns.map((o) => k.outTradeNo(o))) : [],
  ]);

  // 1. Redis = the model: accounts, payments (the modelled fields; the hash holds strings), open
  //    holds by deadline, which op ids have a stored result, the out_trade_no index.
  const got = {
    accounts: Object.fromEntries(ACCOUNTS.map((id, i) => {
      const h = accountHashes[i] ?? {};
      return [id, h.currency === undefined ? null : {
        currency: h.currency, created_at_ms: Number(h.created_at_ms), ...balancesOf(h),
      }];
    })),
    payments: Object.fromEntries(paymentIds.map((id, i) => {
      const h = paymentHashes[i] ?? {};
      const like = m.payments.get(id);
      return [id, Object.keys(h).length === 0 ? null : like ? Object.fromEntries(Object.keys(like).map((f) => [f, h[f]])) : h];
    })),
    refunds: Object.fromEntries(refundIds.map((id, i) => {
      const h = refundHashes[i] ?? {};
      return [id, Object.keys(h).length === 0 ? null : h];
    })),
    open: pairs(open),
    opRecords: { stored: storedPresent, others: unstoredPresent },
    otn: Object.fromEntries(otns.map((o, i) => [o, owners[i] ?? null])),
  };
  const want = {
    accounts: Object.fromEntries(ACCOUNTS.map((id) => {
      const a = m.accounts.get(id);
      return [id, a ? { currency: a.currency, created_at_ms: a.created_at_ms, refunded: a.refunded, available: a.available, held: a.held, credited: a.credited, captured: a.captured } : null];
    })),
    payments: Object.fromEntries(paymentIds.map((id) => {
      const p = m.payments.get(id);
      return [id, p ? Object.fromEntries(Object.entries(p).map(([f, v]) => [f, String(v)])) : null];
    })),
    refunds: Object.fromEntries(refundIds.map((id) => {
      const x = m.refunds.get(id);
      return [id, x ? Object.fromEntries(Object.entries(x).map(([f, v]) => [f, String(v)])) : null];
    })),
    open: [...m.payments.values()]
      .filter((p) => p.status === 'authorized')
      .map((p): [string, number] => [p.id, p.hold_expires_at_ms])
      .sort((x, y) => x[1] - y[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)),
    opRecords: { stored: storedIds.length, others: 0 },
    otn: Object.fromEntries(otns.map((o) => [o, m.otn.get(o) ?? null])),
  };
  expect(got, 'Redis state vs the model').toEqual(want);

  // 2. The invariants, on what Redis holds (independent of the model).
  const balances = new Map<string, Balances>();
  ACCOUNTS.forEach((id, i) => {
    const h = accountHashes[i] ?? {};
    if (h.currency !== undefined) balances.set(id, balancesOf(h));
  });
  const bad = [...balances].filter(([, b]) => b.available + b.held !== b.credited - b.captured + b.refunded || b.available < 0 || b.held < 0);
  expect(bad, 'accounts breaking available + held = credited − captured + refunded, available ≥ 0, held ≥ 0').toEqual([]);
  const overRefunded = paymentHashes.filter((h) => Number(h.amount_refunded) > Number(h.amount_captured)).map((h) => h.id);
  expect(overRefunded, 'payments refunded beyond what was captured').toEqual([]);

  // 3. The effects of every result, each op id counted once, add up to the balances; and this
  //    step moved exactly its own effects (a replay, none).
  const fromEffects = balancesFromEffects(m);
  const prev = r.snapshot;
  const stepped = new Map([...balances.keys()].map((id) => [id, prev.get(id) ?? ZERO]));
  for (const { account, effects } of moved) {
    const before = stepped.get(account);
    expect(before, `effects on an account that does not exist: ${account}`).toBeDefined();
    if (before) stepped.set(account, applyEffects(before, effects));
  }
  expect({
    fromEffects: Object.fromEntries([...balances.keys()].map((id) => [id, fromEffects.get(id) ?? ZERO])),
    stepped: Object.fromEntries(stepped),
  }, 'balances from the summed effects, and from the previous balances plus this step\'s effects').toEqual({
    fromEffects: Object.fromEntries(balances),
    stepped: Object.fromEntries(balances),
  });
  r.snapshot = balances;
}

function balancesOf(h: Record<string, string>): Balances {
  return {
    available: Number(h.available), held: Number(h.held), credited: Number(h.credited), captured: Number(h.captured), refunded: Number(h.refunded),
  };
}

function pairs(flat: string[]): [string, number][] {
  const out: [string, number][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] as string, Number(flat[i + 1])]);
  return out;
}

// ---- generated commands

/** A money command built against the model when it runs (so references resolve to real ids). */
type Op = { label: string; build: (m: Model) => MoneyCommand | undefined };

class Step implements fc.AsyncCommand<Model, Real> {
  constructor(private readonly label: string, private readonly body: (m: Model, r: Real) => Promise<void>) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): Promise<void> {
    return this.body(m, r);
  }
  toString(): string {
    return this.label;
  }
}

const single = (op: Op) => new Step(op.label, (m, r) => execute(m, r, [op.build]));

const other = (c: Cur): Cur => (c === 'CNY' ? 'USD' : 'CNY');
const refArb: fc.Arbitrary<PaymentRef> = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 3 }).map((back) => ({ back })) },
  { weight: 1, arbitrary: fc.constant<PaymentRef>('unknown') },
);
const accountArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom<AccountId>('a0', 'a1', 'a2') },
  { weight: 1, arbitrary: fc.constant<AccountId>('a3') },
);
const amountArb = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 3000 }) }, fc.integer({ min: 1, max: 20_000 }));
/** One in ten commands names the other currency. */
const wrongArb = fc.integer({ min: 0, max: 9 }).map((n) => n === 0);
const currencyOf = (account: AccountId, wrong: boolean) => (wrong ? other(HOME_CURRENCY[account]) : HOME_CURRENCY[account]);
const wrongText = (wrong: boolean) => (wrong ? ', other currency' : '');
/** Mostly minutes; now and then the longest hold the protocol allows (7 days). */
const ttlArb = fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 120 }) }, fc.constant(HOLD_TTL_S_MAX));

const createOp = (capture: 'manual' | 'automatic') =>
  fc.record({ account: accountArb, amount: amountArb, ttlS: ttlArb, wrong: wrongArb }).map(({ account, amount, ttlS, wrong }): Op => ({
    label: `${capture === 'manual' ? 'hold' : 'pay'}(${account}, ${amount}${wrongText(wrong)}${capture === 'manual' ? `, ttl ${ttlS}s` : ''})`,
    build: (m) => {
      const paymentId = `p${m.nextPayment++}`;
      const cmd = build.create(m, { paymentId, otn: `T${paymentId}`, account, amount, currency: currencyOf(account, wrong), capture, ttlS });
      m.creates.push(cmd);
      return cmd;
    },
  }));

type How = { kind: 'full' } | { kind: 'exact' } | { kind: 'part'; pct: number } | { kind: 'over'; extra: number };
const howArb: fc.Arbitrary<How> = fc.oneof(
  fc.constant<How>({ kind: 'full' }),
  fc.constant<How>({ kind: 'exact' }),
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 99 }).map((pct): How => ({ kind: 'part', pct })) },
  fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 1000 })).map((extra): How => ({ kind: 'over', extra })),
);
const howText = (h: How) => (h.kind === 'part' ? `${h.pct}% of hold` : h.kind === 'over' ? `hold+${h.extra}` : h.kind);

/** Captures the whole hold (no amount), exactly the hold, a part of it, or more than it (refused). */
const captureOp = fc.record({ ref: refArb, how: howArb }).map(({ ref, how }): Op => ({
  label: `capture(${refText(ref)}, ${howText(how)})`,
  build: (m) => {
    const id = refPayment(m, ref);
    const p = m.payments.get(id);
    const base = p ? (p.status === 'authorized' ? p.hold_amount : p.amount) : 1000;
    const amount = how.kind === 'full' ? undefined
      : how.kind === 'exact' ? base
      : how.kind === 'part' ? Math.max(1, Math.floor((base * how.pct) / 100))
      : base + how.extra;
    return build.capture(m, id, amount);
  },
}));

const cancelOp = refArb.map((ref): Op => ({ label: `cancel(${refText(ref)})`, build: (m) => build.cancel(m, refPayment(m, ref)) }));
const expireOp = refArb.map((ref): Op => ({ label: `expire(${refText(ref)})`, build: (m) => build.expire(m, refPayment(m, ref)) }));

type RefundHow = { kind: 'rest' } | { kind: 'part'; pct: number } | { kind: 'over'; extra: number } | { kind: 'any'; amount: number };
const refundHowArb: fc.Arbitrary<RefundHow> = fc.oneof(
  fc.constant<RefundHow>({ kind: 'rest' }),
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 99 }).map((pct): RefundHow => ({ kind: 'part', pct })) },
  fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 1000 })).map((extra): RefundHow => ({ kind: 'over', extra })),
  amountArb.map((amount): RefundHow => ({ kind: 'any', amount })),
);
const refundHowText = (h: RefundHow) =>
  h.kind === 'part' ? `${h.pct}% of the rest` : h.kind === 'over' ? `rest+${h.extra}` : h.kind === 'any' ? String(h.amount) : 'the rest';

/**
 * Refunds a payment under a new refund id: mostly a succeeded one (1 in 5 any payment, so also
 * holds, failed and canceled ones), by the rest still refundable, a part of it, more than it
 * (refused), or a random amount.
 */
const refundOp = fc.record({ ref: refArb, how: refundHowArb, anyStatus: fc.integer({ min: 0, max: 4 }).map((n) => n === 0) })
  .map(({ ref, how, anyStatus }): Op => ({
    label: `refund(${anyStatus ? '' : 'succeeded '}${refText(ref)}, ${refundHowText(how)})`,
    build: (m) => {
      const id = anyStatus ? refPayment(m, ref) : refSucceeded(m, ref);
      const p = m.payments.get(id);
      const rest = p ? p.amount_captured - p.amount_refunded : 1000;
      const amount = how.kind === 'rest' ? rest
        : how.kind === 'part' ? Math.floor((rest * how.pct) / 100)
        : how.kind === 'over' ? rest + how.extra
        : how.amount;
      return build.refund(m, id, `r${m.nextRefund++}`, Math.max(1, amount));
    },
  }));

/**
 * A refund id made before, sent again under a new cmd_id (as after its op record expired): for its
 * own payment (reported as it is, no second effect) or, 1 in 4, for another (refused).
 */
const refundAgainOp = fc.record({ back: fc.nat(3), ref: refArb, other: fc.integer({ min: 0, max: 3 }).map((n) => n === 0) })
  .map(({ back, ref, other }): Op => ({
    label: `refundAgain(refund latest-${back}${other ? `, for ${refText(ref)}` : ''})`,
    build: (m) => {
      const made = [...m.refunds.values()];
      const r = made[made.length - 1 - (back % Math.max(1, made.length))];
      return r && build.refund(m, other ? refPayment(m, ref) : r.payment_id, r.id, r.amount);
    },
  }));

const creditOp = fc.record({ account: accountArb, amount: amountArb, wrong: wrongArb }).map(({ account, amount, wrong }): Op => ({
  label: `credit(${account}, ${amount}${wrongText(wrong)})`,
  build: (m) => build.credit(m, account, amount, currencyOf(account, wrong)),
}));

/** Opens an account: mostly a3 (the one not opened up front); the others again, same or other currency. */
const openOp = fc.record({ account: fc.oneof({ weight: 3, arbitrary: fc.constant<AccountId>('a3') }, accountArb), wrong: wrongArb })
  .map(({ account, wrong }): Op => ({
    label: `open(${account}${wrongText(wrong)})`,
    build: (m) => build.open(m, account, currencyOf(account, wrong)),
  }));

/**
 * Re-sends an earlier command object (same cmd_id) at the current, later time: the back-th most
 * recent command of a kind (wrapping around). Addressed by kind so that a counterexample shrinks
 * well (removing other commands does not change which one is re-sent).
 */
const RESENDABLE = ['payment.create', 'payment.capture', 'payment.cancel', 'payment.expire', 'payment.refund', 'account.credit', 'account.create'] as const;
const resendOp = fc.record({ type: fc.constantFrom(...RESENDABLE), back: fc.oneof({ weight: 3, arbitrary: fc.nat(2) }, fc.nat(40)) })
  .map(({ type, back }): Op => ({
    label: `resend(${back === 0 ? 'last' : `last-${back}`} ${type})`,
    build: (m) => {
      const same = m.sent.filter((c) => c.type === type);
      return same[same.length - 1 - (back % Math.max(1, same.length))];
    },
  }));

/** A create again under a new cmd_id (as after its op record expired): no second effect. */
const recreateOp = refArb.map((ref): Op => ({
  label: `recreate(${refText(ref)})`,
  build: (m) => {
    const c = refCreate(m, ref);
    return c && build.recreate(m, c);
  },
}));

/** A new payment reusing an earlier create's out_trade_no. */
const reuseOtnOp = fc.record({ ref: refArb, account: accountArb, amount: amountArb }).map(({ ref, account, amount }): Op => ({
  label: `reuseOutTradeNo(${refText(ref)}, ${account}, ${amount})`,
  build: (m) => {
    const paymentId = `p${m.nextPayment++}`;
    const otn = refCreate(m, ref)?.out_trade_no ?? 'T_unknown';
    return build.create(m, { paymentId, otn, account, amount, currency: HOME_CURRENCY[account], capture: 'manual', ttlS: 60 });
  },
}));

const advanceStep = fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 150_000 }))
  .map((ms) => new Step(`advance(${ms}ms)`, async (m) => {
    m.now += ms;
    m.log.push(`t+${m.now - T0}ms clock +${ms}ms`);
  }));

/** Moves the clock to just before, exactly at, or just after the deadline of the k-th open hold (never backwards). */
const advanceToStep = fc.record({ k: fc.nat(3), offset: fc.constantFrom(-1, 0, 1) }).map(({ k, offset }) => {
  const at = `deadline${offset === 0 ? '' : offset > 0 ? '+1' : '-1'}`;
  return new Step(`advanceTo(open hold #${k} ${at})`, async (m) => {
    const open = [...m.payments.values()].filter((p) => p.status === 'authorized').sort((a, b) => a.hold_expires_at_ms - b.hold_expires_at_ms);
    const p = open[k % Math.max(1, open.length)];
    if (!p || p.hold_expires_at_ms + offset <= m.now) return;
    m.now = p.hold_expires_at_ms + offset;
    m.log.push(`t+${m.now - T0}ms clock → ${p.id} ${at}`);
  });
});

/** 2–4 payment commands in one engine batch (e.g. two captures of one hold, a capture and refunds of it). */
const batchStep = fc.array(fc.oneof(createOp('manual'), captureOp, captureOp, cancelOp, expireOp, refundOp, refundOp, resendOp, creditOp), { minLength: 2, maxLength: 4 })
  .map((ops) => new Step(`batch[${ops.map((o) => o.label).join(', ')}]`, (m, r) => execute(m, r, ops.map((o) => o.build))));

// fc.commands picks among the arbitraries uniformly: repeats weight them.
const commandArbs = [
  ...[createOp('manual'), createOp('manual'), createOp('manual'), createOp('automatic')].map((a) => a.map(single)),
  ...[captureOp, captureOp, captureOp, cancelOp, expireOp, expireOp].map((a) => a.map(single)),
  ...[refundOp, refundOp, refundOp, refundAgainOp].map((a) => a.map(single)),
  ...[creditOp, creditOp, openOp, resendOp, resendOp, resendOp, recreateOp, reuseOtnOp].map((a) => a.map(single)),
  advanceStep, advanceStep, advanceToStep, advanceToStep, batchStep,
];

async function cleanup(m: Model, r: Real): Promise<void> {
  const k = r.store.keys(MODEL_MERCHANT);
  const keys = [
    ...ACCOUNTS.map((id) => k.account(id)), k.holdsExpiring,
    ...m.sent.flatMap((c) => [
      k.op(c.cmd_id),
      ...(c.type === 'payment.create' ? [k.payment(c.payment_id), k.outTradeNo(c.out_trade_no)] : []),
      ...(c.type === 'payment.refund' ? [k.refund(c.refund_id)] : []),
    ]),
  ];
  await r.redis.del(...keys);
}

describe('money scripts against a model', () => {
  it(`hold / capture / cancel / expire / refund / credit / replay sequences keep Redis equal to the model (${NUM_RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commandArbs, { maxCommands: MAX_COMMANDS, size: 'max' }), async (cmds) => {
        const m = newModel();
        const r: Real = { redis, store: freshStore(redis), snapshot: new Map() };
        try {
          for (const { id, currency, credit } of OPENED) {
            await execute(m, r, one(build.open(m, id, currency)));
            await execute(m, r, one(build.credit(m, id, credit, currency)));
          }
          await fc.asyncModelRun(() => ({ model: m, real: r }), cmds);
        } catch (e) {
          if (e instanceof Error) e.message += `\n--- trace of this run ---\n${m.log.join('\n')}`;
          throw e;
        }
        await cleanup(m, r);
      }),
      { numRuns: NUM_RUNS },
    );
  }, 60_000 + NUM_RUNS * 250);
});
