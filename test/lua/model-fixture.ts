// The reference model for test/lua/holds.model.test.ts: a plain in-memory rendering of what the
// money scripts (engine/redis/lua/) are meant to do, one pure transition per command. It knows
// nothing of Redis; the test runs each command on both and compares.
import { PROTOCOL_VERSION, type CommandOf } from '../../engine/protocol/commands.ts';
import type { AccountSnapshot, EventType } from '../../engine/protocol/events.ts';
import { ScriptCode } from '../../engine/redis/errors.ts';
import type { Effect, NO_CHANNEL_FIELDS, RawPayment, RawRefund, ScriptResult } from '../../engine/redis/store.ts';

export const MODEL_MERCHANT = 'm_model';
export const T0 = 1_764_300_000_000;
export const ACCOUNTS = ['a0', 'a1', 'a2', 'a3'] as const;
export type AccountId = (typeof ACCOUNTS)[number];
export type Cur = 'CNY' | 'USD';
/**
 * Opened and credited before every sequence (a3 only by a generated account.create). Fixed, not
 * generated, so that fast-check shrinks the command list alone: a1 is short of funds on purpose.
 */
export const OPENED: readonly { id: AccountId; currency: Cur; credit: number }[] = [
  { id: 'a0', currency: 'CNY', credit: 20_000 },
  { id: 'a1', currency: 'CNY', credit: 2_000 },
  { id: 'a2', currency: 'USD', credit: 10_000 },
];
/** The currency each account is opened in by default (a generated open may pick the other). */
export const HOME_CURRENCY: Record<AccountId, Cur> = { a0: 'CNY', a1: 'CNY', a2: 'USD', a3: 'CNY' };
export const FINAL = new Set(['succeeded', 'canceled', 'expired', 'failed']);
const INSUFFICIENT = 'the wallet does not hold enough available balance';

export type MoneyCommand =
  | CommandOf<'payment.create'>
  | CommandOf<'payment.capture'>
  | CommandOf<'payment.cancel'>
  | CommandOf<'payment.expire'>
  | CommandOf<'payment.refund'>
  | CommandOf<'account.create'>
  | CommandOf<'account.credit'>;

export type ModelAccount = {
  currency: Cur;
  created_at_ms: number;
  available: number;
  held: number;
  credited: number;
  captured: number;
  refunded: number;
};

/** The modelled payment record: exactly the fields of RawPayment. */
/** Balance payments only: the channel fields are not the model's concern. */
export type ModelPayment = Omit<RawPayment, keyof typeof NO_CHANNEL_FIELDS>;

export type Balances = { available: number; held: number; credited: number; captured: number; refunded: number };

export type Model = {
  now: number;
  accounts: Map<string, ModelAccount>;
  payments: Map<string, ModelPayment>;
  /** out_trade_no → payment id. */
  otn: Map<string, string>;
  /** refund id → the refund record (the refund hash). */
  refunds: Map<string, RawRefund>;
  /** The generated creates (hold, pay), in order: generated commands address payments by recency. */
  creates: CommandOf<'payment.create'>[];
  nextPayment: number;
  nextRefund: number;
  nextCmd: number;
  /** Every distinct command sent so far, in order: the pool for replays. */
  sent: MoneyCommand[];
  sentIds: Set<string>;
  /** cmd_id of every op the scripts store a result for (all but NotDue), as soon as it is planned. */
  stored: Set<string>;
  /** cmd_id → its first result, once Redis answered. */
  ops: Map<string, ScriptResult>;
  /** cmd_id → the effects it applied, from the results alone (not from the model). */
  applied: Map<string, { account: string; effects: Effect[] }>;
  /** Human-readable trace of this run, appended to a failure. */
  log: string[];
};

export function newModel(): Model {
  return {
    now: T0,
    accounts: new Map(),
    payments: new Map(),
    otn: new Map(),
    refunds: new Map(),
    creates: [],
    nextPayment: 0,
    nextRefund: 0,
    nextCmd: 0,
    sent: [],
    sentIds: new Set(),
    stored: new Set(),
    ops: new Map(),
    applied: new Map(),
    log: [],
  };
}

