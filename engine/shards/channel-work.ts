// Channel work of one shard, off the actors' path: opening channel orders for new channel
// payments, looking at pending ones that the channel has not called back about (补单: query, and
// close at the deadline), closing canceled ones at the channel, and refunding through the channel
// (a refund of a channel payment is recorded pending and reserved by its command; this asks the
// channel, and again while it stays pending). Every result goes back into the shard's command
// stream as payment.channel_open / payment.channel_notify / refund.channel_result, so it is
// applied by the merchant's actor in order, at most once (deterministic cmd ids + Lua op
// records), and is as durable as any command. A crash between a channel call and its publish
// loses nothing: the payment (or refund) stays pending in its watch set and the next owner looks
// at it again.
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { createHash } from 'node:crypto';
import { ChannelDesk } from '../channels/desk.ts';
import { isChannelError, type ChannelName, type ChannelRefundState } from '../channels/types.ts';
import { encode } from '../protocol/codec.ts';
import { PROTOCOL_VERSION, refundChannelResultSchema, type Command, type CommandOf } from '../protocol/commands.ts';
import { REPLY_HEADER } from '../protocol/headers.ts';
import type { Reply } from '../protocol/events.ts';
import type { Names } from '../protocol/subjects.ts';
import type { Currency } from '../protocol/money.ts';
import type { MoneyStore, RawPayment, RawRefund } from '../redis/store.ts';
import { HoldTracker } from './holds.ts';
import type { Outcome } from './outcome.ts';

/** Channel calls in flight per shard, and tasks waiting for one; past that the watcher catches up later. */
export const CHANNEL_TASKS_INFLIGHT_MAX = 64;
export const CHANNEL_TASKS_QUEUED_MAX = 10_000;
/** Pending payments looked at per sweep. */
export const CHANNEL_LOOKS_PER_SWEEP_MAX = 500;
/** Pending channel refunds asked about again per sweep. */
export const CHANNEL_REFUND_LOOKS_PER_SWEEP_MAX = 500;
/**
 * A channel refund still pending after this long is no longer asked about: it is logged for an
 * operator (the channel neither decided it nor called back). It stays in the watch set, so the
 * next owner of the shard asks once more.
 */
export const CHANNEL_REFUND_WATCH_MS_MAX = 7 * 86_400_000;
/**
 * How long the HTTP reply to a refund waits for the channel's decision once the channel has
 * answered "pending" (WeChat Pay, UnionPay: the outcome comes by callback, usually at once), or
 * for our own decided result to be applied. Past it the reply says pending (202).
 */
export const CHANNEL_REFUND_REPLY_HOLD_MS = 1_000;
/** Refund replies held at once; past that a refund is answered pending at once. */
export const CHANNEL_REFUND_REPLIES_HELD_MAX = 10_000;
/** Where channels find a payment's merchant from the order number: <prefix>:chanidx:<payment id>. */
export const channelIndexKey = (prefix: string, paymentId: string) => `${prefix}:chanidx:${paymentId}`;
/** Kept as long as a channel may still call back or be asked to refund (400 days). */
export const CHANNEL_INDEX_TTL_S = 400 * 86400;

type Task =
  | { kind: 'open'; merchantId: string; paymentId: string; replyTo: string | null }
  | { kind: 'look'; merchantId: string; paymentId: string }
  | { kind: 'close'; merchantId: string; paymentId: string }
  /** first: the call right after the refund was made; otherwise the watcher asking again. */
  | { kind: 'refund'; merchantId: string; refundId: string; first: boolean };

/** A refund's HTTP reply, held until the channel decides (or CHANNEL_REFUND_REPLY_HOLD_MS). */
type HeldReply = { replyTo: string; pending: Reply; timer: NodeJS.Timeout | null };

export type ChannelWorkDeps = {
  desk: ChannelDesk;
  store: MoneyStore;
  redis: Redis;
  nc: NatsConnection;
  js: JetStreamClient;
  names: Names;
  log: Logger;
  shard: number;
  now: () => number;
};

/** The cmd id of a channel notification: stable per (channel, notification id), whatever its length. */
export function notifyCmdId(channel: string, notificationId: string): string {
  return `ntf_${createHash('sha256').update(`${channel}\0${notificationId}`).digest('base64url').slice(0, 26)}`;
}

