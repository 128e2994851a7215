// The rebuilders: one per kind of Redis state, each writing one merchant's keys of that kind from
// Postgres. rebuildRedis() clears the keys a rebuilder owns, then runs the rebuilders in list order.
// A new kind of merchant state (risk configuration, blacklist, counters …) is one more entry in
// REBUILDERS: name it, list the key kinds it owns, write them in rebuild().
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { walletAvailable, walletHeld } from '../ledger/postings.ts';
import { encode } from '../protocol/codec.ts';
import { eventSchema, type EngineEvent, type PaymentRecord } from '../protocol/events.ts';
import { shardOf } from '../protocol/subjects.ts';
import type { MerchantKeys } from '../redis/keys.ts';
import { shardMerchantsKey } from '../shards/holds.ts';
import type { RedisBatch } from './batch.ts';
import { RebuildError } from './preflight.ts';
import { eventIndex, opResultOf, paymentRecordOf } from './records.ts';
import { riskRebuilder } from '../risk/rebuild.ts';

/** Rows per Postgres page (accounts, payments, events). */
export const PAGE_ROWS = 1_000;
/** Commands of one merchant whose events are incomplete; past this the rebuild stops (something is badly wrong). */
export const INCOMPLETE_COMMANDS_MAX = 10_000;

export type RebuildContext = {
  pool: pg.Pool;
  redis: Redis;
  /** Pipelined writes; flushed by rebuildRedis after each merchant. */
  batch: RedisBatch;
  prefix: string;
  shardCount: number;
  merchantId: string;
  keys: MerchantKeys;
  nowMs: number;
  opTtlS: number;
  /** Start of the op retention window (ms): commands applied since may still be redelivered. */
  windowStartMs: number;
  /**
   * Commands in the window whose events are not all in Postgres (a publish cut short; the command
   * was never acknowledged and will be redelivered). Treated as not applied: their postings, payment
   * states and op records are left out, so the redelivery applies them once.
   */
  incomplete: { cmdIds: ReadonlySet<string>; eventIds: readonly string[]; paymentIds: readonly string[] };
  /** Counts, by kind, a record rebuilt approximately (events older than payment_record) or left out. */
  inexact: (what: string) => void;
};

export type Rebuilder = {
  /** Shown in the report with the number of records written. */
  readonly name: string;
  /**
   * Key kinds under the merchant's `<prefix>:{<merchant>}:` this rebuilder writes (the text that
   * follows, e.g. 'acct:' or 'holds:exp'): deleted before any rebuilder writes.
   */
  readonly owns: readonly string[];
  /** For keys outside every merchant's hash tag (per shard …): true for those this rebuilder writes. */
  readonly ownsShared?: (key: string, prefix: string) => boolean;
  /** Writes the merchant's keys of this kind; returns how many records it wrote. */
  rebuild(ctx: RebuildContext): Promise<number>;
};

type EventRow = { id: string; cmd_id: string; occurred_ms: number; body: unknown };

function parseEvent(row: { id: string; body: unknown }): EngineEvent {
  const parsed = eventSchema.safeParse(row.body);
  if (!parsed.success) throw new RebuildError(`event ${row.id} in Postgres does not parse: ${parsed.error.message}`);
  return parsed.data;
}

function safeInt(what: string, v: unknown): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RebuildError(`${what} is not an integer: ${String(v)}`);
  return n;
}

