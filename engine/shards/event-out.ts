// The events of a shard, coalesced: at most one event message of the shard waits for its PubAck;
// the events of every actor batch that finishes meanwhile go out together in the next message,
// when that PubAck arrives (or at the end of the event-loop turn when nothing is waiting). Idle, a
// command's events leave at once; under load one JetStream write carries many commands' events.
//
// The PubAck comes back on one subscription of this publisher (reply subject <inbox>.<token>)
// instead of through js.publish, which is a nats.js request with its own timer, promise race and
// Error object per message (the ceilings: 22.7k/s through js.publish, 85k/s with a shared inbox).
//
// A message none of whose events can notify (mayNotify: no webhook type, or no notify_url) goes to
// the shard's quiet subject (<ns>.evq.<shard>), the others to <ns>.evt.<shard>. Settlement reads
// both; the webhook dispatcher's consumer filters <ns>.evt.>, so nats-server never delivers it the
// quiet ones — most payments have no notify_url.
//
// Nats-Msg-Id is derived from the cmd_ids the message carries: a retried message is stored once.
// After a crash the same commands may be grouped differently and stored twice; every event has its
// own id, and the settlement consumer and the webhook dispatcher de-duplicate on it.
import { createHash } from 'node:crypto';
import { headers, nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { pubAckOf } from '../client/puback.ts';
import { encode } from '../protocol/codec.ts';
import { PROTOCOL_VERSION } from '../protocol/commands.ts';
import { EVENTS_PER_COMMAND_MAX, EVENTS_PER_MESSAGE_MAX, eventBatchMsgId, type EngineEvent } from '../protocol/events.ts';
import { mayNotify } from '../webhooks/payload.ts';

/** A message without its PubAck after this long fails the batches in it (the shard restarts and naks). */
export const EVENT_PUBACK_WAIT_MS = 10_000;

export class EventPublishError extends Error {
  override name = 'EventPublishError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isEventPublishError = (err: unknown): err is EventPublishError => err instanceof EventPublishError;

/** The events of one command. */
type Pending = { packed: Uint8Array[]; bytes: number; first: EngineEvent; cmdId: string; notify: boolean; resolve: () => void; reject: (err: Error) => void };

/** A message stays under this (nats-server's max_payload is 1 MiB); one command's events always fit one message. */
export const EVENT_MESSAGE_BYTES_MAX = 512 * 1024;

/**
 * An EventBatch in msgpack from events already packed one by one: a map of v, cmd_id, merchant_id
 * and events, the array written as its header and the events' bytes (so a message's size is known
 * before it is built, and nothing is packed twice). Decodes as any EventBatch.
 */
export function packEventBatch(first: EngineEvent, packed: readonly Uint8Array[], bytes: number): Uint8Array {
  const head = [encode('v'), encode(PROTOCOL_VERSION), encode('cmd_id'), encode(first.cmd_id), encode('merchant_id'), encode(first.merchant_id), encode('events')];
  const headBytes = head.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(1 + headBytes + 3 + bytes);
  let at = 0;
  out[at++] = 0x84; // fixmap, 4 entries
  for (const b of head) {
    out.set(b, at);
    at += b.length;
  }
  if (packed.length > 0xffff) throw new Error('assertion: too many events for one array16');
  out[at++] = 0xdc; // array16
  out[at++] = packed.length >> 8;
  out[at++] = packed.length & 0xff;
  for (const b of packed) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
type InFlight = { token: string; parts: Pending[]; timer: NodeJS.Timeout };

/** Message id of the events of these commands: the single-command id, else a digest of all of them. */
export function eventMessageId(cmdIds: readonly string[]): string {
  if (cmdIds.length === 1) return eventBatchMsgId(cmdIds[0] as string);
  return `evm_${createHash('sha256').update(cmdIds.join('\n')).digest('base64url')}`;
}

export class EventPublisher {
  private readonly nc: NatsConnection;
  private readonly subject: string;
  private readonly quietSubject: string;
  private readonly inbox: string;
  private sub: Subscription | null = null;
  private queued: Pending[] = [];
  private inFlight: InFlight | null = null;
  private scheduled = false;
  private counter = 0;

  /** `subject` for messages that may notify, `quietSubject` for the others (same stream). */
  constructor(nc: NatsConnection, subjects: { subject: string; quietSubject: string }, inboxPrefix: string) {
    this.nc = nc;
    this.subject = subjects.subject;
    this.quietSubject = subjects.quietSubject;
    this.inbox = `${inboxPrefix}.${nuid.next()}`;
  }

  start(): void {
    this.sub = this.nc.subscribe(`${this.inbox}.*`, { callback: (err, msg) => { if (!err) this.onAck(msg); } });
  }

  /** Fails everything queued or in flight (their commands are nak'ed by the runner). */
  stop(): void {
    this.sub?.unsubscribe();
    this.sub = null;
    const err = new EventPublishError('event publisher stopped');
    if (this.inFlight) {
      clearTimeout(this.inFlight.timer);
      for (const p of this.inFlight.parts) p.reject(err);
      this.inFlight = null;
    }
    for (const p of this.queued) p.reject(err);
    this.queued = [];
  }

  /**
   * Resolves once JetStream stored the events of this command. Calls in command order give
   * messages in that order: a shard's events are stored as its commands were applied.
   */
  publish(events: EngineEvent[], cmdId: string): Promise<void> {
    if (!this.sub) return Promise.reject(new EventPublishError('event publisher not started'));
    if (events.length === 0) return Promise.resolve();
    if (events.length > EVENTS_PER_COMMAND_MAX) throw new Error(`assertion: ${events.length} events of one command`);
    return new Promise<void>((resolve, reject) => {
      const packed = events.map((e) => encode(e));
      this.queued.push({ packed, bytes: packed.reduce((n, b) => n + b.length, 0), first: events[0] as EngineEvent, cmdId, notify: mayNotify(events), resolve, reject });
      if (this.inFlight === null && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          if (this.inFlight === null) this.flush();
        });
      }
    });
  }

  private flush(): void {
    if (this.queued.length === 0 || !this.sub) return;
    const parts: Pending[] = [];
    const packed: Uint8Array[] = [];
    const cmdIds: string[] = [];
    let bytes = 0;
    while (this.queued.length > 0) {
      const next = this.queued[0] as Pending;
      const full = packed.length + next.packed.length > EVENTS_PER_MESSAGE_MAX || bytes + next.bytes > EVENT_MESSAGE_BYTES_MAX;
      if (parts.length > 0 && full) break;
      this.queued.shift();
      parts.push(next);
      for (const b of next.packed) packed.push(b);
      bytes += next.bytes;
      cmdIds.push(next.cmdId);
    }
    const data = packEventBatch((parts[0] as Pending).first, packed, bytes);
    const token = String(++this.counter);
    const h = headers();
    h.set('Nats-Msg-Id', eventMessageId(cmdIds));
    const timer = setTimeout(() => this.fail(token, new EventPublishError(`no PubAck for events within ${EVENT_PUBACK_WAIT_MS} ms`)), EVENT_PUBACK_WAIT_MS);
    this.inFlight = { token, parts, timer };
    try {
      this.nc.publish(parts.some((p) => p.notify) ? this.subject : this.quietSubject, data, { reply: `${this.inbox}.${token}`, headers: h });
    } catch (cause) {
      this.fail(token, new EventPublishError('could not publish events', { cause }));
    }
  }

  private onAck(msg: Msg): void {
    const token = msg.subject.slice(this.inbox.length + 1);
    if (this.inFlight?.token !== token) return; // late answer to a message already failed
    const ack = pubAckOf(msg);
    if (!ack.ok) return this.fail(token, new EventPublishError(`JetStream did not store the events: ${ack.why}`));
    const done = this.inFlight;
    clearTimeout(done.timer);
    this.inFlight = null;
    for (const p of done.parts) p.resolve();
    this.flush();
  }

  private fail(token: string, err: EventPublishError): void {
    if (this.inFlight?.token !== token) return;
    const failed = this.inFlight;
    clearTimeout(failed.timer);
    this.inFlight = null;
    for (const p of failed.parts) p.reject(err);
    this.flush();
  }
}
