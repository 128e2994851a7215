// One shard: a durable pull consumer on <ns>.cmd.<shard>.> and the per-merchant actors fed by it.
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
import type { JetStreamClient, JsMsg, ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { decodeCommand, encode } from '../protocol/codec.ts';
import type { Command } from '../protocol/commands.ts';
import { PROTOCOL_VERSION } from '../protocol/commands.ts';
import { REPLY_HEADER } from '../protocol/headers.ts';
import type { Names } from '../protocol/subjects.ts';
import type { MoneyStore } from '../redis/store.ts';
import type { EngineMetrics } from '../metrics.ts';
import { applyCommand } from './apply.ts';
import type { Outcome } from './outcome.ts';

export type RunnerDeps = {
  nc: NatsConnection;
  js: JetStreamClient;
  store: MoneyStore;
  names: Names;
  log: Logger;
  metrics: EngineMetrics;
  batchMax: number;
  inflightMax: number;
  /** Clock for hold deadlines; tests pass their own. */
  now?: () => number;
};

type Envelope = { m: JsMsg; cmd: Command };
type Actor = { merchantId: string; mailbox: Envelope[]; running: boolean };

const BACKOFF_MS_MAX = 5_000;

export class ShardRunner {
  readonly shard: number;
  private readonly d: RunnerDeps;
  private readonly actors = new Map<string, Actor>();
  /** Every message received and not yet acked or nak'ed, by stream sequence (insertion = stream order). */
  private readonly unacked = new Map<number, JsMsg>();
  private messages: ConsumerMessages | null = null;
  private stopped = false;
  private failure: unknown = null;
  private wakeDrained: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private readonly now: () => number;

  constructor(shard: number, deps: RunnerDeps) {
    this.shard = shard;
    this.d = deps;
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    if (this.loop) throw new Error('assertion: runner started twice');
    this.loop = this.run();
  }

  /** Stop pulling, let running batches finish, nak the rest (redelivered to the next owner). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.messages?.close().catch(() => undefined);
    this.wakeDrained?.();
    await this.loop;
    await this.settleActors();
    this.nakAll();
  }

  get inflight(): number {
    return this.unacked.size;
  }

  private async run(): Promise<void> {
    let backoffMs = 100;
    while (!this.stopped) {
      try {
        const consumer = await this.d.js.consumers.get(this.d.names.cmdStream, this.d.names.shardConsumer(this.shard));
        this.messages = await consumer.consume({ max_messages: Math.min(this.d.batchMax * 2, this.d.inflightMax) });
        for await (const m of this.messages) {
          this.receive(m);
          if (this.failure) break;
          if (this.unacked.size >= this.d.inflightMax) await this.drained();
          if (this.failure || this.stopped) break;
          backoffMs = 100;
        }
      } catch (err) {
        this.failure ??= err;
      }
      if (this.stopped) break;
      // The consume loop ends on failure or when the server side went away: restart cleanly.
      await this.messages?.close().catch(() => undefined);
      await this.settleActors();
      if (this.failure) {
        this.d.metrics.shardFailures.inc();
        this.d.log.error({ shard: this.shard, err: this.failure }, 'shard failed; nak and restart');
      }
      this.nakAll();
      this.failure = null;
      await sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, BACKOFF_MS_MAX);
    }
  }

  private receive(m: JsMsg): void {
    let cmd: Command;
    try {
      cmd = decodeCommand(m.data);
    } catch (err) {
      // Poison: it can never succeed, so it must not block the shard. Terminate and answer.
      this.d.metrics.rejected.inc();
      this.d.log.warn({ shard: this.shard, seq: m.seq, err: (err as Error).message }, 'undecodable command terminated');
      m.term();
      const replyTo = m.headers?.get(REPLY_HEADER);
      if (replyTo) {
        this.d.nc.publish(replyTo, encode({
          v: PROTOCOL_VERSION, cmd_id: 'unknown', ok: false, replayed: false, code: 'command.invalid', message: 'undecodable command', payment_id: null,
        }));
      }
      return;
    }
    this.unacked.set(m.seq, m);
    this.d.metrics.inflight.labels(String(this.shard)).set(this.unacked.size);
    let actor = this.actors.get(cmd.merchant_id);
    if (!actor) {
      actor = { merchantId: cmd.merchant_id, mailbox: [], running: false };
      this.actors.set(cmd.merchant_id, actor);
    }
    actor.mailbox.push({ m, cmd });
    if (!actor.running) void this.drain(actor);
  }

  private async drain(actor: Actor): Promise<void> {
    actor.running = true;
    try {
      while (actor.mailbox.length > 0 && !this.failure) {
        const batch = actor.mailbox.splice(0, this.d.batchMax);
        this.d.metrics.batchSize.observe(batch.length);
        const nowMs = this.now();
        // Issued in one synchronous loop: one write to Redis, applied there in this order.
        const outcomes = await Promise.all(batch.map((e) => applyCommand(this.d.store, e.cmd, nowMs)));
        await this.publishEvents(outcomes);
        for (let i = 0; i < batch.length; i++) this.complete(batch[i] as Envelope, outcomes[i] as Outcome);
      }
    } catch (err) {
      this.failure ??= err;
      actor.mailbox.length = 0;
      void this.messages?.close().catch(() => undefined);
    } finally {
      actor.running = false;
      if (actor.mailbox.length === 0) this.actors.delete(actor.merchantId);
      this.wakeIfDrained();
    }
  }

  private async publishEvents(outcomes: Outcome[]): Promise<void> {
    const acks: Promise<unknown>[] = [];
    for (const o of outcomes) {
      for (const ev of o.events) {
        acks.push(this.d.js.publish(this.d.names.evtSubject(ev.merchant_id), encode(ev), { msgID: ev.id }));
      }
    }
    await Promise.all(acks);
  }

  private complete(e: Envelope, o: Outcome): void {
    const replyTo = e.m.headers?.get(REPLY_HEADER);
    if (replyTo) this.d.nc.publish(replyTo, encode(o.reply));
    e.m.ack();
    this.unacked.delete(e.m.seq);
    this.d.metrics.inflight.labels(String(this.shard)).set(this.unacked.size);
    this.d.metrics.commands.labels(e.cmd.type, o.reply.ok ? 'ok' : o.reply.code).inc();
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
    for (const m of this.unacked.values()) m.nak();
    this.unacked.clear();
    this.d.metrics.inflight.labels(String(this.shard)).set(0);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