/** Finds the commands in the window whose events are not all in Postgres (see RebuildContext.incomplete). */
export async function incompleteCommands(pool: pg.Pool, merchantId: string, windowStartMs: number): Promise<RebuildContext['incomplete']> {
  const r = await pool.query<{ cmd_id: string; ids: string[]; payment_id: string | null }>(
    `SELECT cmd_id, array_agg(id) AS ids, max(payment_id) AS payment_id FROM events
     WHERE merchant_id = $1 AND occurred_at > $2 AND body->'cmd_events' IS NOT NULL
     GROUP BY cmd_id HAVING count(*) < max((body->>'cmd_events')::int)
     LIMIT $3`,
    [merchantId, new Date(windowStartMs), INCOMPLETE_COMMANDS_MAX + 1],
  );
  if (r.rows.length > INCOMPLETE_COMMANDS_MAX) {
    throw new RebuildError(`merchant ${merchantId}: more than ${INCOMPLETE_COMMANDS_MAX} commands with missing events; the event log is damaged`);
  }
  return {
    cmdIds: new Set(r.rows.map((x) => x.cmd_id)),
    eventIds: r.rows.flatMap((x) => x.ids),
    paymentIds: r.rows.flatMap((x) => (x.payment_id ? [x.payment_id] : [])),
  };
}

/**
 * The payment hash of each payment id: its latest event (highest version) among complete commands.
 * A command's events share their stream_seq; only its last carries the payment and its record.
 */
async function paymentRecords(ctx: RebuildContext, paymentIds: readonly string[]): Promise<Map<string, PaymentRecord>> {
  const out = new Map<string, PaymentRecord>();
  if (paymentIds.length === 0) return out;
  const r = await ctx.pool.query<{ id: string; body: unknown }>(
    `SELECT DISTINCT ON (payment_id) id, body FROM events
     WHERE merchant_id = $1 AND payment_id = ANY($2::text[]) AND NOT (id = ANY($3::text[]))
     ORDER BY payment_id, (coalesce(body->'payment_record'->>'version', body->'payment'->>'version'))::int DESC NULLS LAST, stream_seq DESC, body->'payment_record' IS NOT NULL DESC`,
    [ctx.merchantId, paymentIds, ctx.incomplete.eventIds],
  );
  for (const row of r.rows) {
    const rec = paymentRecordOf(parseEvent(row));
    if (!rec) throw new RebuildError(`event ${row.id} names a payment but carries none`);
    if (!rec.exact) ctx.inexact('payment');
    out.set(rec.record.id as string, rec.record);
  }
  return out;
}

/** Wallet hashes: balances are the ledger's sums; currency and opening time from `accounts`. */
export const accountsRebuilder: Rebuilder = {
  name: 'accounts',
  owns: ['acct:'],
  async rebuild(ctx) {
    let written = 0;
    let after = '';
    for (;;) {
      const page = await ctx.pool.query<{ account_id: string; currency: string; created_at_ms: string }>(
        `SELECT account_id, currency, round(extract(epoch FROM created_at) * 1000)::text AS created_at_ms
         FROM accounts WHERE merchant_id = $1 AND account_id > $2 ORDER BY account_id LIMIT $3`,
        [ctx.merchantId, after, PAGE_ROWS],
      );
      if (page.rows.length === 0) break;
      const ledgerAccounts = page.rows.flatMap((a) => [walletAvailable(a.account_id), walletHeld(a.account_id)]);
      const sums = await ctx.pool.query<{ ledger_account: string; kind: string; total: string }>(
        `SELECT ledger_account, kind, sum(amount)::text AS total FROM postings
         WHERE merchant_id = $1 AND ledger_account = ANY($2::text[]) AND NOT (event_id = ANY($3::text[]))
         GROUP BY ledger_account, kind`,
        [ctx.merchantId, ledgerAccounts, ctx.incomplete.eventIds],
      );
      const sum = new Map<string, number>(); // "<ledger account>|<kind>" and "<ledger account>|*"
      for (const s of sums.rows) {
        const n = safeInt(`ledger sum of ${s.ledger_account}`, s.total);
        sum.set(`${s.ledger_account}|${s.kind}`, n);
        sum.set(`${s.ledger_account}|*`, (sum.get(`${s.ledger_account}|*`) ?? 0) + n);
      }
      for (const a of page.rows) {
        const avail = walletAvailable(a.account_id);
        const held = walletHeld(a.account_id);
        const fields = {
          currency: a.currency,
          available: sum.get(`${avail}|*`) ?? 0,
          held: sum.get(`${held}|*`) ?? 0,
          credited: sum.get(`${avail}|adjustment`) ?? 0,
          // Captured from the hold, or (an automatic capture, one transfer: engine/ledger/postings.ts) from available.
          captured: -((sum.get(`${held}|capture`) ?? 0) + (sum.get(`${avail}|capture`) ?? 0)),
          refunded: sum.get(`${avail}|refund`) ?? 0,
          created_at_ms: safeInt(`created_at of account ${a.account_id}`, a.created_at_ms),
        };
        if (fields.available < 0 || fields.held < 0) {
          throw new RebuildError(`account ${ctx.merchantId}/${a.account_id}: the ledger gives a negative balance (${fields.available} available, ${fields.held} held)`);
        }
        await ctx.batch.add((p) => p.hset(ctx.keys.account(a.account_id), fields));
        written++;
      }
      after = (page.rows[page.rows.length - 1] as { account_id: string }).account_id;
      if (page.rows.length < PAGE_ROWS) break;
    }
    return written;
  },
};