/**
 * The cmd id of a refund's channel result: one per refund (stable per merchant and refund id), so
 * whichever answer comes first (our call, asking again, a callback) decides and the others are
 * duplicates (JetStream) or replays (op record).
 */
export function refundResultCmdId(merchantId: string, refundId: string): string {
  return `rfr_${createHash('sha256').update(`${merchantId}\0${refundId}`).digest('base64url').slice(0, 26)}`;
}

const taskKey = (t: Task) => (t.kind === 'refund' ? `refund:${t.refundId}` : t.paymentId);

export class ChannelWork {
  private readonly d: ChannelWorkDeps;
  readonly watch: HoldTracker;
  /** Pending channel refunds (keyed by refund id), asked about again every query_every_ms. */
  readonly refunds: HoldTracker;
  private readonly queue: Task[] = [];
  private readonly busy = new Set<string>();
  private readonly held = new Map<string, HeldReply>();
  private inflight = 0;
  private stopped = false;

  constructor(d: ChannelWorkDeps) {
    this.d = d;
    this.watch = new HoldTracker({ retryMs: d.desk.settings.query_every_ms, key: (k) => k.channelWatch });
    this.refunds = new HoldTracker({ retryMs: d.desk.settings.query_every_ms, key: (k) => k.channelRefunds });
  }

  async load(): Promise<void> {
    await this.watch.load(this.d.redis, this.d.names.redisPrefix, this.d.shard);
    await this.refunds.load(this.d.redis, this.d.names.redisPrefix, this.d.shard);
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    for (const id of [...this.held.keys()]) this.releaseReply(id);
  }

  get pending(): number {
    return this.queue.length + this.inflight;
  }

  /** After a command was applied: start what the payment's (or refund's) new state asks of the channel. */
  after(cmd: Command, o: Outcome, replyTo: string | null): 'reply_later' | 'reply_now' {
    if (cmd.type === 'payment.refund') return this.afterRefund(cmd, o, replyTo);
    if (cmd.type === 'refund.channel_result') {
      this.refundDecided(cmd.refund_id, o);
      return 'reply_now';
    }
    const p = o.payment;
    if (!p || p.method === 'balance') return 'reply_now';
    // 'processing' in the public view: pending here, its channel order not open yet (view.ts).
    if (p.status === 'pending' || p.status === 'processing') {
      if (!this.watch.has(p.id)) this.watch.add(cmd.merchant_id, p.id, Date.parse(p.created_at) + this.d.desk.settings.query_after_ms);
      if (p.channel === null && (cmd.type === 'payment.create')) {
        this.enqueue({ kind: 'open', merchantId: cmd.merchant_id, paymentId: p.id, replyTo });
        return replyTo ? 'reply_later' : 'reply_now';
      }
      return 'reply_now';
    }
    this.watch.drop(p.id);
    if (cmd.type === 'payment.cancel' && p.status === 'canceled' && p.channel !== null) {
      this.enqueue({ kind: 'close', merchantId: cmd.merchant_id, paymentId: p.id });
    }
    return 'reply_now';
  }

  /**
   * A refund was applied. A pending one is a channel refund: the watcher will ask about it, and the
   * command that made it asks the channel now, holding the HTTP reply until the channel decides.
   * A replay or a redelivery leaves it to the watcher, which never takes a refusal for the final
   * answer (an earlier call may have reached the channel).
   */
  private afterRefund(cmd: CommandOf<'payment.refund'>, o: Outcome, replyTo: string | null): 'reply_later' | 'reply_now' {
    const r = o.reply.ok ? o.reply.refund : undefined;
    if (!r || r.status !== 'pending') return 'reply_now';
    if (!this.refunds.has(r.id)) this.refunds.add(cmd.merchant_id, r.id, this.d.now() + this.d.desk.settings.query_after_ms);
    if (o.reply.replayed || !o.events.some((e) => e.type === 'refund.pending')) return 'reply_now';
    const hold = replyTo !== null && !this.stopped && this.held.size < CHANNEL_REFUND_REPLIES_HELD_MAX;
    if (hold) this.held.set(r.id, { replyTo, pending: o.reply, timer: null });
    this.enqueue({ kind: 'refund', merchantId: cmd.merchant_id, refundId: r.id, first: true });
    return hold ? 'reply_later' : 'reply_now';
  }

