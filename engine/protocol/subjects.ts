// Subjects, streams and consumers, all derived from the namespace and the shard count.
// Commands:  <ns>.cmd.<shard>     stream <NS>_CMD      shard = FNV-1a(merchant_id) % shard count
// Events:    <ns>.evt.<shard>     stream <NS>_EVT: messages with an event that may notify (webhooks)
//            <ns>.evq.<shard>     stream <NS>_EVT: messages with none (quiet); the dispatcher never reads them
// Webhooks:  <ns>.webhooks.job    stream <NS>_WEBHOOKS; parked: <ns>.webhooks.parked.<event id> in <NS>_WEBHOOKS_PARKED
// Each engine shard consumer filters exactly <ns>.cmd.<shard>, so one shard is one ordered log.
// The merchant id is in every message, not in the subject: with a token per merchant, a shard
// consumer needs a wildcard filter over thousands of subjects, and nats-server 2.9 then delivered
// at 170-250 messages/s instead of thousands (measured, docs/BENCHMARKS.md).

/** FNV-1a 32-bit: stable across processes and languages, cheap, well spread for short ids. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function shardOf(merchantId: string, shardCount: number): number {
  return fnv1a32(merchantId) % shardCount;
}

export type Names = ReturnType<typeof names>;

export function names(namespace: string, shardCount: number) {
  const NS = namespace.toUpperCase();
  const leaseBucket = `${namespace}_shard_leases`;
  const cmdStream = `${NS}_CMD`;
  const evtStream = `${NS}_EVT`;
  const webhookStream = `${NS}_WEBHOOKS`;
  const webhookParkedStream = `${NS}_WEBHOOKS_PARKED`;
  return {
    shardCount,
    cmdStream,
    evtStream,
    cmdSubjectAll: `${namespace}.cmd.>`,
    /** The event stream's subjects: what settlement reads (all of it). */
    evtStreamSubjects: [`${namespace}.evt.>`, `${namespace}.evq.>`] as readonly string[],
    /** Event messages that may notify: the webhook dispatcher's filter. */
    evtNotifyFilter: `${namespace}.evt.>`,
    cmdSubject: (merchantId: string) => `${namespace}.cmd.${shardOf(merchantId, shardCount)}`,
    /** A shard's event messages with at least one event that may notify (mayNotify, engine/webhooks). */
    evtSubjectShard: (shard: number) => `${namespace}.evt.${shard}`,
    /** A shard's event messages with none: settlement reads them, the dispatcher never receives them. */
    evtQuietSubjectShard: (shard: number) => `${namespace}.evq.${shard}`,
    cmdShardFilter: (shard: number) => `${namespace}.cmd.${shard}`,
    shardConsumer: (shard: number) => `${namespace}-engine-s${shard}`,
    settlementConsumer: `${namespace}-settlement`,
    leaseBucket,
    // Merchant webhooks (engine/webhooks): delivery jobs, and the deliveries parked after the last attempt.
    webhookStream,
    webhookJobSubject: `${namespace}.webhooks.job`,
    webhookParkedStream,
    webhookParkedSubjectAll: `${namespace}.webhooks.parked.>`,
    webhookParkedSubject: (eventId: string) => `${namespace}.webhooks.parked.${eventId}`,
    webhookDispatchConsumer: `${namespace}-webhooks-dispatch`,
    webhookDeliverConsumer: `${namespace}-webhooks-deliver`,
    replyPrefix: `${namespace}.reply`,
    /** Core NATS, no stream: each ingress's event-loop load, read by the engines (engine/shards/intake.ts). */
    ingressLoad: `${namespace}.ctl.ingress_load`,
    redisPrefix: namespace,
    /**
     * Every JetStream stream the namespace's processes create (the lease bucket is stream
     * KV_<bucket>): what removing a namespace (tests, benchmarks) deletes. Left behind, they pile
     * up in a long-lived server and slow every publish (docs/BENCHMARKS.md, session 12).
     */
    allStreams: [cmdStream, evtStream, webhookStream, webhookParkedStream, `KV_${leaseBucket}`] as readonly string[],
  };
}
