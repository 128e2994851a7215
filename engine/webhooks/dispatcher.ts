// The dispatcher: reads the event messages that may notify (<ns>.evt.>; the quiet ones on <ns>.evq.>
// never reach it) with its own durable consumer and turns every payment or
// refund transition of a payment with a notify_url into one delivery job on <NS>_WEBHOOKS
// (Nats-Msg-Id = whk_<event id>, so a re-read event queues nothing twice within the duplicate
// window). An event message is acknowledged only after JetStream stored all its jobs: a crash in
// between re-reads it, never loses it. The actors never wait for any of this: the engine only
// publishes events, as before.
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { decodeEventBatch } from '../protocol/codec.ts';
import { PROTOCOL_VERSION } from '../protocol/commands.ts';
import type { Names } from '../protocol/subjects.ts';
import { withCommandState } from '../protocol/command-state.ts';
import { lingeringFlush } from '../lingering-flush.ts';
import { encodeJob, jobMsgId, webhookOf, type WebhookJob } from './payload.ts';

/** Event messages read per pull and handled together (their jobs published at once). */
export const DISPATCH_BATCH_MAX = 256;
/**
 * A batch that is not full is handled this long after its first message. (It used to be handled
 * when `getPending()` said nothing more was buffered; that count includes nats.js's own queued
 * callbacks, so it could stay above 1 and leave a batch, and its webhooks, waiting for the next
 * message or the 30 s ack wait. The settlement consumer had that stall measured; it uses the same linger.)
 */
export const DISPATCH_LINGER_MS = 20;
const BACKOFF_MS_MIN = 100;
const BACKOFF_MS_MAX = 5_000;

/** The jobs of one event message (pure). A message that does not decode is the caller's to terminate. */
export function jobsOf(data: Uint8Array, nowMs: number): WebhookJob[] {
  const batch = decodeEventBatch(data);
  const jobs: WebhookJob[] = [];
  // A command's events are always in one message (engine/shards/event-out.ts), its last with the state.
  for (const event of withCommandState(batch.events)) {
    const w = webhookOf(event);
    if (!w) continue;
    jobs.push({ v: PROTOCOL_VERSION, id: w.id, type: w.type, merchant_id: event.merchant_id, url: w.url, body: w.body, queued_at_ms: nowMs, resends: 0 });
  }
  return jobs;
}

export function startDispatcher(js: JetStreamClient, n: Names, log: Logger) {
  let stopped = false;
  let messages: ConsumerMessages | null = null;
  let buffer: JsMsg[] = [];
  // One batch at a time: from the loop (batch full) or DISPATCH_LINGER_MS after a batch's first message.
  const flusher = lingeringFlush(flush, DISPATCH_LINGER_MS, (err) => log.error({ err }, 'webhook dispatch failed (linger flush); nak and retry'));

  async function flush(): Promise<void> {
    const msgs = buffer;
    buffer = [];
    const now = Date.now();
    const publishes: Promise<unknown>[] = [];
    const done: JsMsg[] = [];
    for (const m of msgs) {
      let jobs: WebhookJob[];
      try {
        jobs = jobsOf(m.data, now);
      } catch (err) {
        // The settlement consumer terminates (and logs) the same message; nothing to notify.
        log.error({ seq: m.seq, err: (err as Error).message }, 'undecodable event message skipped');
        m.term();
        continue;
      }
      for (const job of jobs) publishes.push(js.publish(n.webhookJobSubject, encodeJob(job), { msgID: jobMsgId(job) }));
      done.push(m);
    }
    try {
      await Promise.all(publishes);
    } catch (err) {
      for (const m of done) m.nak();
      throw err;
    }
    for (const m of done) m.ack();
  }

  async function loop(): Promise<void> {
    let backoffMs = BACKOFF_MS_MIN;
    while (!stopped) {
      try {
        const consumer = await js.consumers.get(n.evtStream, n.webhookDispatchConsumer);
        messages = await consumer.consume({ max_messages: DISPATCH_BATCH_MAX * 2 });
        for await (const m of messages) {
          buffer.push(m);
          if (buffer.length >= DISPATCH_BATCH_MAX) await flusher.now();
          else flusher.arm();
          backoffMs = BACKOFF_MS_MIN;
        }
      } catch (err) {
        if (stopped) break;
        log.error({ err }, 'webhook dispatch failed; nak and retry');
        flusher.cancel();
        for (const m of buffer) m.nak();
        buffer = [];
        await messages?.close().catch(() => undefined);
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MS_MAX);
      }
    }
  }
  const running = loop();

  return {
    async stop(): Promise<void> {
      stopped = true;
      flusher.cancel();
      await messages?.close().catch(() => undefined);
      await running;
      await flusher.settled();
      for (const m of buffer) m.nak();
      buffer = [];
    },
  };
}