  /** A refund.channel_result was applied: a decided refund is no longer watched, and its held reply says how it ended. */
  private refundDecided(refundId: string, o: Outcome): void {
    const r = o.reply.ok ? o.reply.refund : undefined;
    if (!r || r.status === 'pending') return; // a mismatch: still pending, still watched
    this.refunds.drop(refundId);
    const held = this.held.get(refundId);
    if (!held) return;
    if (held.timer) clearTimeout(held.timer);
    this.held.delete(refundId);
    this.answer(held.replyTo, o.reply);
  }

  private answer(replyTo: string, reply: Reply): void {
    try {
      this.d.nc.publish(replyTo, encode(reply));
    } catch (err) {
      // The connection is closing: the client's deadline answers from the refund as stored.
      this.d.log.warn({ shard: this.d.shard, err: (err as Error).message }, 'refund reply not sent');
    }
  }

  /** Answers a held refund reply now: pending (the client polls or waits for the webhook). */
  private releaseReply(refundId: string): void {
    const held = this.held.get(refundId);
    if (!held) return;
    if (held.timer) clearTimeout(held.timer);
    this.held.delete(refundId);
    this.answer(held.replyTo, held.pending);
  }

  /** Lets a held refund reply wait a little for the decision (a callback, or our result being applied). */
  private holdReply(refundId: string): void {
    const held = this.held.get(refundId);
    if (!held || held.timer) return;
    held.timer = setTimeout(() => this.releaseReply(refundId), CHANNEL_REFUND_REPLY_HOLD_MS);
    held.timer.unref();
  }

  /** Called by the shard's sweep: pending payments due for a look, pending refunds due to be asked about. */
  sweep(): void {
    if (this.stopped) return;
    const nowMs = this.d.now();
    let room = Math.min(CHANNEL_LOOKS_PER_SWEEP_MAX, CHANNEL_TASKS_QUEUED_MAX - this.queue.length);
    if (room <= 0) return;
    for (const e of this.watch.takeDue(nowMs, room)) this.enqueue({ kind: 'look', merchantId: e.merchantId, paymentId: e.paymentId });
    room = Math.min(CHANNEL_REFUND_LOOKS_PER_SWEEP_MAX, CHANNEL_TASKS_QUEUED_MAX - this.queue.length);
    if (room <= 0) return;
    for (const e of this.refunds.takeDue(nowMs, room)) this.enqueue({ kind: 'refund', merchantId: e.merchantId, refundId: e.paymentId, first: false });
  }

  private enqueue(t: Task): void {
    // Full: dropped here, picked up again by the watcher (the payment or refund is in its watch set).
    if (this.stopped || this.queue.length >= CHANNEL_TASKS_QUEUED_MAX) return this.dropped(t);
    this.queue.push(t);
    this.pump();
  }

  private dropped(t: Task): void {
    if (t.kind === 'refund') this.releaseReply(t.refundId);
  }

  private pump(): void {
    while (!this.stopped && this.inflight < CHANNEL_TASKS_INFLIGHT_MAX && this.queue.length > 0) {
      const t = this.queue.shift() as Task;
      const key = taskKey(t);
      if (this.busy.has(key)) {
        this.dropped(t); // one task per payment (refund) at a time; the watcher comes back
        continue;
      }
      this.busy.add(key);
      this.inflight++;
      const id = t.kind === 'refund' ? { refund_id: t.refundId } : { payment_id: t.paymentId };
      void this.run(t)
        .catch((err: unknown) => {
          this.d.log.warn({ shard: this.d.shard, ...id, task: t.kind, err: (err as Error).message }, 'channel task failed');
          this.dropped(t);
        })
        .finally(() => {
          this.busy.delete(key);
          this.inflight--;
          this.pump();
        });
    }
  }

