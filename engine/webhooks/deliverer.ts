// The deliverer: consumes delivery jobs and POSTs them, at most `concurrency` at once. Success is
// any 2xx: the job is acknowledged (and leaves the work queue). A failure naks the job with the
// schedule's next delay, so JetStream itself keeps it and hands it back later, to this process or
// any other: nothing waits in memory, and a SIGKILL loses nothing. The attempt number is JetStream's
// delivery count of the job (a delivery cut short by a crash counts as an attempt: it may have
// reached the merchant). After the last attempt, or 24 h after the job was queued, it is parked.
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { MerchantDirectory } from '../merchants/index.ts';
import type { Names } from '../protocol/subjects.ts';
import { postWebhook, type PostResult, type WebhookAgents } from './http.ts';
import type { WebhookMetrics } from '../metrics.ts';
import { parkDelivery } from './parked.ts';
import { decodeJob, LAST_ERROR_CHARS_MAX, type WebhookJob } from './payload.ts';
import { nextRetryDelayMs } from './schedule.ts';
import { SIGNATURE_HEADER, webhookSignature } from './signature.ts';
import { PROTOCOL_VERSION } from '../protocol/commands.ts';

/** Jobs unacknowledged at once, in flight or waiting for their next attempt (the consumer's max_ack_pending). */
export const WEBHOOK_PENDING_MAX = 100_000;
/** When parking itself failed (JetStream unavailable): try the job again this much later. */
const PARK_RETRY_MS = 5_000;
const BACKOFF_MS_MIN = 100;
const BACKOFF_MS_MAX = 5_000;
const USER_AGENT = 'peakpay-webhooks/1';

/**
 * How long a handed-out job may stay unacknowledged before JetStream hands it to someone else: it
 * may wait in the client's buffer for a free slot (at most about one POST) and then be POSTed
 * (at most one timeout), plus a margin for the merchant lookup and the park.
 */
export const deliverAckWaitMs = (timeoutMs: number) => 2 * timeoutMs + 10_000;

/** A counting semaphore: how the loop keeps at most `max` POSTs in flight. */
class Slots {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(max: number) {
    this.free = max;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free += 1;
  }
}

export type DelivererDeps = {
  js: JetStreamClient;
  n: Names;
  log: Logger;
  merchants: Pick<MerchantDirectory, 'get'>;
  metrics: WebhookMetrics;
  agents: WebhookAgents;
  scheduleMs: readonly number[];
  timeoutMs: number;
  concurrency: number;
  allowPrivate: boolean;
};

export function startDeliverer(d: DelivererDeps) {
  let stopped = false;
  let messages: ConsumerMessages | null = null;
  const slots = new Slots(d.concurrency);
  const inflight = new Set<Promise<void>>();

  async function attempt(job: WebhookJob): Promise<PostResult> {
    let secret: string;
    try {
      const merchant = await d.merchants.get(job.merchant_id);
      if (!merchant) return { ok: false, status: null, error: 'merchant_not_found' };
      secret = merchant.secret;
    } catch (err) {
      d.log.error({ err: (err as Error).message, id: job.id }, 'merchant lookup failed; counted as a failed attempt');
      return { ok: false, status: null, error: 'merchant_lookup_failed' };
    }
    const signature = webhookSignature(secret, job.body, Math.floor(Date.now() / 1000));
    const stopTimer = d.metrics.duration.startTimer();
    try {
      return await postWebhook({
        url: job.url, body: job.body, timeoutMs: d.timeoutMs, allowPrivate: d.allowPrivate, agents: d.agents,
        headers: { [SIGNATURE_HEADER]: signature, 'user-agent': USER_AGENT },
      });
    } finally {
      stopTimer();
    }
  }

  async function handle(m: JsMsg): Promise<void> {
    let job: WebhookJob;
    try {
      job = decodeJob(m.data);
    } catch (err) {
      d.log.error({ seq: m.seq, err: (err as Error).message }, 'undecodable webhook job terminated');
      m.term();
      return;
    }
    const attemptNo = m.info.deliveryCount;
    const result = await attempt(job);
    if (result.ok) {
      m.ack();
      d.metrics.deliveries.inc({ result: 'delivered' });
      return;
    }
    const delayMs = nextRetryDelayMs(d.scheduleMs, attemptNo, job.queued_at_ms, Date.now());
    if (delayMs !== null) {
      m.nak(delayMs);
      d.metrics.deliveries.inc({ result: 'retry' });
      d.log.info({ id: job.id, merchant_id: job.merchant_id, attempt: attemptNo, error: result.error, retry_in_ms: delayMs }, 'webhook attempt failed');
      return;
    }
    try {
      await parkDelivery(d.js, d.n, {
        v: PROTOCOL_VERSION, job, attempts: attemptNo, last_error: result.error.slice(0, LAST_ERROR_CHARS_MAX), parked_at_ms: Date.now(),
      });
    } catch (err) {
      d.log.error({ err: (err as Error).message, id: job.id }, 'parking a webhook failed; the job stays queued');
      m.nak(PARK_RETRY_MS);
      return;
    }
    m.ack();
    d.metrics.deliveries.inc({ result: 'parked' });
    d.metrics.parked.inc(); // until the next reading of the parked stream
    d.log.warn({ id: job.id, merchant_id: job.merchant_id, type: job.type, attempts: attemptNo, error: result.error }, 'webhook parked');
  }

  async function loop(): Promise<void> {
    let backoffMs = BACKOFF_MS_MIN;
    while (!stopped) {
      try {
        const consumer = await d.js.consumers.get(d.n.webhookStream, d.n.webhookDeliverConsumer);
        messages = await consumer.consume({ max_messages: d.concurrency });
        for await (const m of messages) {
          await slots.acquire();
          const p: Promise<void> = handle(m)
            .catch((err: unknown) => {
              // handle() answers every job itself; anything else is a bug: the job comes back after the ack wait.
              d.log.error({ err }, 'webhook handling failed');
            })
            .finally(() => {
              inflight.delete(p);
              slots.release();
            });
          inflight.add(p);
          backoffMs = BACKOFF_MS_MIN;
        }
      } catch (err) {
        if (stopped) break;
        d.log.error({ err }, 'webhook consumer failed; retrying');
        await messages?.close().catch(() => undefined);
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MS_MAX);
      }
    }
  }
  const running = loop();

  return {
    inflight: () => inflight.size,
    async stop(): Promise<void> {
      stopped = true;
      await messages?.close().catch(() => undefined);
      await running;
      // Each POST ends within its timeout; its job is then acknowledged or nak'ed as usual.
      await Promise.all([...inflight]);
    },
  };
}