/** Payment hashes (as Lua wrote them, from the latest event's payment_record) and the out_trade_no index. */
export const paymentsRebuilder: Rebuilder = {
  name: 'payments',
  owns: ['pay:', 'otn:'],
  async rebuild(ctx) {
    let written = 0;
    let after = '';
    for (;;) {
      const page = await ctx.pool.query<{ id: string; out_trade_no: string }>(
        `SELECT id, out_trade_no FROM payments WHERE merchant_id = $1 AND out_trade_no > $2 ORDER BY out_trade_no LIMIT $3`,
        [ctx.merchantId, after, PAGE_ROWS],
      );
      if (page.rows.length === 0) break;
      const records = await paymentRecords(ctx, page.rows.map((p) => p.id));
      for (const row of page.rows) {
        const record = records.get(row.id);
        if (!record) continue; // only in an incomplete command: not applied until its redelivery
        await ctx.batch.add((p) => p.hset(ctx.keys.payment(row.id), record).set(ctx.keys.outTradeNo(row.out_trade_no), row.id));
        written++;
      }
      after = (page.rows[page.rows.length - 1] as { out_trade_no: string }).out_trade_no;
      if (page.rows.length < PAGE_ROWS) break;
    }
    return written;
  },
};

/**
 * Refund hashes from `refunds`: every field paymentRefund-4.lua writes (created_at keeps its
 * milliseconds; a channel refund's account_id is ''). Pending channel refunds go back into the
 * watch set too, due at once: the engine asks their channel again (the same refund id is the same
 * refund there).
 */
export const refundsRebuilder: Rebuilder = {
  name: 'refunds',
  owns: ['refund:', 'chan:refunds'],
  async rebuild(ctx) {
    let written = 0;
    let after = '';
    for (;;) {
      const page = await ctx.pool.query<{
        id: string; payment_id: string; account_id: string | null; amount: number; currency: string; status: string; reason: string | null; created_at_ms: string;
      }>(
        `SELECT id, payment_id, account_id, amount, currency, status, reason,
                round(extract(epoch FROM created_at) * 1000)::text AS created_at_ms
         FROM refunds WHERE merchant_id = $1 AND id > $2 AND NOT (event_id = ANY($3::text[])) ORDER BY id LIMIT $4`,
        [ctx.merchantId, after, ctx.incomplete.eventIds, PAGE_ROWS],
      );
      if (page.rows.length === 0) break;
      for (const r of page.rows) {
        const fields = {
          id: r.id, merchant_id: ctx.merchantId, payment_id: r.payment_id, account_id: r.account_id ?? '', amount: r.amount,
          currency: r.currency, status: r.status, reason: r.reason ?? '', created_at_ms: safeInt(`created_at of refund ${r.id}`, r.created_at_ms),
        };
        await ctx.batch.add((p) => {
          p.hset(ctx.keys.refund(r.id), fields);
          return r.status === 'pending' ? p.zadd(ctx.keys.channelRefunds, ctx.nowMs, r.id) : p;
        });
        written++;
      }
      after = (page.rows[page.rows.length - 1] as { id: string }).id;
      if (page.rows.length < PAGE_ROWS) break;
    }
    return written;
  },
};