// ---- commands as the engine would send them (buyer always absent: risk rules without input skip)

const base = (m: Model) => ({ v: PROTOCOL_VERSION, cmd_id: `c${m.nextCmd++}`, merchant_id: MODEL_MERCHANT, ts_ms: m.now });

export const build = {
  create: (m: Model, o: { paymentId: string; otn: string; account: string; amount: number; currency: Cur; capture: 'manual' | 'automatic'; ttlS: number }): CommandOf<'payment.create'> => ({
    ...base(m), type: 'payment.create', payment_id: o.paymentId, out_trade_no: o.otn, amount: o.amount, currency: o.currency,
    method: 'balance', account_id: o.account, capture: o.capture, hold_ttl_s: o.ttlS, scene: 'pc',
  }),
  /** The same create under a new cmd_id (its op record lost or expired). */
  recreate: (m: Model, c: CommandOf<'payment.create'>): CommandOf<'payment.create'> => ({ ...c, ...base(m) }),
  capture: (m: Model, paymentId: string, amount: number | undefined): CommandOf<'payment.capture'> => ({
    ...base(m), type: 'payment.capture', payment_id: paymentId, ...(amount !== undefined && { amount }),
  }),
  cancel: (m: Model, paymentId: string): CommandOf<'payment.cancel'> => ({ ...base(m), type: 'payment.cancel', payment_id: paymentId }),
  expire: (m: Model, paymentId: string): CommandOf<'payment.expire'> => ({ ...base(m), type: 'payment.expire', payment_id: paymentId }),
  refund: (m: Model, paymentId: string, refundId: string, amount: number): CommandOf<'payment.refund'> => ({
    ...base(m), type: 'payment.refund', payment_id: paymentId, refund_id: refundId, amount,
    ...(amount % 2 === 0 && { reason: `model refund ${refundId}` }),
  }),
  open: (m: Model, account: string, currency: Cur): CommandOf<'account.create'> => ({
    ...base(m), type: 'account.create', account_id: account, currency,
  }),
  credit: (m: Model, account: string, amount: number, currency: Cur): CommandOf<'account.credit'> => ({
    ...base(m), type: 'account.credit', account_id: account, amount, currency, reason: 'model top-up',
  }),
};

/** How a generated command names a payment: the back-th most recent one, or an id never used. */
export type PaymentRef = { back: number } | 'unknown';
export const refText = (ref: PaymentRef) => (ref === 'unknown' ? 'unknown' : ref.back === 0 ? 'latest' : `latest-${ref.back}`);

/** The create a reference addresses (back wraps around the creates so far), if any. */
export function refCreate(m: Model, ref: PaymentRef): CommandOf<'payment.create'> | undefined {
  if (ref === 'unknown' || m.creates.length === 0) return undefined;
  return m.creates[m.creates.length - 1 - (ref.back % m.creates.length)];
}

/** The payment a reference addresses among those that exist (back wraps around), else an unknown id. */
export function refPayment(m: Model, ref: PaymentRef): string {
  const ids = [...m.payments.keys()];
  if (ref === 'unknown' || ids.length === 0) return 'p_unknown';
  return ids[ids.length - 1 - (ref.back % ids.length)] ?? 'p_unknown';
}

/**
 * For refunds: the back-th most recent succeeded payment (those a refund can apply to), else as
 * refPayment. Without it most refunds would name a hold or a failed payment and only be refused.
 */
export function refSucceeded(m: Model, ref: PaymentRef): string {
  const ids = [...m.payments.values()].filter((p) => p.status === 'succeeded').map((p) => p.id);
  if (ref === 'unknown' || ids.length === 0) return refPayment(m, ref);
  return ids[ids.length - 1 - (ref.back % ids.length)] ?? 'p_unknown';
}

// ---- the transition function