  private async run(t: Task): Promise<void> {
    if (t.kind === 'refund') return this.refund(t);
    const raw = await this.d.store.readPayment(t.merchantId, t.paymentId);
    if (!raw) return;
    if (t.kind === 'close') return this.closeCanceled(raw);
    if (raw.status !== 'pending') {
      this.watch.drop(raw.id);
      await this.d.redis.zrem(this.d.store.keys(raw.merchant_id).channelWatch, raw.id);
      return;
    }
    if (raw.channel === '') return this.open(raw, t.kind === 'open' ? t.replyTo : null);
    return this.look(raw);
  }

  private async open(raw: RawPayment, replyTo: string | null): Promise<void> {
    // The index first: a buyer may pay (and the channel call back) before the open is applied.
    await this.d.redis.set(channelIndexKey(this.d.names.redisPrefix, raw.id), indexValue(raw), 'EX', CHANNEL_INDEX_TTL_S);
    const result = await this.d.desk.open(raw);
    const cmd: CommandOf<'payment.channel_open'> = {
      v: PROTOCOL_VERSION, type: 'payment.channel_open', cmd_id: `cho_${raw.id.replace(/^pay_/, '')}`, merchant_id: raw.merchant_id,
      ts_ms: this.d.now(), payment_id: raw.id, result,
    };
    await this.publish(cmd, replyTo);
  }

  /** 补单: ask the channel; past the order's deadline, close it there first. */
  private async look(raw: RawPayment): Promise<void> {
    const channel = raw.channel as ChannelName;
    if (!this.d.desk.has(channel)) return;
    if (this.d.now() >= raw.hold_expires_at_ms) {
      try {
        await this.d.desk.close(raw);
        return this.publish(this.notifyCmd(raw, { status: 'closed', amount: raw.channel_amount, currency: raw.channel_currency, channel_trade_no: null }, 'close'), null);
      } catch (err) {
        if (!(isChannelError(err) && err.code === 'order_paid')) throw err;
        // Paid at the last moment: the query below books it.
      }
    }
    const state = await this.d.desk.query(raw);
    if (state.status === 'pending') return;
    await this.publish(this.notifyCmd(raw, state, `query_${state.status}`), null);
  }

  private async closeCanceled(raw: RawPayment): Promise<void> {
    if (raw.channel === '' || !this.d.desk.has(raw.channel)) return;
    try {
      await this.d.desk.close(raw);
    } catch (err) {
      if (!(isChannelError(err) && err.code === 'order_paid')) throw err;
      // The buyer paid before the cancel reached the channel: the notify answers LATE_PAYMENT and
      // the payment is flagged for a refund at the channel (docs/CHANNELS.md).
      const state = await this.d.desk.query(raw);
      if (state.status === 'succeeded') await this.publish(this.notifyCmd(raw, state, 'query_succeeded'), null);
    }
  }

  /**
   * Asks the channel to refund (again: the refund id is its out_refund_no, one refund however often
   * sent) and publishes a decided answer as refund.channel_result. Pending, or channel trouble: the
   * refund stays pending and watched. A refusal decides only on the first call; on asking again it
   * may be the channel refusing a repeat of a refund it already took (UnionPay after a restart),
   * so it is logged for an operator and the refund stays pending.
   */
  private async refund(t: Extract<Task, { kind: 'refund' }>): Promise<void> {
    const r = await this.d.store.readRefund(t.merchantId, t.refundId);
    if (!r || r.status !== 'pending') {
      this.refunds.drop(t.refundId);
      await this.d.redis.zrem(this.d.store.keys(t.merchantId).channelRefunds, t.refundId);
      return this.releaseReply(t.refundId);
    }
    const log = { shard: this.d.shard, merchant_id: r.merchant_id, refund_id: r.id, payment_id: r.payment_id };
    const raw = await this.d.store.readPayment(t.merchantId, r.payment_id);
    if (!raw || !this.d.desk.has(raw.channel)) {
      this.d.log.error({ ...log, channel: raw?.channel ?? null }, 'channel refund pending on a channel that is not configured');
      return this.releaseReply(r.id);
    }
    if (!t.first && this.d.now() - r.created_at_ms > CHANNEL_REFUND_WATCH_MS_MAX) {
      this.refunds.drop(r.id);
      this.d.log.error({ ...log, channel: raw.channel }, 'channel refund still pending past the watch limit: an operator must settle it with the channel');
      return;
    }
    let state: ChannelRefundState;
    try {
      state = await this.d.desk.refund(raw, r);
    } catch (err) {
      const refused = isChannelError(err) && (err.code === 'rejected' || err.code === 'not_found');
      if (refused && t.first) {
        this.d.log.warn({ ...log, channel: raw.channel, err: err.message, channel_code: err.channelCode }, 'channel refused the refund');
        await this.publishRefundResult(raw, r, { status: 'failed', amount: null, channel_refund_id: null }, 'refund');
        return this.holdReply(r.id);
      }
      if (refused) this.d.log.error({ ...log, channel: raw.channel, err: err.message }, 'channel refused a refund asked again: it stays pending for an operator');
      else this.d.log.warn({ ...log, channel: raw.channel, err: (err as Error).message }, 'channel refund not answered; asked again later');
      return this.releaseReply(r.id);
    }
    if (state.out_refund_no !== r.id) {
      this.d.log.error({ ...log, channel: raw.channel }, 'channel answered about another refund');
      return this.releaseReply(r.id);
    }
    if (state.status !== 'pending') {
      await this.publishRefundResult(raw, r, { status: state.status, amount: state.amount, channel_refund_id: state.channel_refund_id }, t.first ? 'refund' : 'query');
    }
    this.holdReply(r.id);
  }