/** Statuses in which a payment may hold funds (hold_amount > 0 decides). */
const HOLDING_STATUSES = ['authorized', 'requires_action'];

/** The open-holds sorted set: every payment still holding funds, scored by its deadline (ms). */
export const holdsRebuilder: Rebuilder = {
  name: 'holds',
  owns: ['holds:exp'],
  async rebuild(ctx) {
    let written = 0;
    let after = '';
    for (;;) {
      const page = await ctx.pool.query<{ id: string }>(
        // A payment whose latest command is incomplete is rebuilt as it was before: maybe holding.
        `SELECT id FROM payments WHERE merchant_id = $1 AND (status = ANY($2::text[]) OR id = ANY($3::text[])) AND id > $4
         ORDER BY id LIMIT $5`,
        [ctx.merchantId, HOLDING_STATUSES, ctx.incomplete.paymentIds, after, PAGE_ROWS],
      );
      if (page.rows.length === 0) break;
      const records = await paymentRecords(ctx, page.rows.map((p) => p.id));
      for (const record of records.values()) {
        if (!HOLDING_STATUSES.includes(record.status as string) || Number(record.hold_amount) <= 0) continue;
        const deadline = safeInt(`hold deadline of ${String(record.id)}`, record.hold_expires_at_ms);
        await ctx.batch.add((p) => p.zadd(ctx.keys.holdsExpiring, deadline, record.id as string));
        written++;
      }
      after = (page.rows[page.rows.length - 1] as { id: string }).id;
      if (page.rows.length < PAGE_ROWS) break;
    }
    return written;
  },
};

/** Event types whose command's result opResultOf re-creates: those of the payment and account scripts. */
const OP_EVENT_TYPE = /^(payment|account|refund)\./;

/**
 * Op records of every command applied within the op retention window that left events: its first
 * result re-created from its events (see opResultOf), expiring when the original would have. A
 * redelivered or re-sent command then replays instead of applying twice. Commands that left no
 * event (refusals) get no op record: run again, they decide again on the same state. Commands of
 * other event types (risk.*) are left to the rebuilder of that state, which runs later and may
 * write their op records (their results carry more than opResultOf knows).
 */
export const opsRebuilder: Rebuilder = {
  name: 'ops',
  owns: ['op:'],
  async rebuild(ctx) {
    let written = 0;
    let after: { at: Date; cmd: string; id: string } | null = null;
    let carry: EventRow[] = [];
    const writeOp = async (rows: EventRow[]) => {
      const first = rows[0] as EventRow;
      if (ctx.incomplete.cmdIds.has(first.cmd_id)) return;
      const events = rows.map(parseEvent).sort((a, b) => eventIndex(a) - eventIndex(b));
      if (!events.every((e) => OP_EVENT_TYPE.test(e.type))) {
        ctx.inexact('op_of_other_kind');
        return;
      }
      const { result, exact } = opResultOf(events);
      if (!exact) ctx.inexact('op');
      const expiresAtMs = first.occurred_ms + ctx.opTtlS * 1000;
      if (expiresAtMs <= ctx.nowMs) return;
      await ctx.batch.add((p) => p.set(ctx.keys.op(first.cmd_id), Buffer.from(encode(result)), 'PXAT', expiresAtMs));
      written++;
    };
    for (;;) {
      // Keyset order (occurred_at, cmd_id, id): a command's events share occurred_at, so they are adjacent.
      const page: pg.QueryResult<EventRow> = await ctx.pool.query<EventRow>(
        `SELECT id, cmd_id, (round(extract(epoch FROM occurred_at) * 1000))::bigint AS occurred_ms, body FROM events
         WHERE merchant_id = $1 AND occurred_at > $2
           AND ($3::timestamptz IS NULL OR (occurred_at, cmd_id, id) > ($3::timestamptz, $4::text, $5::text))
         ORDER BY occurred_at, cmd_id, id LIMIT $6`,
        [ctx.merchantId, new Date(ctx.windowStartMs), after?.at ?? null, after?.cmd ?? '', after?.id ?? '', PAGE_ROWS],
      );
      const rows = carry.concat(page.rows);
      const full = page.rows.length === PAGE_ROWS;
      // Group adjacent rows by command; when the page was full the last group may continue on the next.
      let start = 0;
      for (let i = 1; i <= rows.length; i++) {
        if (i < rows.length && (rows[i] as EventRow).cmd_id === (rows[start] as EventRow).cmd_id) continue;
        if (i === rows.length && full) break;
        await writeOp(rows.slice(start, i));
        start = i;
      }
      carry = full ? rows.slice(start) : [];
      if (carry.length > PAGE_ROWS) throw new Error('assertion: one command has more events than a page');
      const last = page.rows[page.rows.length - 1];
      if (!full || !last) break;
      after = { at: new Date(last.occurred_ms), cmd: last.cmd_id, id: last.id };
    }
    return written;
  },
};