export type Prediction = {
  code: ScriptCode;
  payment: ModelPayment | null;
  account: AccountSnapshot | null;
  effects: Effect[];
  events: EventType[];
  existing: string | null;
  /** paymentRefund: the refund made, or the one the refund id already named. */
  refund?: RawRefund;
  /** Whether the script stores the result under the op id (a replay then returns it). */
  stored: boolean;
};

const view = (id: string, a: ModelAccount): AccountSnapshot => ({ account_id: id, currency: a.currency, available: a.available, held: a.held });
const refuse = (code: ScriptCode, payment: ModelPayment | null = null, existing: string | null = null): Prediction => ({
  code, payment: payment && { ...payment }, account: null, effects: [], events: [], existing, stored: true,
});

function mustAccount(m: Model, id: string): ModelAccount {
  const a = m.accounts.get(id);
  if (!a) throw new Error(`model: payment on missing account ${id}`);
  return a;
}

function release(a: ModelAccount, amount: number): void {
  a.held -= amount;
  a.available += amount;
}

function touch(p: ModelPayment, now: number, fields: Partial<ModelPayment>): void {
  Object.assign(p, fields);
  p.version += 1;
  p.updated_at_ms = now;
}

/** Applies cmd to the model (a fresh op, never a replay) and returns what the script must answer. */
export function predict(m: Model, cmd: MoneyCommand): Prediction {
  const now = m.now;
  switch (cmd.type) {
    case 'payment.create': {
      const existing = m.payments.get(cmd.payment_id);
      if (existing) return refuse(ScriptCode.Ok, existing);
      const owner = m.otn.get(cmd.out_trade_no);
      if (owner !== undefined) return refuse(ScriptCode.DuplicateOutTradeNo, null, owner);
      const accountId = cmd.account_id ?? '';
      const a = m.accounts.get(accountId);
      if (!a) return refuse(ScriptCode.AccountNotFound);
      if (a.currency !== cmd.currency) return refuse(ScriptCode.CurrencyMismatch);
      const p: ModelPayment = {
        id: cmd.payment_id, merchant_id: cmd.merchant_id, out_trade_no: cmd.out_trade_no, amount: cmd.amount, currency: cmd.currency,
        amount_captured: 0, amount_refunded: 0, method: 'balance', channel: 'balance', account_id: accountId, scene: cmd.scene,
        subject: '', buyer: '', metadata: '', notify_url: '', status: 'authorized', failure_code: '', failure_message: '',
        hold_amount: 0, hold_expires_at_ms: 0, created_at_ms: now, updated_at_ms: now, version: 1,
      };
      const effects: Effect[] = [];
      let events: EventType[];
      if (a.available < cmd.amount) {
        Object.assign(p, { status: 'failed', failure_code: 'balance.insufficient_funds', failure_message: INSUFFICIENT });
        events = ['payment.failed'];
      } else {
        a.available -= cmd.amount;
        if (cmd.capture === 'automatic') {
          // Never held: one transfer, available → captured (effect sale, scripts v8).
          a.captured += cmd.amount;
          effects.push(['sale', cmd.amount]);
          Object.assign(p, { status: 'succeeded', amount_captured: cmd.amount });
          // One event since scripts v8: the hold was never visible (paymentCreate-10.lua).
          events = ['payment.succeeded'];
        } else {
          a.held += cmd.amount;
          effects.push(['hold', cmd.amount]);
          Object.assign(p, { hold_amount: cmd.amount, hold_expires_at_ms: now + cmd.hold_ttl_s * 1000 });
          events = ['payment.authorized'];
        }
      }
      m.payments.set(p.id, p);
      m.otn.set(p.out_trade_no, p.id);
      return { code: ScriptCode.Ok, payment: { ...p }, account: view(accountId, a), effects, events, existing: null, stored: true };
    }

    case 'payment.capture': {
      const p = m.payments.get(cmd.payment_id);
      if (!p) return refuse(ScriptCode.PaymentNotFound);
      if (p.status !== 'authorized') return refuse(ScriptCode.InvalidTransition, p);
      const a = mustAccount(m, p.account_id);
      const hold = p.hold_amount;
      if (now >= p.hold_expires_at_ms) {
        release(a, hold);
        touch(p, now, { status: 'expired', hold_amount: 0 });
        return {
          code: ScriptCode.HoldExpired, payment: { ...p }, account: view(p.account_id, a),
          effects: [['release', hold]], events: ['payment.expired'], existing: null, stored: true,
        };
      }
      const amount = cmd.amount ?? hold;
      if (amount > hold) return refuse(ScriptCode.AmountExceedsHold, p);
      a.held -= amount;
      a.captured += amount;
      const effects: Effect[] = [['capture', amount]];
      if (hold > amount) {
        release(a, hold - amount);
        effects.push(['release', hold - amount]);
      }
      touch(p, now, { status: 'succeeded', amount_captured: amount, hold_amount: 0 });
      return { code: ScriptCode.Ok, payment: { ...p }, account: view(p.account_id, a), effects, events: ['payment.succeeded'], existing: null, stored: true };
    }

    case 'payment.cancel': {
      const p = m.payments.get(cmd.payment_id);
      if (!p) return refuse(ScriptCode.PaymentNotFound);
      if (!['authorized', 'requires_action', 'pending', 'processing'].includes(p.status)) return refuse(ScriptCode.InvalidTransition, p);
      const effects: Effect[] = [];
      let account: AccountSnapshot | null = null;
      // Past its deadline a hold is expired, not canceled, whoever comes first (as capture does).
      const expired = p.hold_amount > 0 && now >= p.hold_expires_at_ms;
      if (p.status === 'authorized' && p.hold_amount > 0) {
        const a = mustAccount(m, p.account_id);
        release(a, p.hold_amount);
        effects.push(['release', p.hold_amount]);
        account = view(p.account_id, a);
      }
      touch(p, now, { status: expired ? 'expired' : 'canceled', hold_amount: 0 });
      return {
        code: expired ? ScriptCode.HoldExpired : ScriptCode.Ok, payment: { ...p }, account, effects,
        events: [expired ? 'payment.expired' : 'payment.canceled'], existing: null, stored: true,
      };
    }

    case 'payment.expire': {
      const p = m.payments.get(cmd.payment_id);
      if (!p) return refuse(ScriptCode.PaymentNotFound);
      if (p.status !== 'authorized') return refuse(ScriptCode.InvalidTransition, p);
      if (now < p.hold_expires_at_ms) return { ...refuse(ScriptCode.NotDue, p), stored: false };
      const a = mustAccount(m, p.account_id);
      const hold = p.hold_amount;
      release(a, hold);
      touch(p, now, { status: 'expired', hold_amount: 0 });
      return {
        code: ScriptCode.Ok, payment: { ...p }, account: view(p.account_id, a),
        effects: [['release', hold]], events: ['payment.expired'], existing: null, stored: true,
      };
    }

    case 'payment.refund': {
      const p = m.payments.get(cmd.payment_id);
      const known = m.refunds.get(cmd.refund_id);
      if (known) {
        // A refund id names one refund: reported as it is (no effect), or refused for another payment.
        if (p && known.payment_id === p.id) return { ...refuse(ScriptCode.Ok, p), refund: { ...known } };
        return refuse(ScriptCode.InvalidTransition, p ?? null);
      }
      if (!p) return refuse(ScriptCode.PaymentNotFound);
      if (p.status !== 'succeeded' || p.channel !== 'balance') return refuse(ScriptCode.InvalidTransition, p);
      if (p.amount_refunded + cmd.amount > p.amount_captured) return refuse(ScriptCode.RefundExceedsCaptured, p);
      const a = mustAccount(m, p.account_id);
      a.available += cmd.amount;
      a.refunded += cmd.amount;
      const refund: RawRefund = {
        id: cmd.refund_id, merchant_id: p.merchant_id, payment_id: p.id, account_id: p.account_id, amount: cmd.amount,
        currency: p.currency, status: 'succeeded', reason: cmd.reason ?? '', created_at_ms: now,
      };
      m.refunds.set(refund.id, refund);
      touch(p, now, { amount_refunded: p.amount_refunded + cmd.amount });
      return {
        code: ScriptCode.Ok, payment: { ...p }, account: view(p.account_id, a), refund: { ...refund },
        effects: [['refund', cmd.amount]], events: ['refund.succeeded'], existing: null, stored: true,
      };
    }

    case 'account.create': {
      const a = m.accounts.get(cmd.account_id);
      if (a) {
        const code = a.currency === cmd.currency ? ScriptCode.Ok : ScriptCode.AccountCurrencyConflict;
        return { code, payment: null, account: view(cmd.account_id, a), effects: [], events: [], existing: null, stored: true };
      }
      const fresh: ModelAccount = { currency: cmd.currency as Cur, created_at_ms: now, available: 0, held: 0, credited: 0, captured: 0, refunded: 0 };
      m.accounts.set(cmd.account_id, fresh);
      return { code: ScriptCode.Ok, payment: null, account: view(cmd.account_id, fresh), effects: [], events: ['account.created'], existing: null, stored: true };
    }

    case 'account.credit': {
      const a = m.accounts.get(cmd.account_id);
      if (!a) return refuse(ScriptCode.AccountNotFound);
      if (a.currency !== cmd.currency) return refuse(ScriptCode.CurrencyMismatch);
      a.available += cmd.amount;
      a.credited += cmd.amount;
      return {
        code: ScriptCode.Ok, payment: null, account: view(cmd.account_id, a),
        effects: [['credit', cmd.amount]], events: ['account.credited'], existing: null, stored: true,
      };
    }
  }
}

