// Publishes commands to the engine and waits for its reply: used by the ingress, the operator CLI
// and the benchmarks. The command goes to JetStream (durable, deduplicated on cmd_id); the reply
// comes back on core NATS to one wildcard subscription per client, so waiting costs no extra
// subscription per request. A missing reply is not an error of the command: the engine will still
// apply it, and the caller answers "processing" (202).
import { headers, nuid, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import { decodeReply, encode } from '../protocol/codec.ts';
import type { Command } from '../protocol/commands.ts';
import type { Reply } from '../protocol/events.ts';
import { REPLY_HEADER } from '../protocol/headers.ts';
import type { Names } from '../protocol/subjects.ts';

export class EngineUnavailableError extends Error {
  override name = 'EngineUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isEngineUnavailableError = (err: unknown): err is EngineUnavailableError => err instanceof EngineUnavailableError;

export type SendResult = { kind: 'reply'; reply: Reply } | { kind: 'timeout' };

/** Bounded: at most this many requests wait for a reply at once; past it, callers get 503. */
export const WAITING_MAX = 50_000;

type Waiter = { resolve: (r: SendResult) => void; timer: NodeJS.Timeout };

export class CommandClient {
  private readonly nc: NatsConnection;
  private readonly js: JetStreamClient;
  private readonly names: Names;
  private readonly prefix: string;
  private readonly waiting = new Map<string, Waiter>();
  private sub: Subscription | null = null;
  private counter = 0;

  constructor(nc: NatsConnection, js: JetStreamClient, names: Names) {
    this.nc = nc;
    this.js = js;
    this.names = names;
    this.prefix = `${names.replyPrefix}.${nuid.next()}`;
  }

  start(): void {
    this.sub = this.nc.subscribe(`${this.prefix}.*`, {
      callback: (err, msg) => {
        if (err) return;
        const token = msg.subject.slice(this.prefix.length + 1);
        const w = this.waiting.get(token);
        if (!w) return; // the caller gave up (timeout); the result is stored by the engine anyway
        this.waiting.delete(token);
        clearTimeout(w.timer);
        try {
          w.resolve({ kind: 'reply', reply: decodeReply(msg.data) });
        } catch {
          w.resolve({ kind: 'timeout' });
        }
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.resolve({ kind: 'timeout' });
    }
    this.waiting.clear();
  }

  /** Publish durably, then wait up to timeoutMs for the engine's reply. */
  async send(cmd: Command, timeoutMs: number): Promise<SendResult> {
    if (!this.sub) throw new Error('assertion: CommandClient not started');
    if (this.waiting.size >= WAITING_MAX) throw new EngineUnavailableError('too many requests waiting for the engine');
    const token = String(++this.counter);
    const h = headers();
    h.set(REPLY_HEADER, `${this.prefix}.${token}`);
    const result = new Promise<SendResult>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(token);
        resolve({ kind: 'timeout' });
      }, timeoutMs);
      this.waiting.set(token, { resolve, timer });
    });
    try {
      await this.js.publish(this.names.cmdSubject(cmd.merchant_id), encode(cmd), {
        msgID: cmd.cmd_id,
        headers: h,
        timeout: Math.max(100, timeoutMs),
      });
    } catch (cause) {
      const w = this.waiting.get(token);
      if (w) {
        clearTimeout(w.timer);
        this.waiting.delete(token);
      }
      throw new EngineUnavailableError('could not publish the command to JetStream', { cause });
    }
    return result;
  }
}
