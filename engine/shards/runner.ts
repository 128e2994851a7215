// One shard: a durable pull consumer on <ns>.cmd.<shard> and the per-merchant actors fed by it.
//
// - Per merchant, in order: each merchant has a mailbox; one batch at a time runs for it.
// - Across merchants, in parallel: actors of different merchants run concurrently.
// - A hot merchant is not limited to one command per round-trip: its mailbox is drained in
//   batches of up to batchMax commands, issued to Redis in one write.
// - Bounded: at most inflightMax commands are held (received, not acknowledged); past that the
//   runner stops pulling (and the consumer's max_ack_pending stops the server too).
// - Durable: a command is acknowledged only after its Lua effect is applied and its events have
//   PubAcks from JetStream. On an operating error every unacknowledged message is nak'ed in stream
//   order and the shard restarts after a bounded backoff, so redelivery keeps the order.
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { decodeCommand, decodeCommandBatch, encode, type BatchEntry } from '../protocol/codec.ts';
import type { Command } from '../protocol/commands.ts';
import { EventPublisher } from './event-out.ts';
import { ReplyOut } from './reply-out.ts';
import { PROTOCOL_VERSION } from '../protocol/commands.ts';
import { BATCH_HEADER, REPLY_HEADER } from '../protocol/headers.ts';
import type { Names } from '../protocol/subjects.ts';
import type { MoneyStore } from '../redis/store.ts';
import type { EngineMetrics } from '../metrics.ts';
import { applyCommand } from './apply.ts';
import { HoldTracker, shardMerchantsKey } from './holds.ts';
import type { Outcome } from './outcome.ts';
import { observeRisk } from '../risk/metrics.ts';
import type { ChannelDesk } from '../channels/desk.ts';
import { ChannelWork } from './channel-work.ts';
import type { IntakeGovernor } from './intake.ts';
import type { ApplyOptions } from './apply.ts';

export type RunnerDeps = {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  store: MoneyStore;
  /** The connection the store uses: shard-level keys (merchant set) ride in the same write. */
  redis: Redis;
  names: Names;
  log: Logger;
  metrics: EngineMetrics;
  batchMax: number;
  inflightMax: number;
  /** Replies to batched commands, coalesced per sender (one per process); a runner of its own otherwise. */
  replies?: ReplyOut;
  /** Clock for hold deadlines; tests pass their own. */
  now?: () => number;
  /** The payment channels; without them channel payments are refused (payment.method_unavailable). */
  desk?: ChannelDesk | null;
  /** Front-door priority (engine/shards/intake.ts): paces the pulls while an ingress is saturated. */
  intake?: IntakeGovernor | null;
};

/** key: the stream sequence; negative for a catch-up copy, which is not acknowledged. */
type Envelope = { m: JsMsg; cmd: Command; key: number; replyTo: string | null; batchReply: { prefix: string; token: string } | null };
/** A message received and not yet acked: acked once all its commands (`left`) are complete. */
type Held = { m: JsMsg; left: number };
type Actor = { merchantId: string; mailbox: Envelope[]; running: boolean };

const BACKOFF_MS_MAX = 5_000;
/**
 * Life of one pull request while the shard is idle (under load a pull fills at once). nats.js
 * fails a fetch after two missed heartbeats (expires/2 each), so it must be long compared with
 * any pause of the event loop. A pull abandoned on stop is covered by the next catch-up.
 */
const PULL_EXPIRES_MS = 30_000;
/** Catch-up ends if the temporary consumer delivers nothing for this long. */
const CATCH_UP_IDLE_MS = 2_000;
/** How often the shard looks for holds past their deadline, and how many it expires per look. */
export const SWEEP_EVERY_MS = 250;
export const EXPIRE_BATCH_MAX = 1_000;