// ---- effects → balances, independent of the model's own bookkeeping

export const ZERO: Balances = { available: 0, held: 0, credited: 0, captured: 0, refunded: 0 };

export function applyEffects(b: Balances, effects: readonly Effect[]): Balances {
  const out = { ...b };
  for (const [kind, n] of effects) {
    if (kind === 'hold') { out.available -= n; out.held += n; }
    else if (kind === 'capture') { out.held -= n; out.captured += n; }
    else if (kind === 'sale') { out.available -= n; out.captured += n; }
    else if (kind === 'release') { out.held -= n; out.available += n; }
    else if (kind === 'refund') { out.available += n; out.refunded += n; }
    else { out.available += n; out.credited += n; }
  }
  return out;
}

/** Per account, the balances the applied effects of every op add up to. */
export function balancesFromEffects(m: Model): Map<string, Balances> {
  const out = new Map<string, Balances>();
  for (const { account, effects } of m.applied.values()) out.set(account, applyEffects(out.get(account) ?? ZERO, effects));
  return out;
}

export function describeCommand(cmd: MoneyCommand): string {
  switch (cmd.type) {
    case 'payment.create':
      return `${cmd.capture === 'manual' ? 'hold' : 'pay'} ${cmd.payment_id} otn=${cmd.out_trade_no} ${cmd.account_id} ${cmd.amount} ${cmd.currency}` +
        (cmd.capture === 'manual' ? ` ttl=${cmd.hold_ttl_s}s` : '');
    case 'payment.capture':
      return `capture ${cmd.payment_id}${cmd.amount === undefined ? ' (full)' : ` ${cmd.amount}`}`;
    case 'payment.cancel':
      return `cancel ${cmd.payment_id}`;
    case 'payment.expire':
      return `expire ${cmd.payment_id}`;
    case 'payment.refund':
      return `refund ${cmd.payment_id} ${cmd.refund_id} ${cmd.amount}`;
    case 'account.create':
      return `open ${cmd.account_id} ${cmd.currency}`;
    case 'account.credit':
      return `credit ${cmd.account_id} ${cmd.amount} ${cmd.currency}`;
  }
}
