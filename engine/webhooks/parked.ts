// Parked deliveries: webhooks that used up their retries, kept in the JetStream stream
// <NS>_WEBHOOKS_PARKED under <ns>.webhooks.parked.<event id> (one record per event id: parking the
// same event again replaces it). A JetStream stream rather than a Postgres table: parking then costs
// the deliverer no database, the records belong to the namespace like the jobs do, and a resend is
// one publish to the job stream.
//
// Operators list and resend them (`npm run ops -- webhooks parked | resend <id>|--all`). A resend
// queues the same body and event id again with a fresh schedule and 24 h window, then removes exactly
// the record it read, so a delivery parked again meanwhile is never lost.
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Names } from '../protocol/subjects.ts';
import { decodeParked, encodeJob, encodeParked, jobMsgId, type ParkedDelivery, type WebhookJob } from './payload.ts';

/** Parked records read per fetch while listing or resending. */
export const PARKED_PAGE_MAX = 256;
/** How long one fetch waits for records that the stream's state says exist (a concurrent delete). */
const PAGE_WAIT_MS = 2_000;

export class WebhookParkedError extends Error {
  override name = 'WebhookParkedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isWebhookParkedError = (err: unknown): err is WebhookParkedError => err instanceof WebhookParkedError;

/** Writes the parked record and waits for JetStream to have stored it. */
export async function parkDelivery(js: JetStreamClient, n: Names, parked: ParkedDelivery): Promise<void> {
  await js.publish(n.webhookParkedSubject(parked.job.id), encodeParked(parked));
}

const isNotFound = (err: unknown) => /not found|no message found/i.test(String((err as Error).message));

/** The parked stream's state; none before any webhooks process created the stream. */
async function parkedState(jsm: JetStreamManager, n: Names): Promise<{ messages: number; first_seq: number; last_seq: number }> {
  try {
    return (await jsm.streams.info(n.webhookParkedStream)).state;
  } catch (err) {
    if (isNotFound(err)) return { messages: 0, first_seq: 0, last_seq: 0 };
    throw err;
  }
}

export async function parkedCount(jsm: JetStreamManager, n: Names): Promise<number> {
  return (await parkedState(jsm, n)).messages;
}

export type ParkedEntry = ParkedDelivery & { seq: number };

/**
 * Calls `visit` for each parked record stored at or before the stream's last sequence when the scan
 * started, oldest first, until `visit` returns false. Records parked during the scan are not visited:
 * a resend of everything cannot chase the deliveries it parks again.
 */
async function scanParked(js: JetStreamClient, jsm: JetStreamManager, n: Names, visit: (e: ParkedEntry) => Promise<boolean> | boolean): Promise<void> {
  const state = await parkedState(jsm, n);
  if (state.messages === 0) return;
  const endSeq = state.last_seq;
  // No filter: the stream holds only parked records (a filter list would need nats-server 2.10).
  const consumer = await js.consumers.get(n.webhookParkedStream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: state.first_seq });
  let more = true;
  while (more) {
    more = false;
    const page = await consumer.fetch({ max_messages: PARKED_PAGE_MAX, expires: PAGE_WAIT_MS });
    let seen = 0;
    for await (const m of page) {
      seen += 1;
      if (m.seq > endSeq) break;
      if (!(await visit({ ...decodeParked(m.data), seq: m.seq }))) break;
      if (m.info.pending === 0 || m.seq === endSeq) break;
      if (seen === PARKED_PAGE_MAX) more = true;
    }
  }
  await consumer.delete().catch(() => undefined);
}

/** Parked deliveries, oldest first, at most `limit`, optionally of one merchant. */
export async function listParked(
  js: JetStreamClient, jsm: JetStreamManager, n: Names, opts: { limit: number; merchantId?: string },
): Promise<ParkedEntry[]> {
  const out: ParkedEntry[] = [];
  if (opts.limit <= 0) return out;
  await scanParked(js, jsm, n, (e) => {
    if (opts.merchantId === undefined || e.job.merchant_id === opts.merchantId) out.push(e);
    return out.length < opts.limit;
  });
  return out;
}

/** Queues the parked delivery again (fresh schedule, same event id and body), then drops that record. */
async function requeue(js: JetStreamClient, jsm: JetStreamManager, n: Names, entry: ParkedEntry, nowMs: number): Promise<WebhookJob> {
  const job: WebhookJob = { ...entry.job, queued_at_ms: nowMs, resends: entry.job.resends + 1 };
  // The message id carries the resend count: two operators resending the same record at once queue it once.
  await js.publish(n.webhookJobSubject, encodeJob(job), { msgID: jobMsgId(job) });
  // Exactly the record read: if the delivery already failed and was parked again, that newer record stays.
  await jsm.streams.deleteMessage(n.webhookParkedStream, entry.seq, false).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
  return job;
}

/** Resends one parked delivery by event id; a WebhookParkedError if none is parked under that id. */
export async function resendParked(js: JetStreamClient, jsm: JetStreamManager, n: Names, eventId: string, nowMs = Date.now()): Promise<WebhookJob> {
  let stored;
  try {
    stored = await jsm.streams.getMessage(n.webhookParkedStream, { last_by_subj: n.webhookParkedSubject(eventId) });
  } catch (cause) {
    if (isNotFound(cause)) stored = null;
    else throw cause;
  }
  if (!stored) throw new WebhookParkedError(`no parked webhook ${eventId}`);
  return requeue(js, jsm, n, { ...decodeParked(stored.data), seq: stored.seq }, nowMs);
}

/** Resends every delivery parked when it starts (optionally of one merchant); returns the event ids. */
export async function resendAllParked(
  js: JetStreamClient, jsm: JetStreamManager, n: Names, opts: { merchantId?: string } = {}, nowMs = Date.now(),
): Promise<string[]> {
  const ids: string[] = [];
  await scanParked(js, jsm, n, async (e) => {
    if (opts.merchantId === undefined || e.job.merchant_id === opts.merchantId) {
      await requeue(js, jsm, n, e, nowMs);
      ids.push(e.job.id);
    }
    return true;
  });
  return ids;
}
