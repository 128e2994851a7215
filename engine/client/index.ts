// Publishes commands to the engine and waits for its reply: used by the ingress, the operator CLI
// and the benchmarks. The command goes to JetStream (durable, deduplicated on cmd_id); the reply
// comes back on core NATS to one wildcard subscription per client, so waiting costs no extra
// subscription per request. A missing reply is not an error of the command: the engine will still
// apply it, and the caller answers "processing" (202).
//
// The JetStream PubAck comes back on that same subscription too (the publish names
// <prefix>.a<token> as its reply subject), instead of through js.publish(): each js.publish is a
// nats.js request with its own timer, promise race and error objects, which made it one of the
// largest costs of the ingress (bench:http; the ceilings measure 22.7k publishes/s through
// js.publish against 85k/s with one shared ack inbox).
//
// Commands to one shard are coalesced: at most one message per shard waits for its PubAck; what is
// sent meanwhile goes out together, as one CommandBatch, when that PubAck arrives (or at the end of
// the event-loop turn when nothing is waiting). Idle, a command leaves at once; under load, one
// JetStream write, delivery and ack carry many commands — no timer, no fixed linger.
//
// Backlog: when the engine's last decisions on a shard came `backlogLagMs` or more after their
// PubAck, the engine is behind on that shard, and a new command would most likely wait out the
// caller's whole deadline. Such a command is answered "processing" (202) as soon as JetStream has
// stored it: the excess of a spike waits in JetStream, not in open HTTP connections. One command
// per shard stays watched (the probe) so that the client sees when the engine has caught up.
//
// Front door: while the ingress itself falls behind its connections (frontDoorBehind(), from its
// load reports: connections piling up in its accept queue), every command is answered "processing"
// as soon as JetStream has stored it, and those already stored and waiting are answered at once. An
// HTTP request held open for a decision keeps its connection busy, so a client with more to send
// opens another, and the accept queue grows: in the benchmark's 10× spike the requests of its first
// seconds waited out their 2-s deadline while thousands of new connections queued behind them
// (docs/BENCHMARKS.md, session 19).
import { headers, nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import { decodeReply, decodeReplyBatch, encode } from '../protocol/codec.ts';
import type { Command } from '../protocol/commands.ts';
import { REPLY_BATCH_TOKEN, type Reply } from '../protocol/events.ts';
import { BATCH_HEADER, REPLY_HEADER } from '../protocol/headers.ts';
import { pubAckOf, type PubAckResult } from './puback.ts';
import { COMMANDS_PER_MESSAGE_MAX, PROTOCOL_VERSION } from '../protocol/commands.ts';
import type { Names } from '../protocol/subjects.ts';

export class EngineUnavailableError extends Error {
  override name = 'EngineUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isEngineUnavailableError = (err: unknown): err is EngineUnavailableError => err instanceof EngineUnavailableError;

/**
 * duplicate: JetStream already held this cmd_id (only with `returnDuplicate`): the command is
 * stored and will be (or was) applied, but its reply went to whoever sent it first.
 */
export type SendResult = { kind: 'reply'; reply: Reply } | { kind: 'timeout'; backlog?: true; frontDoor?: true } | { kind: 'duplicate' };

/** Bounded: at most this many requests wait for a reply at once; past it, callers get 503. */
export const WAITING_MAX = 50_000;
/** The PubAck may take this long at least, even when the caller's deadline is shorter. */
export const PUBACK_WAIT_MS_MIN = 100;
/** JetStream's de-duplication header: the stream stores a cmd_id once within its duplicate window. */
const MSG_ID_HEADER = 'Nats-Msg-Id';
/** Reply subjects of PubAcks are <prefix>.a<token>; of engine replies <prefix>.<token>. */
const ACK_MARK = 'a';

/** A shard's PubAck slot is given up after this long without an answer (the waiters have their own deadlines). */
export const BATCH_ACK_WAIT_MS = 2_000;
/** A batch without a PubAck is forgotten after this long: past the longest caller deadline (30 s). */
const BATCH_FORGET_MS = 35_000;
/** A probe (a command answered early, still watched for its reply) is replaced after this long. */
const PROBE_FORGET_MS = 35_000;
/** At most this many shards' lag records are kept (shard subjects are bounded by the shard count). */
const LAG_RECORDS_MAX = 4_096;

/**
 * How far behind the engine was on one shard, as this client last saw it (at `seenAtMs`): the time
 * from a command's PubAck to its reply, or at least to its deadline when none came. `probe`: the
 * token of a command answered early, still watched.
 */
type ShardLag = { lagMs: number; seenAtMs: number; probe: string | null; probeAtMs: number };

/** Commands waiting for their shard's slot, and whether a message of that shard awaits its PubAck. */
type ShardQueue = { subject: string; queued: Array<{ token: string; cmd: Command }>; inFlight: string | null; timer: NodeJS.Timeout | null };


type Waiter = {
  resolve: (r: SendResult) => void;
  reject: (err: EngineUnavailableError) => void;
  /** Fires at the caller's deadline: timeout (202) once JetStream has the command, 503 before. */
  timer: NodeJS.Timeout;
  /** Fires at the PubAck deadline when that is later than the caller's. */
  ackTimer: NodeJS.Timeout | null;
  acked: boolean;
  /** Handed to NATS (alone or in a batch); before that, failing it removes it from its queue. */
  published: boolean;
  deadlinePassed: boolean;
  returnDuplicate: boolean;
  /** The shard subject (batched sends only), and when JetStream stored the command (0: not yet). */
  subject: string | null;
  ackedAtMs: number;
  waitThroughBacklog: boolean;
};

export class CommandClient {
  private readonly nc: NatsConnection;
  private readonly names: Names;
  private readonly prefix: string;
  private readonly waiting = new Map<string, Waiter>();
  private sub: Subscription | null = null;
  private counter = 0;
  private readonly shards = new Map<string, ShardQueue>();
  /** Batches awaiting their PubAck: batch token → its shard queue and the tokens of its commands. */
  private readonly batches = new Map<string, { q: ShardQueue; tokens: string[] }>();
  private flushScheduled = false;
  /** Per shard subject: the engine's lag as last seen (see "Backlog" above). */
  private readonly lags = new Map<string, ShardLag>();
  /** Probe token → its shard subject. */
  private readonly probes = new Map<string, string>();
  private readonly backlogLagMs: number;
  /** Until when (performance.now()) the front door is behind: answer at the PubAck. */
  private frontDoorBehindUntilMs = 0;

  /** `_js` is no longer used (PubAcks arrive on the client's own subscription); kept so callers need not change. */
  private readonly batchAckWaitMs: number;

  /**
   * `opts.batchAckWaitMs`: how long a shard's slot waits for a PubAck (tests shorten it).
   * `opts.backlogLagMs`: answer "processing" at the PubAck once the engine's decisions on the shard
   * lag this much behind their PubAcks (0 or absent: never; always wait for the deadline).
   */
  constructor(nc: NatsConnection, _js: JetStreamClient | null, names: Names, opts: { batchAckWaitMs?: number; backlogLagMs?: number } = {}) {
    this.batchAckWaitMs = opts.batchAckWaitMs ?? BATCH_ACK_WAIT_MS;
    this.backlogLagMs = opts.backlogLagMs ?? 0;
    if (!(Number.isInteger(this.backlogLagMs) && this.backlogLagMs >= 0)) throw new Error('assertion: backlogLagMs must be an integer >= 0');
    this.nc = nc;
    this.names = names;
    this.prefix = `${names.replyPrefix}.${nuid.next()}`;
  }

  start(): void {
    this.sub = this.nc.subscribe(`${this.prefix}.*`, {
      callback: (err, msg) => {
        if (err) return;
        const token = msg.subject.slice(this.prefix.length + 1);
        if (token === REPLY_BATCH_TOKEN) this.onReplyBatch(msg);
        else if (token.startsWith(ACK_MARK)) this.onAck(token.slice(ACK_MARK.length), msg);
        else this.onReply(token, msg);
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
    for (const q of this.shards.values()) if (q.timer) clearTimeout(q.timer);
    this.shards.clear();
    this.batches.clear();
    this.lags.clear();
    this.probes.clear();
    for (const w of this.waiting.values()) this.settle(w, { kind: 'timeout' });
    this.waiting.clear();
  }

  /**
   * Publish durably, then wait up to timeoutMs for the engine's reply. With `returnDuplicate` the
   * command goes alone with its cmd_id as Nats-Msg-Id, so JetStream says whether it already had it.
   * With `waitThroughBacklog` the caller waits for the decision (up to timeoutMs) even while the
   * shard lags: for callers that need the reply (the operator CLI), not for HTTP requests.
   */
  async send(cmd: Command, timeoutMs: number, opts: { returnDuplicate?: boolean; waitThroughBacklog?: boolean } = {}): Promise<SendResult> {
    if (!this.sub) throw new Error('assertion: CommandClient not started');
    if (this.waiting.size >= WAITING_MAX) throw new EngineUnavailableError('too many requests waiting for the engine');
    const token = String(++this.counter);
    const returnDuplicate = opts.returnDuplicate ?? false;
    const subject = this.names.cmdSubject(cmd.merchant_id);
    const result = new Promise<SendResult>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: setTimeout(() => this.onDeadline(token), timeoutMs), ackTimer: null, acked: false, published: false, deadlinePassed: false, returnDuplicate,
        subject: returnDuplicate ? null : subject, ackedAtMs: 0, waitThroughBacklog: opts.waitThroughBacklog ?? false };
      if (timeoutMs < PUBACK_WAIT_MS_MIN) w.ackTimer = setTimeout(() => this.onAckDeadline(token), PUBACK_WAIT_MS_MIN);
      this.waiting.set(token, w);
    });
    if (returnDuplicate) {
      const h = headers();
      h.set(REPLY_HEADER, `${this.prefix}.${token}`);
      h.set(MSG_ID_HEADER, cmd.cmd_id);
      (this.waiting.get(token) as Waiter).published = true;
      try {
        this.nc.publish(subject, encode(cmd), { reply: `${this.prefix}.${ACK_MARK}${token}`, headers: h });
      } catch (cause) {
        this.fail(token, new EngineUnavailableError('could not publish the command to JetStream', { cause }));
      }
      return result;
    }
    let q = this.shards.get(subject);
    if (!q) {
      q = { subject, queued: [], inFlight: null, timer: null };
      this.shards.set(subject, q);
    }
    q.queued.push({ token, cmd });
    if (q.inFlight === null && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushIdle());
    }
    return result;
  }

  /** End of the event-loop turn: every shard with commands and no message in flight sends them. */
  private flushIdle(): void {
    this.flushScheduled = false;
    for (const q of this.shards.values()) if (q.inFlight === null) this.flush(q);
  }

  /** Sends up to COMMANDS_PER_MESSAGE_MAX queued commands of a shard as one message. */
  private flush(q: ShardQueue): void {
    // Commands whose caller already gave up (deadline, 503) are not sent: nothing half-done.
    const take: Array<{ token: string; cmd: Command }> = [];
    while (take.length < COMMANDS_PER_MESSAGE_MAX && q.queued.length > 0) {
      const next = q.queued.shift() as { token: string; cmd: Command };
      if (this.waiting.has(next.token)) take.push(next);
    }
    if (take.length === 0) {
      if (q.queued.length === 0 && q.inFlight === null) this.shards.delete(q.subject);
      return;
    }
    const batchToken = `b${++this.counter}`;
    const tokens = take.map((t) => t.token);
    for (const t of tokens) (this.waiting.get(t) as Waiter).published = true;
    const h = headers();
    h.set(REPLY_HEADER, this.prefix);
    h.set(BATCH_HEADER, String(take.length));
    q.inFlight = batchToken;
    this.batches.set(batchToken, { q, tokens });
    q.timer = setTimeout(() => this.onBatchAckWait(q, batchToken), this.batchAckWaitMs);
    try {
      this.nc.publish(q.subject, encode({ v: PROTOCOL_VERSION, cmds: take.map((t) => t.cmd), replies: tokens }), {
        reply: `${this.prefix}.${ACK_MARK}${batchToken}`,
        headers: h,
      });
    } catch (cause) {
      this.batches.delete(batchToken);
      for (const t of tokens) this.fail(t, new EngineUnavailableError('could not publish the command to JetStream', { cause }));
      this.release(q, batchToken);
    }
  }

  /** The shard's slot is free again (PubAck, failure or its wait passed): send what queued up. */
  private release(q: ShardQueue, batchToken: string): void {
    if (q.inFlight !== batchToken) return;
    if (q.timer) clearTimeout(q.timer);
    q.timer = null;
    q.inFlight = null;
    this.flush(q);
  }

  /**
   * No PubAck within BATCH_ACK_WAIT_MS: the shard's next commands go on, but a late PubAck still
   * tells this batch's waiters that JetStream has their commands (202, not 503) until the longest
   * deadline a caller can set has passed; then the batch is forgotten (bounded).
   */
  private onBatchAckWait(q: ShardQueue, batchToken: string): void {
    this.release(q, batchToken);
    setTimeout(() => this.batches.delete(batchToken), BATCH_FORGET_MS).unref();
  }

  private onReply(token: string, msg: Msg): void {
    const w = this.waiting.get(token);
    if (!w) {
      this.onProbeReply(token);
      return; // the caller gave up (timeout); the result is stored by the engine anyway
    }
    this.waiting.delete(token);
    this.observeLag(w);
    let r: SendResult;
    try {
      r = { kind: 'reply', reply: decodeReply(msg.data) };
    } catch {
      r = { kind: 'timeout' };
    }
    this.settle(w, r);
  }

  private onReplyBatch(msg: Msg): void {
    let entries: ReturnType<typeof decodeReplyBatch>;
    try {
      entries = decodeReplyBatch(msg.data);
    } catch {
      return; // unreadable: its senders answer "processing" at their deadlines
    }
    for (const { token, reply } of entries) {
      const w = this.waiting.get(token);
      if (!w) {
        this.onProbeReply(token);
        continue;
      }
      this.waiting.delete(token);
      this.observeLag(w);
      this.settle(w, reply ? { kind: 'reply', reply } : { kind: 'timeout' });
    }
  }

  private onAck(token: string, msg: Msg): void {
    const ack = pubAckOf(msg);
    const batch = this.batches.get(token);
    if (batch) {
      this.batches.delete(token);
      for (const t of batch.tokens) this.onCommandAck(t, ack);
      this.release(batch.q, token);
      return;
    }
    this.onCommandAck(token, ack);
  }

  private onCommandAck(token: string, ack: PubAckResult): void {
    const w = this.waiting.get(token);
    if (!w) return; // already answered by the engine, which implies JetStream had stored it
    if (!ack.ok) {
      this.fail(token, new EngineUnavailableError(`JetStream did not store the command: ${ack.why}`));
      return;
    }
    w.acked = true;
    w.ackedAtMs = performance.now();
    if (w.ackTimer) clearTimeout(w.ackTimer);
    w.ackTimer = null;
    // A duplicate is never delivered again, so no reply will come to this sender: say so now.
    if (ack.duplicate && w.returnDuplicate) {
      this.waiting.delete(token);
      this.settle(w, { kind: 'duplicate' });
      return;
    }
    // Stored, and the caller's deadline is already past: answer "processing" now.
    if (w.deadlinePassed) {
      this.waiting.delete(token);
      this.settle(w, { kind: 'timeout' });
      return;
    }
    // Stored, and the front door is falling behind: answer "processing" now, free the connection.
    if (this.answersAtPubAck(w, w.ackedAtMs)) {
      this.waiting.delete(token);
      this.settle(w, { kind: 'timeout', frontDoor: true });
      return;
    }
    // Stored, and the engine is far behind on this shard: answer "processing" now too.
    const lag = w.subject === null || this.backlogLagMs === 0 || w.waitThroughBacklog ? undefined : this.lags.get(w.subject);
    if (lag && this.lagging(lag, w.ackedAtMs)) {
      this.waiting.delete(token);
      if (lag.probe === null || w.ackedAtMs - lag.probeAtMs > PROBE_FORGET_MS) {
        if (lag.probe !== null) this.probes.delete(lag.probe);
        lag.probe = token;
        lag.probeAtMs = w.ackedAtMs;
        this.probes.set(token, w.subject as string);
      }
      this.settle(w, { kind: 'timeout', backlog: true });
    }
  }

  /** A batched command of an HTTP caller while the front door is behind. */
  private answersAtPubAck(w: Waiter, nowMs: number): boolean {
    return nowMs < this.frontDoorBehindUntilMs && w.subject !== null && !w.waitThroughBacklog;
  }

  /**
   * The ingress is falling behind its connections: for the next `forMs`, commands are answered
   * "processing" once JetStream has stored them; those stored and waiting now are answered at once.
   */
  frontDoorBehind(forMs: number): void {
    if (!(Number.isFinite(forMs) && forMs >= 0)) throw new Error('assertion: frontDoorBehind takes a duration in ms');
    const nowMs = performance.now();
    const entering = nowMs >= this.frontDoorBehindUntilMs;
    this.frontDoorBehindUntilMs = Math.max(this.frontDoorBehindUntilMs, nowMs + forMs);
    if (!entering) return;
    for (const [token, w] of this.waiting) {
      if (!w.acked || !this.answersAtPubAck(w, nowMs)) continue;
      this.waiting.delete(token);
      this.settle(w, { kind: 'timeout', frontDoor: true });
    }
  }

  /**
   * Lagging: the last sight said so, and it still holds — a probe is out (the engine has not
   * answered it yet), or the sight is younger than the setting. Under a backlog a probe is nearly
   * always out; after a quiet spell the next command waits and looks afresh.
   */
  private lagging(lag: ShardLag, nowMs: number): boolean {
    if (lag.lagMs < this.backlogLagMs) return false;
    return lag.probe !== null || nowMs - lag.seenAtMs <= this.backlogLagMs;
  }

  /** A sight of the engine's lag on a shard: remembered while at or above the setting. */
  private observe(subject: string, lagMs: number): void {
    const now = performance.now();
    const lag = this.lags.get(subject);
    if (lag) {
      lag.lagMs = lagMs;
      lag.seenAtMs = now;
      if (lagMs < this.backlogLagMs && lag.probe === null) this.lags.delete(subject); // caught up
      return;
    }
    if (lagMs < this.backlogLagMs || this.lags.size >= LAG_RECORDS_MAX) return; // nothing to remember
    this.lags.set(subject, { lagMs, seenAtMs: now, probe: null, probeAtMs: 0 });
  }

  /** A reply to a waiting command: how long after its PubAck the engine decided on its shard. */
  private observeLag(w: Waiter): void {
    if (w.subject === null || this.backlogLagMs === 0) return;
    this.observe(w.subject, w.ackedAtMs === 0 ? 0 : performance.now() - w.ackedAtMs);
  }

  /** The reply to a probe: the engine's current lag on that shard. */
  private onProbeReply(token: string): void {
    const subject = this.probes.get(token);
    if (subject === undefined) return;
    this.probes.delete(token);
    const lag = this.lags.get(subject);
    if (!lag || lag.probe !== token) return;
    lag.probe = null;
    this.observe(subject, performance.now() - lag.probeAtMs);
  }

  private onDeadline(token: string): void {
    const w = this.waiting.get(token);
    if (!w) return;
    w.deadlinePassed = true;
    if (w.acked) {
      this.waiting.delete(token);
      // No decision by the deadline: the engine lags at least this much on the shard.
      if (w.subject !== null && this.backlogLagMs > 0) this.observe(w.subject, performance.now() - w.ackedAtMs);
      this.settle(w, { kind: 'timeout' });
    } else if (!w.published || !w.ackTimer) {
      this.fail(token, new EngineUnavailableError('JetStream did not acknowledge the command in time'));
    }
    // else: the PubAck may still come until PUBACK_WAIT_MS_MIN (onAckDeadline).
  }

  private onAckDeadline(token: string): void {
    const w = this.waiting.get(token);
    if (!w) return;
    w.ackTimer = null;
    if (!w.acked) this.fail(token, new EngineUnavailableError('JetStream did not acknowledge the command in time'));
  }

  private fail(token: string, err: EngineUnavailableError): void {
    const w = this.waiting.get(token);
    if (!w) return;
    this.waiting.delete(token);
    clearTimeout(w.timer);
    if (w.ackTimer) clearTimeout(w.ackTimer);
    w.reject(err);
  }

  private settle(w: Waiter, r: SendResult): void {
    clearTimeout(w.timer);
    if (w.ackTimer) clearTimeout(w.ackTimer);
    w.resolve(r);
  }
}