export class ShardRunner {
  readonly shard: number;
  private readonly d: RunnerDeps;
  private readonly actors = new Map<string, Actor>();
  /**
   * Every message received and not yet acked or nak'ed, by stream sequence (insertion = stream
   * order). Bounded by inflightMax messages, so at most inflightMax × COMMANDS_PER_MESSAGE_MAX commands.
   */
  private readonly unacked = new Map<number, Held>();
  /** Commands of those messages not yet complete (what peakpay_engine_inflight_commands shows). */
  private heldCommands = 0;
  private messages: ConsumerMessages | null = null;
  private stopped = false;
  private failure: unknown = null;
  private wakeDrained: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private readonly now: () => number;
  readonly holds = new HoldTracker();
  /** Merchants already recorded in the shard's merchant set by this owner (bounded by merchants). */
  private readonly knownMerchants = new Set<string>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping = false;

  constructor(shard: number, deps: RunnerDeps) {
    this.shard = shard;
    this.d = deps;
    this.now = deps.now ?? Date.now;
    const desk = deps.desk ?? null;
    this.channels = desk
      ? new ChannelWork({ desk, store: deps.store, redis: deps.redis, nc: deps.nc, js: deps.js, names: deps.names, log: deps.log, shard, now: this.now })
      : null;
    this.replies = deps.replies ?? new ReplyOut(deps.nc);
    this.events = new EventPublisher(
      deps.nc, { subject: deps.names.evtSubjectShard(shard), quietSubject: deps.names.evtQuietSubjectShard(shard) }, `${deps.names.replyPrefix}.evt`,
    );
    this.applyOptions = { channelsEnabled: desk !== null, channelWatchMs: desk?.settings.query_after_ms ?? 0 };
  }

  private readonly channels: ChannelWork | null;
  private readonly applyOptions: ApplyOptions;
  /** This shard's events, coalesced while a message of them awaits its PubAck. */
  private readonly events: EventPublisher;
  private readonly replies: ReplyOut;

  /** Loads the shard's open holds, then consumes. A runner is started once; re-acquiring makes a new one. */
  async start(): Promise<void> {
    if (this.loop) throw new Error('assertion: runner started twice');
    this.loop = Promise.resolve();
    this.events.start();
    await this.holds.load(this.d.redis, this.d.names.redisPrefix, this.shard);
    await this.channels?.load();
    if (this.stopped) return;
    this.loop = this.run();
    this.sweepTimer = setInterval(() => void this.sweep(), SWEEP_EVERY_MS);
  }

  /** Stop pulling, let running batches finish, nak the rest (redelivered to the next owner). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.channels?.stop();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.wakeDrained?.();
    await this.messages?.close().catch(() => undefined);
    await this.loop;
    this.events.stop();
  }

  get inflight(): number {
    return this.unacked.size;
  }

  /** Commands waiting in mailboxes for their batch (read at each metrics scrape, O(active merchants)). */
  get queued(): number {
    let n = 0;
    for (const a of this.actors.values()) n += a.mailbox.length;
    return n;
  }

