// Replies to batched commands, coalesced per sender: every reply for one CommandClient decided in
// the same event-loop turn (across all shards of this engine) goes out as one core-NATS message on
// <prefix>.r, a ReplyBatch. One per process. Replies are not durable either way: a lost one is a
// 202 "processing" at the ingress, and the stored result answers the retry.
import type { NatsConnection } from '@nats-io/transport-node';
import { encode } from '../protocol/codec.ts';
import { PROTOCOL_VERSION } from '../protocol/commands.ts';
import { REPLY_BATCH_TOKEN, REPLIES_PER_MESSAGE_MAX, type Reply } from '../protocol/events.ts';

export class ReplyOut {
  private readonly nc: NatsConnection;
  private readonly queued = new Map<string, { tokens: string[]; replies: Reply[] }>();
  private scheduled = false;

  constructor(nc: NatsConnection) {
    this.nc = nc;
  }

  /** Queues the reply for `<prefix>.<token>`; sent at the end of this turn (or at once when the batch is full). */
  send(prefix: string, token: string, reply: Reply): void {
    let q = this.queued.get(prefix);
    if (!q) {
      q = { tokens: [], replies: [] };
      this.queued.set(prefix, q);
    }
    q.tokens.push(token);
    q.replies.push(reply);
    if (q.tokens.length >= REPLIES_PER_MESSAGE_MAX) {
      this.queued.delete(prefix);
      this.publish(prefix, q.tokens, q.replies);
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    for (const [prefix, q] of this.queued) this.publish(prefix, q.tokens, q.replies);
    this.queued.clear();
  }

  private publish(prefix: string, tokens: string[], replies: Reply[]): void {
    try {
      this.nc.publish(`${prefix}.${REPLY_BATCH_TOKEN}`, encode({ v: PROTOCOL_VERSION, tokens, replies }));
    } catch {
      // Closed connection: the senders answer 202 at their deadline (the commands are applied).
    }
  }
}
