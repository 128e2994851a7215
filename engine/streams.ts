// JetStream topology, created idempotently at start-up by every process that needs it.
//   <NS>_CMD  commands, file storage, dedup window 2 min (Nats-Msg-Id = cmd_id), kept 7 days
//   <NS>_EVT  events,   file storage, dedup window 2 min (Nats-Msg-Id = event id), kept 30 days;
//             <ns>.evt.<shard> may notify, <ns>.evq.<shard> cannot (engine/protocol/subjects.ts)
//   <NS>_WEBHOOKS         webhook delivery jobs, work queue (a job leaves when delivered or parked), kept 3 days
//   <NS>_WEBHOOKS_PARKED  deliveries that used up their retries, one per event id, kept 30 days
// One durable pull consumer per shard on <NS>_CMD, one for the settlement consumer on <NS>_EVT,
// one for the webhook dispatcher on <NS>_EVT and one for the webhook deliverers on <NS>_WEBHOOKS.
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Names } from './protocol/subjects.ts';

const DAY_MS = 86_400_000;
export const DUPLICATE_WINDOW_MS = 120_000;

async function upsertStream(
  jsm: JetStreamManager, name: string, subjects: readonly string[], maxAgeMs: number,
  opts: { retention?: RetentionPolicy; maxMsgsPerSubject?: number } = {},
): Promise<void> {
  const config = {
    name,
    subjects: [...subjects],
    storage: StorageType.File,
    retention: opts.retention ?? RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: nanos(maxAgeMs),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    num_replicas: 1,
    ...(opts.maxMsgsPerSubject !== undefined && { max_msgs_per_subject: opts.maxMsgsPerSubject }),
  };
  try {
    await jsm.streams.info(name);
    await jsm.streams.update(name, config);
  } catch (err) {
    if (!String((err as Error).message).includes('not found')) throw err;
    await jsm.streams.add(config);
  }
}

export async function ensureStreams(jsm: JetStreamManager, n: Names): Promise<void> {
  await upsertStream(jsm, n.cmdStream, [n.cmdSubjectAll], 7 * DAY_MS);
  await upsertStream(jsm, n.evtStream, n.evtStreamSubjects, 30 * DAY_MS);
}

/** The webhook streams: created by the webhooks process (and `npm start`), not by every process. */
export async function ensureWebhookStreams(jsm: JetStreamManager, n: Names): Promise<void> {
  // Jobs outlive the 24 h retry window (a job nak'ed for its last retry must still be there).
  await upsertStream(jsm, n.webhookStream, [n.webhookJobSubject], 3 * DAY_MS, { retention: RetentionPolicy.Workqueue });
  // Parking the same event again replaces the earlier record (one per subject = per event id).
  await upsertStream(jsm, n.webhookParkedStream, [n.webhookParkedSubjectAll], 30 * DAY_MS, { maxMsgsPerSubject: 1 });
}

/**
 * Creates a durable consumer, or updates the settings that may change on an existing one. A
 * consumer whose filter subject changed (a new subject layout) is recreated from its ack floor
 * instead: nats-server 2.9 accepts a filter update but keeps waking the consumer for the old
 * subjects, so new messages wait for the next pull (measured: seconds).
 */
async function upsertConsumer(jsm: JetStreamManager, stream: string, config: Parameters<JetStreamManager['consumers']['add']>[1] & { durable_name: string }): Promise<void> {
  let existing: Awaited<ReturnType<JetStreamManager['consumers']['info']>> | null = null;
  try {
    existing = await jsm.consumers.info(stream, config.durable_name);
  } catch (err) {
    if (!/not found/i.test(String((err as Error).message))) throw err;
  }
  if (existing === null) {
    await jsm.consumers.add(stream, config);
    return;
  }
  // No filter reads as absent or empty, depending on the server.
  if ((existing.config.filter_subject ?? '') !== (config.filter_subject ?? '')) {
    await jsm.consumers.delete(stream, config.durable_name);
    await jsm.consumers.add(stream, {
      ...config,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: existing.ack_floor.stream_seq + 1,
    });
    return;
  }
  await jsm.consumers.update(stream, config.durable_name, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
}

/**
 * The server-side bound is twice the runner's (which stops reading at inflightMax): the client's
 * pull buffer sits on top of what the runner holds, and a pull that reaches max_ack_pending is
 * answered 409, after which nats.js stalls until two heartbeats are missed (seconds at a trickle).
 */
export async function ensureShardConsumer(jsm: JetStreamManager, n: Names, shard: number, inflightMax: number, ackWaitMs: number): Promise<void> {
  const maxAckPending = inflightMax * 2;
  await upsertConsumer(jsm, n.cmdStream, {
    durable_name: n.shardConsumer(shard),
    filter_subject: n.cmdShardFilter(shard),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: maxAckPending,
    max_deliver: -1,
  });
}

export async function ensureSettlementConsumer(jsm: JetStreamManager, n: Names, maxAckPending: number, ackWaitMs: number): Promise<void> {
  await upsertConsumer(jsm, n.evtStream, {
    durable_name: n.settlementConsumer,
    // No filter: every event message, those that may notify and the quiet ones. (An earlier layout
    // filtered <ns>.evt.>; upsertConsumer recreates such a consumer from its ack floor.)
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: maxAckPending,
    max_deliver: -1,
  });
}

/** The webhook dispatcher's consumer on the event stream (engine/webhooks/dispatcher.ts). */
export async function ensureWebhookDispatchConsumer(jsm: JetStreamManager, n: Names, maxAckPending: number, ackWaitMs: number): Promise<void> {
  await upsertConsumer(jsm, n.evtStream, {
    durable_name: n.webhookDispatchConsumer,
    // Only messages that may notify: nats-server skips the quiet ones (<ns>.evq.>) for this consumer.
    filter_subject: n.evtNotifyFilter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: maxAckPending,
    max_deliver: -1,
  });
}

/**
 * The webhook deliverers' consumer on the job stream. A job waiting for its next retry (nak with a
 * delay) stays unacknowledged, so maxAckPending bounds in-flight plus waiting jobs together.
 */
export async function ensureWebhookDeliverConsumer(jsm: JetStreamManager, n: Names, maxAckPending: number, ackWaitMs: number): Promise<void> {
  await upsertConsumer(jsm, n.webhookStream, {
    durable_name: n.webhookDeliverConsumer,
    filter_subject: n.webhookJobSubject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: maxAckPending,
    max_deliver: -1,
  });
}