  private async publishRefundResult(
    raw: RawPayment,
    r: RawRefund,
    s: { status: 'succeeded' | 'failed'; amount: number | null; channel_refund_id: string | null },
    source: 'refund' | 'query',
  ): Promise<void> {
    const cmd: CommandOf<'refund.channel_result'> = {
      v: PROTOCOL_VERSION, type: 'refund.channel_result', cmd_id: refundResultCmdId(r.merchant_id, r.id), merchant_id: r.merchant_id,
      ts_ms: this.d.now(), payment_id: raw.id, refund_id: r.id, channel: raw.channel as ChannelName, source, status: s.status,
      amount: s.amount, currency: raw.channel_currency as Currency, channel_refund_id: s.channel_refund_id?.slice(0, 128) || null,
    };
    // An answer that cannot be a command (a zero amount …) would be refused by every consumer: kept pending, for an operator.
    const checked = refundChannelResultSchema.safeParse(cmd);
    if (!checked.success) {
      this.d.log.error({ shard: this.d.shard, refund_id: r.id, err: checked.error.message }, 'channel refund answer is not a valid result');
      return;
    }
    await this.publish(cmd, null);
  }

  private notifyCmd(
    raw: RawPayment,
    s: { status: 'succeeded' | 'failed' | 'closed' | 'pending'; amount: number; currency: string; channel_trade_no: string | null },
    notificationId: string,
  ): CommandOf<'payment.channel_notify'> {
    if (s.status === 'pending') throw new Error('assertion: notify of a pending order');
    const notification_id = `${raw.id}:${notificationId}`;
    return {
      v: PROTOCOL_VERSION, type: 'payment.channel_notify', cmd_id: notifyCmdId(raw.channel, notification_id), merchant_id: raw.merchant_id,
      ts_ms: this.d.now(), payment_id: raw.id, channel: raw.channel as ChannelName, source: 'query', notification_id,
      status: s.status, amount: s.amount, currency: s.currency as Currency, channel_trade_no: s.channel_trade_no,
      wallet_id: raw.kind === 'topup' ? raw.account_id : null,
    };
  }

  private async publish(cmd: Command, replyTo: string | null): Promise<void> {
    const h = headers();
    if (replyTo) h.set(REPLY_HEADER, replyTo);
    await this.d.js.publish(this.d.names.cmdSubject(cmd.merchant_id), encode(cmd), { msgID: cmd.cmd_id, headers: h });
  }
}

/** What the notify route needs to turn a channel's order number into a command: merchant and wallet. */
export function indexValue(raw: Pick<RawPayment, 'merchant_id' | 'kind' | 'account_id'>): string {
  return JSON.stringify({ m: raw.merchant_id, w: raw.kind === 'topup' ? raw.account_id : null });
}