/**
 * The channel watch set (补单): every pending channel payment, due at once, so the shard's next
 * owner asks its channel about it (or opens its order, when it had none) after a Redis loss.
 */
export const channelWatchRebuilder: Rebuilder = {
  name: 'channel_watch',
  owns: ['chan:watch'],
  async rebuild(ctx) {
    let written = 0;
    let after = '';
    for (;;) {
      const page = await ctx.pool.query<{ id: string }>(
        `SELECT id FROM payments WHERE merchant_id = $1 AND method <> 'balance' AND (status = 'pending' OR id = ANY($2::text[])) AND id > $3
         ORDER BY id LIMIT $4`,
        [ctx.merchantId, ctx.incomplete.paymentIds, after, PAGE_ROWS],
      );
      if (page.rows.length === 0) break;
      const records = await paymentRecords(ctx, page.rows.map((p) => p.id));
      for (const record of records.values()) {
        if (record.status !== 'pending' || record.method === 'balance') continue;
        await ctx.batch.add((p) => p.zadd(ctx.keys.channelWatch, ctx.nowMs, record.id as string));
        written++;
      }
      after = (page.rows[page.rows.length - 1] as { id: string }).id;
      if (page.rows.length < PAGE_ROWS) break;
    }
    return written;
  },
};

const SHARD_MERCHANTS = /^[^:]+:\{shard-\d+\}:merchants$/;

/** The shard's merchant set the engine loads open holds from when it takes a shard (shards/holds.ts). */
export const shardMerchantsRebuilder: Rebuilder = {
  name: 'shard_merchants',
  owns: [],
  ownsShared: (key, prefix) => key.startsWith(`${prefix}:`) && SHARD_MERCHANTS.test(key),
  async rebuild(ctx) {
    const key = shardMerchantsKey(ctx.prefix, shardOf(ctx.merchantId, ctx.shardCount));
    const r = await ctx.pool.query('SELECT 1 FROM events WHERE merchant_id = $1 LIMIT 1', [ctx.merchantId]);
    // A merchant the engine has applied a command for (one that left an event) is in its shard's set.
    await ctx.batch.add((p) => (r.rowCount ? p.sadd(key, ctx.merchantId) : p.srem(key, ctx.merchantId)));
    return r.rowCount ? 1 : 0;
  },
};

/** Every kind of merchant state in Redis that is rebuilt, in order. Add new kinds here. */
export const REBUILDERS: readonly Rebuilder[] = [
  accountsRebuilder,
  paymentsRebuilder,
  refundsRebuilder,
  channelWatchRebuilder,
  holdsRebuilder,
  opsRebuilder,
  shardMerchantsRebuilder,
  riskRebuilder,
];