  private async run(): Promise<void> {
    let backoffMs = 100;
    while (!this.stopped) {
      try {
        await this.catchUp();
        const consumer = await this.d.js.consumers.get(this.d.names.cmdStream, this.d.names.shardConsumer(this.shard));
        // Our own pull loop on fetch(): back-pressure is decided before each pull (never while a
        // pull is being read), and a pull asks only for what fits under inflightMax. consume()
        // was measured to drift into pulls of one or two messages under this load.
        while (!this.stopped && !this.failure) {
          if (this.unacked.size >= this.d.inflightMax / 2) await this.drained();
          if (this.stopped || this.failure) break;
          const room = Math.min(this.d.batchMax * 2, this.d.inflightMax - this.unacked.size);
          const pull = this.d.intake ? await this.d.intake.take(room, () => this.stopped || this.failure !== null) : room;
          if (this.stopped || this.failure || pull === 0) break;
          const messages = await consumer.fetch({ max_messages: pull, expires: PULL_EXPIRES_MS });
          this.messages = messages;
          if (this.stopped) await messages.close();
          for await (const m of messages) {
            if (this.stopped || this.failure) break;
            this.receive(m);
            backoffMs = 100;
          }
        }
      } catch (err) {
        this.failure ??= err;
      }
      // Whatever the last pull still had in flight and we did not take is neither acked nor nak'ed: the next
      // consumer of this shard (this runner after a failure, or the next owner) catches up on it.
      await this.messages?.close().catch(() => undefined);
      this.messages = null;
      await this.settleActors();
      this.nakAll();
      if (this.stopped) break;
      if (this.failure) {
        this.d.metrics.shardFailures.inc();
        this.d.log.error({ shard: this.shard, err: this.failure }, 'shard failed; nak and restart');
      }
      this.failure = null;
      await sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, BACKOFF_MS_MAX);
    }
  }

  /**
   * Per-merchant order across a change of owner or a restart. Messages delivered to a previous
   * consumer that neither acked nor nak'ed them (killed, or left in a buffer) are redelivered only
   * after the ack wait; pulling newer ones before would reorder a merchant's commands. So first
   * every message of the shard after the consumer's ack floor, up to its last delivered one, is
   * applied in stream order, read through a temporary consumer. Re-applying one that was already
   * applied is a replay of its op id (same result, no effect); so is its later redelivery.
   */
  private async catchUp(): Promise<void> {
    const n = this.d.names;
    const info = await this.d.jsm.consumers.info(n.cmdStream, n.shardConsumer(this.shard));
    const fromSeq = info.ack_floor.stream_seq + 1;
    const toSeq = info.delivered.stream_seq;
    if (info.num_ack_pending === 0 || toSeq < fromSeq) return;
    const temp = await this.d.jsm.consumers.add(n.cmdStream, {
      filter_subject: n.cmdShardFilter(this.shard),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: fromSeq,
      ack_policy: AckPolicy.None,
      inactive_threshold: nanos(60_000),
      mem_storage: true,
    });
    let applied = 0;
    try {
      const consumer = await this.d.js.consumers.get(n.cmdStream, temp.name);
      const messages = await consumer.consume({ max_messages: Math.min(this.d.batchMax * 2, this.d.inflightMax) });
      this.messages = messages;
      // The range is bounded and every sequence in it was delivered, so it ends; the idle timer
      // only guards against messages removed by retention meanwhile.
      let idle = setTimeout(() => void messages.close(), CATCH_UP_IDLE_MS);
      for await (const m of messages) {
        clearTimeout(idle);
        if (m.seq > toSeq || this.stopped || this.failure) break;
        this.receive(m, true);
        applied++;
        if (m.seq === toSeq) break;
        if (this.unacked.size >= this.d.inflightMax) await this.drained();
        idle = setTimeout(() => void messages.close(), CATCH_UP_IDLE_MS);
      }
      clearTimeout(idle);
      await messages.close().catch(() => undefined);
      await this.until(() => this.unacked.size === 0 || this.failure !== null || this.stopped);
    } finally {
      this.messages = null;
      await this.d.jsm.consumers.delete(n.cmdStream, temp.name).catch(() => undefined);
    }
    if (this.failure) throw this.failure;
    if (applied > 0) this.d.log.info({ shard: this.shard, fromSeq, toSeq, applied }, 'caught up with a previous consumer');
  }

  private async until(done: () => boolean): Promise<void> {
    while (!done()) await sleep(5);
  }

  private receive(m: JsMsg, catchUp = false): void {
    const replyHeader = m.headers?.get(REPLY_HEADER) || null;
    const isBatch = m.headers?.has(BATCH_HEADER) ?? false;
    let entries: BatchEntry[];
    try {
      entries = isBatch
        ? decodeCommandBatch(m.data)
        : [{ reply: '', cmd: decodeCommand(m.data), error: null }];
    } catch (err) {
      // Poison: it can never succeed, so it must not block the shard. Terminate and answer.
      this.d.metrics.rejected.inc();
      this.d.log.warn({ shard: this.shard, seq: m.seq, err: (err as Error).message }, 'undecodable command terminated');
      if (!catchUp) m.term();
      if (replyHeader && !isBatch) this.refuse(replyHeader, 'unknown', 'undecodable command');
      return;
    }
    if (!catchUp) {
      this.d.metrics.commandsPerMessage.observe(entries.length);
      this.d.intake?.received(entries.length);
    }
    const key = catchUp ? -m.seq : m.seq;
    const held: Held = { m, left: 0 };
    const envelopes: Envelope[] = [];
    for (const e of entries) {
      // A batch's replies go to <prefix>.<token> (coalesced in ReplyBatches); a single command's to the header itself.
      const batchReply = isBatch && replyHeader && e.reply ? { prefix: replyHeader, token: e.reply } : null;
      const replyTo = batchReply ? `${batchReply.prefix}.${batchReply.token}` : isBatch ? null : replyHeader;
      if (e.cmd === null) {
        this.d.metrics.rejected.inc();
        this.d.log.warn({ shard: this.shard, seq: m.seq, err: e.error }, 'invalid command in a batch refused');
        if (batchReply && !catchUp) {
          this.replies.send(batchReply.prefix, batchReply.token, {
            v: PROTOCOL_VERSION, cmd_id: 'unknown', ok: false, replayed: false, code: 'command.invalid', message: 'invalid command', payment_id: null,
          });
        }
        continue;
      }
      envelopes.push({ m, cmd: e.cmd, key, replyTo, batchReply });
    }
    if (envelopes.length === 0) {
      if (!catchUp) m.ack();
      return;
    }
    held.left = envelopes.length;
    this.unacked.set(key, held);
    this.heldCommands += envelopes.length;
    this.d.metrics.inflight.labels(String(this.shard)).set(this.heldCommands);
    for (const env of envelopes) {
      let actor = this.actors.get(env.cmd.merchant_id);
      if (!actor) {
        actor = { merchantId: env.cmd.merchant_id, mailbox: [], running: false };
        this.actors.set(env.cmd.merchant_id, actor);
      }
      actor.mailbox.push(env);
      if (!actor.running) void this.drain(actor);
    }
  }

  private refuse(replyTo: string, cmdId: string, message: string): void {
    this.d.nc.publish(replyTo, encode({
      v: PROTOCOL_VERSION, cmd_id: cmdId, ok: false, replayed: false, code: 'command.invalid', message, payment_id: null,
    }));
  }

  private async drain(actor: Actor): Promise<void> {
    actor.running = true;
    try {
      // A stopped runner (released, or fenced because its lease could not be renewed) takes no
      // further batch: the next owner's catch-up applies what is left, in order.
      while (actor.mailbox.length > 0 && !this.failure && !this.stopped) {
        const batch = actor.mailbox.splice(0, this.d.batchMax);
        this.d.metrics.batchSize.observe(batch.length);
        const nowMs = this.now();
        // Issued in one synchronous loop: one write to Redis, applied there in this order. The
        // merchant joins the shard's merchant set in the same write, before its first hold exists.
        const known = this.knownMerchants.has(actor.merchantId)
          ? null
          : this.d.redis.sadd(shardMerchantsKey(this.d.names.redisPrefix, this.shard), actor.merchantId);
        const outcomes = await Promise.all(batch.map((e) => applyCommand(this.d.store, e.cmd, nowMs, this.applyOptions)));
        if (known) {
          await known;
          this.knownMerchants.add(actor.merchantId);
        }
        this.d.metrics.redisRoundTrips.inc();
        for (const o of outcomes) if (o.payment) this.holds.observe(actor.merchantId, o.payment);
        this.d.metrics.holdsOpen.labels(String(this.shard)).set(this.holds.size);
        await this.publishEvents(outcomes);
        for (let i = 0; i < batch.length; i++) this.complete(batch[i] as Envelope, outcomes[i] as Outcome);
        this.wakeIfDrained();
      }
    } catch (err) {
      this.failure ??= err;
      actor.mailbox.length = 0;
      this.wakeDrained?.();
      void this.messages?.close().catch(() => undefined);
    } finally {
      actor.running = false;
      if (actor.mailbox.length === 0) this.actors.delete(actor.merchantId);
      this.wakeIfDrained();
    }
  }

  private async publishEvents(outcomes: Outcome[]): Promise<void> {
    const stored: Promise<void>[] = [];
    for (const o of outcomes) {
      const first = o.events[0];
      if (first) stored.push(this.events.publish(o.events, first.cmd_id));
    }
    await Promise.all(stored);
  }

  private complete(e: Envelope, o: Outcome): void {
    const replyTo = e.replyTo;
    // A new channel payment is answered once its channel order is open (with its QR code or
    // redirect): the open publishes payment.channel_open carrying this reply subject. A new channel
    // refund is answered once the channel decides it, or pending after a short wait (ChannelWork).
    const later = this.channels ? this.channels.after(e.cmd, o, replyTo) === 'reply_later' : false;
    if (replyTo && !later) {
      if (e.batchReply) this.replies.send(e.batchReply.prefix, e.batchReply.token, o.reply);
      else this.d.nc.publish(replyTo, encode(o.reply));
    }
    const held = this.unacked.get(e.key);
    if (held) {
      this.heldCommands--;
      if (--held.left === 0) {
        if (e.key > 0) e.m.ack();
        this.unacked.delete(e.key);
      }
    }
    this.d.metrics.inflight.labels(String(this.shard)).set(this.heldCommands);
    this.d.metrics.commands.labels(e.cmd.type, o.reply.ok ? 'ok' : o.reply.code).inc();
    for (const ev of o.events) this.d.metrics.events.labels(ev.type).inc();
    // A catch-up copy was decided (and answered) before; its second decision is not a latency.
    if (e.key > 0) this.d.metrics.decisionDuration.labels(e.cmd.type).observe(Math.max(0, Date.now() - e.cmd.ts_ms) / 1000);
    observeRisk(this.d.metrics, o);
  }

  /** Publishes payment.expire for every hold past its deadline (bounded per look). */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.channels?.sweep();
    this.sweeping = true;
    try {
      const due = this.holds.takeDue(this.now(), EXPIRE_BATCH_MAX);
      await Promise.all(
        due.map((e) => {
          // Deterministic id: a second publish within the dedup window is dropped by JetStream,
          // and after it the script answers from its op record.
          const cmd_id = `exp_${e.paymentId}`;
          const cmd = { v: PROTOCOL_VERSION, type: 'payment.expire', cmd_id, merchant_id: e.merchantId, ts_ms: this.now(), payment_id: e.paymentId };
          return this.d.js.publish(this.d.names.cmdSubject(e.merchantId), encode(cmd), { msgID: cmd_id });
        }),
      );
      this.d.metrics.expiriesPublished.inc(due.length);
    } catch (err) {
      // Re-armed in the tracker: the next look after EXPIRE_RETRY_MS publishes again.
      this.d.log.warn({ shard: this.shard, err }, 'publishing expiries failed');
    } finally {
      this.sweeping = false;
    }
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeDrained = resolve;
      this.wakeIfDrained();
    });
  }

  private wakeIfDrained(): void {
    if (!this.wakeDrained) return;
    if (this.failure || this.stopped || this.unacked.size < this.d.inflightMax / 2) {
      const wake = this.wakeDrained;
      this.wakeDrained = null;
      wake();
    }
  }

  /** Wait until no actor is mid-batch (bounded by the Redis and NATS timeouts). */
  private async settleActors(): Promise<void> {
    for (let i = 0; i < 600 && [...this.actors.values()].some((a) => a.running); i++) await sleep(50);
    this.actors.clear();
  }

  private nakAll(): void {
    for (const [key, h] of this.unacked) if (key > 0) h.m.nak();
    this.unacked.clear();
    this.heldCommands = 0;
    this.d.metrics.inflight.labels(String(this.shard)).set(0);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
