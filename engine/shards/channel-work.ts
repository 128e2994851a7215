// Channel work of one shard, off the actors' path: opening channel orders for new channel
// payments, looking at pending ones that the channel has not called back about (补单: query, and
// close at the deadline), and closing canceled ones at the channel. Every result goes back into
// the shard's command stream as payment.channel_open / payment.channel_notify, so it is applied by
// the merchant's actor in order, at most once (deterministic cmd ids + Lua op records), and is as
// durable as any command. A crash between a channel call and its publish loses nothing: the
// payment stays pending in the watch set and the next owner looks at it again.
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { createHash } from 'node:crypto';
import { ChannelDesk } from '../channels/desk.ts';
import { isChannelError, type ChannelName } from '../channels/types.ts';
import { encode } from '../protocol/codec.ts';
import { PROTOCOL_VERSION, type Command, type CommandOf } from '../protocol/commands.ts';
import { REPLY_HEADER } from '../protocol/headers.ts';
import type { Payment } from '../protocol/payment.ts';
import type { Names } from '../protocol/subjects.ts';
import type { Currency } from '../protocol/money.ts';
import type { MoneyStore, RawPayment } from '../redis/store.ts';
import { HoldTracker } from './holds.ts';

/** Channel calls in flight per shard, and tasks waiting for one; past that the watcher catches up later. */
export const CHANNEL_TASKS_INFLIGHT_MAX = 64;
export const CHANNEL_TASKS_QUEUED_MAX = 10_000;
/** Pending payments looked at per sweep. */
export const CHANNEL_LOOKS_PER_SWEEP_MAX = 500;
/** Where channels find a payment's merchant from the order number: <prefix>:chanidx:<payment id>. */
export const channelIndexKey = (prefix: string, paymentId: string) => `${prefix}:chanidx:${paymentId}`;
/** Kept as long as a channel may still call back or be asked to refund (400 days). */
export const CHANNEL_INDEX_TTL_S = 400 * 86400;

type Task =
  | { kind: 'open'; merchantId: string; paymentId: string; replyTo: string | null }
  | { kind: 'look'; merchantId: string; paymentId: string }
  | { kind: 'close'; merchantId: string; paymentId: string };

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

export class ChannelWork {
  private readonly d: ChannelWorkDeps;
  readonly watch: HoldTracker;
  private readonly queue: Task[] = [];
  private readonly busy = new Set<string>();
  private inflight = 0;
  private stopped = false;

  constructor(d: ChannelWorkDeps) {
    this.d = d;
    this.watch = new HoldTracker({ retryMs: d.desk.settings.query_every_ms, key: (k) => k.channelWatch });
  }

  load(): Promise<void> {
    return this.watch.load(this.d.redis, this.d.names.redisPrefix, this.d.shard);
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }

  get pending(): number {
    return this.queue.length + this.inflight;
  }

  /** After a command was applied: start what the payment's new state asks of the channel. */
  after(cmd: Command, p: Payment, replyTo: string | null): 'reply_later' | 'reply_now' {
    if (p.method === 'balance') return 'reply_now';
    if (p.status === 'pending') {
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

  /** Called by the shard's sweep: pending payments due for a look. */
  sweep(): void {
    if (this.stopped) return;
    const room = Math.min(CHANNEL_LOOKS_PER_SWEEP_MAX, CHANNEL_TASKS_QUEUED_MAX - this.queue.length);
    if (room <= 0) return;
    for (const e of this.watch.takeDue(this.d.now(), room)) this.enqueue({ kind: 'look', merchantId: e.merchantId, paymentId: e.paymentId });
  }

  private enqueue(t: Task): void {
    // Full: dropped here, picked up again by the watcher (the payment is in its watch set).
    if (this.stopped || this.queue.length >= CHANNEL_TASKS_QUEUED_MAX) return;
    this.queue.push(t);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.inflight < CHANNEL_TASKS_INFLIGHT_MAX && this.queue.length > 0) {
      const t = this.queue.shift() as Task;
      if (this.busy.has(t.paymentId)) continue; // one task per payment at a time; the watcher comes back
      this.busy.add(t.paymentId);
      this.inflight++;
      void this.run(t)
        .catch((err: unknown) => this.d.log.warn({ shard: this.d.shard, payment_id: t.paymentId, task: t.kind, err: (err as Error).message }, 'channel task failed'))
        .finally(() => {
          this.busy.delete(t.paymentId);
          this.inflight--;
          this.pump();
        });
    }
  }

  private async run(t: Task): Promise<void> {
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
