// Prometheus metrics of the engine and the settlement consumer, and the channel, webhook and
// reconciliation metrics the engine registers for the modules that record them.
//
// Conventions (https://prometheus.io/docs/practices/naming/): the unit last in the name
// (_seconds, _messages), counters end in _total, and every label takes its values from a bounded
// list: a shard number below the shard count, a command or event type, a result code of the
// catalogue, or one of the `as const` lists below. Never a merchant, user, payment id or anything
// secret. Labels known in advance are initialised to zero, so a query answers 0 instead of no data
// before the first request.
import { createServer, type Server } from 'node:http';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CHANNELS } from './channels/types.ts';
import { EVENT_TYPES } from './protocol/events.ts';
import type { Names } from './protocol/subjects.ts';
import { loadScripts } from './redis/scripts.ts';
import { RISK_CHALLENGE_REASONS, RISK_REFUSAL_REASONS } from './risk/rules.ts';

// The label values, in one place. CHANNELS is the channels module's own list (engine/channels/types.ts).
export { CHANNELS };
export const CHANNEL_OPERATIONS = ['create', 'query', 'close', 'refund', 'bill'] as const;
export const CHANNEL_RESULTS = ['ok', 'error', 'timeout', 'rejected', 'circuit_open'] as const;
/** The value of peakpay_channel_circuit_state for each state of a channel's circuit breaker. */
export const CIRCUIT_STATES = { closed: 0, half_open: 1, open: 2 } as const;
/** What became of a channel's callback; unsupported_event is ChannelNotifyError's fourth reason. */
export const CHANNEL_NOTIFY_RESULTS = [
  'accepted', 'duplicate', 'invalid_signature', 'timestamp_out_of_window', 'mismatch', 'unknown_order', 'malformed', 'unsupported_event',
  // Verified, but the engine did not answer in time (or could not be reached): answered as a
  // failure so the channel sends it again, which the derived command id makes a no-op.
  'deferred',
] as const;
export const WEBHOOK_RESULTS = ['delivered', 'retry', 'parked'] as const;
/** Placeholder kinds until reconciliation exists; its author may change them here. */
export const RECONCILIATION_DIFFERENCE_KINDS = ['missing_in_ledger', 'missing_at_channel', 'amount_mismatch', 'status_mismatch'] as const;
export const SETTLEMENT_EVENT_RESULTS = ['written', 'duplicate'] as const;

export type ChannelOperation = (typeof CHANNEL_OPERATIONS)[number];
export type ChannelResult = (typeof CHANNEL_RESULTS)[number];
export type ChannelNotifyResult = (typeof CHANNEL_NOTIFY_RESULTS)[number];
export type WebhookResult = (typeof WEBHOOK_RESULTS)[number];
export type ReconciliationDifferenceKind = (typeof RECONCILIATION_DIFFERENCE_KINDS)[number];

/** How often the engine and the settlement consumer read their JetStream consumers' backlog. */
export const BACKLOG_SAMPLE_EVERY_MS = 1_000;

// Buckets: in-process decisions are milliseconds; calls to a channel or a storefront are remote
// HTTP bounded by their timeouts (CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT = 3 s, webhooks likewise).
const LOCAL_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const REMOTE_SECONDS_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** GET /metrics for a process without an HTTP server of its own (engine, settlement). Port 0 = any free port. */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/**
 * One set of metrics per registry: a second call with the same registry returns the first set
 * instead of failing on a name registered twice, so the engine can register the channel and
 * webhook metrics at start and their modules can ask for them again.
 */
function oncePerRegistry<T>(make: (registry: Registry) => T): (registry: Registry) => T {
  const made = new WeakMap<Registry, T>();
  return (registry) => {
    let m = made.get(registry);
    if (m === undefined) {
      m = make(registry);
      made.set(registry, m);
    }
    return m;
  };
}

/** Payment channel calls, callbacks, circuit breakers and failovers (recorded by engine/channels). */
export const channelMetrics = oncePerRegistry((registry: Registry) => {
  const requests = new Counter({
    name: 'peakpay_channel_requests_total',
    help: 'Requests to payment channels, by channel, operation and result',
    labelNames: ['channel', 'operation', 'result'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'peakpay_channel_request_duration_seconds',
    help: 'Latency of requests to payment channels, by channel and operation',
    labelNames: ['channel', 'operation'] as const,
    buckets: REMOTE_SECONDS_BUCKETS,
    registers: [registry],
  });
  const circuitState = new Gauge({
    name: 'peakpay_channel_circuit_state',
    help: 'Circuit breaker of each channel: 0 closed, 1 half-open, 2 open',
    labelNames: ['channel'] as const,
    registers: [registry],
  });
  const failovers = new Counter({
    name: 'peakpay_channel_failovers_total',
    help: 'Payments routed to another channel because the first failed or its circuit was open',
    labelNames: ['from', 'to'] as const,
    registers: [registry],
  });
  const notify = new Counter({
    name: 'peakpay_channel_notify_total',
    help: 'Callbacks received from channels, by channel and what became of them',
    labelNames: ['channel', 'result'] as const,
    registers: [registry],
  });
  for (const channel of CHANNELS) {
    circuitState.labels(channel).set(CIRCUIT_STATES.closed);
    for (const operation of CHANNEL_OPERATIONS) {
      duration.zero({ channel, operation });
      for (const result of CHANNEL_RESULTS) requests.labels(channel, operation, result).inc(0);
    }
    for (const result of CHANNEL_NOTIFY_RESULTS) notify.labels(channel, result).inc(0);
    for (const to of CHANNELS) if (to !== channel) failovers.labels(channel, to).inc(0);
  }
  return { requests, duration, circuitState, failovers, notify };
});
export type ChannelMetrics = ReturnType<typeof channelMetrics>;

/** Deliveries of merchant webhooks (recorded by engine/webhooks). */
export const webhookMetrics = oncePerRegistry((registry: Registry) => {
  const deliveries = new Counter({
    name: 'peakpay_webhook_deliveries_total',
    help: 'Webhook delivery attempts: delivered, failed and to be retried, or parked after the last retry',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'peakpay_webhook_delivery_duration_seconds',
    help: 'Latency of one webhook delivery attempt',
    buckets: REMOTE_SECONDS_BUCKETS,
    registers: [registry],
  });
  const parked = new Gauge({
    name: 'peakpay_webhook_parked',
    help: 'Webhooks parked after their last retry, waiting for an operator',
    registers: [registry],
  });
  for (const result of WEBHOOK_RESULTS) deliveries.labels(result).inc(0);
  parked.set(0);
  return { deliveries, duration, parked };
});
export type WebhookMetrics = ReturnType<typeof webhookMetrics>;

/** Differences found by the last reconciliation run, by kind (set by reconciliation once it exists). */
export const reconciliationMetrics = oncePerRegistry((registry: Registry) => {
  const differences = new Gauge({
    name: 'peakpay_reconciliation_differences',
    help: 'Differences between the ledger and the channels found by the last reconciliation, by kind',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  for (const kind of RECONCILIATION_DIFFERENCE_KINDS) differences.labels(kind).set(0);
  return { differences };
});
export type ReconciliationMetrics = ReturnType<typeof reconciliationMetrics>;

/** What a shard runner reports at scrape time. */
export type ShardProbe = { shard: number; queued: number };

export function engineMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  let shardProbe: () => Iterable<ShardProbe> = () => [];
  const m = {
    registry,
    commands: new Counter({
      name: 'peakpay_engine_commands_total',
      help: 'Commands applied, by type and result code',
      labelNames: ['type', 'result'] as const,
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'peakpay_engine_commands_rejected_total',
      help: 'Messages on the command stream that could not be decoded (terminated)',
      registers: [registry],
    }),
    events: new Counter({
      name: 'peakpay_engine_events_total',
      help: 'Events published to the event stream (after their PubAck), by type',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    decisionDuration: new Histogram({
      name: 'peakpay_engine_decision_duration_seconds',
      help: "From a command's ts_ms (set when it was published) to its reply, by command type",
      labelNames: ['type'] as const,
      buckets: LOCAL_SECONDS_BUCKETS,
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'peakpay_engine_actor_batch_size',
      help: 'Commands per actor batch (one Redis round-trip)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers: [registry],
    }),
    commandsPerMessage: new Histogram({
      name: 'peakpay_engine_commands_per_message',
      help: 'Commands per message of the command stream (CommandBatch coalescing; 1 for a command sent alone)',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    inflight: new Gauge({
      name: 'peakpay_engine_inflight_commands',
      help: 'Commands received and not yet acknowledged',
      labelNames: ['shard'] as const,
      registers: [registry],
    }),
    mailbox: new Gauge({
      name: 'peakpay_engine_mailbox_commands',
      help: "Commands waiting in actors' mailboxes for their batch, by shard this engine owns",
      labelNames: ['shard'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const p of shardProbe()) this.labels(String(p.shard)).set(p.queued);
      },
    }),
    consumerLag: new Gauge({
      name: 'peakpay_engine_consumer_lag_messages',
      help: "Commands of a shard not yet acknowledged (consumer num_pending + num_ack_pending), sampled by the shard's owner",
      labelNames: ['shard'] as const,
      registers: [registry],
    }),
    shardsConfigured: new Gauge({ name: 'peakpay_engine_shards_configured', help: 'Shard count of the deployment', registers: [registry] }),
    shardFailures: new Counter({
      name: 'peakpay_engine_shard_failures_total',
      help: 'Shard restarts after an operating error (Redis or NATS unavailable)',
      registers: [registry],
    }),
    shardsOwned: new Gauge({ name: 'peakpay_engine_shards_owned', help: 'Shards this engine owns', registers: [registry] }),
    intakeLimited: new Gauge({
      name: 'peakpay_engine_intake_limited',
      help: 'Whether this engine paces its pulls because an ingress is saturated (1) or not (0) (PEAKPAY_ENGINE_YIELD_ELU_PERCENT)',
      registers: [registry],
    }),
    intakeLimit: new Gauge({
      name: 'peakpay_engine_intake_limit_commands_per_second',
      help: 'Commands a second this engine takes from JetStream while limited; 0 while not',
      registers: [registry],
    }),
    intakeLimitedSeconds: new Counter({
      name: 'peakpay_engine_intake_limited_seconds_total',
      help: 'Time this engine spent pacing its pulls for a saturated ingress',
      registers: [registry],
    }),
    riskRefusals: new Counter({
      name: 'peakpay_risk_refusals_total',
      help: 'Payments refused by a risk rule (status failed), by reason code (docs/RISK.md)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    riskChallenges: new Counter({
      name: 'peakpay_risk_challenges_total',
      help: 'Payments held and answered requires_action (second verification), by reason code',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    redisRoundTrips: new Counter({
      name: 'peakpay_engine_redis_roundtrips_total',
      help: 'Redis round-trips made by actors (one per batch: the batch is written at once)',
      registers: [registry],
    }),
    lua: luaMetrics(registry),
    holdsOpen: new Gauge({
      name: 'peakpay_engine_holds_open',
      help: 'Open holds tracked for expiry',
      labelNames: ['shard'] as const,
      registers: [registry],
    }),
    expiriesPublished: new Counter({
      name: 'peakpay_engine_hold_expiries_published_total',
      help: 'payment.expire commands published by the sweeper',
      registers: [registry],
    }),
    channels: channelMetrics(registry),
    webhooks: webhookMetrics(registry),
    reconciliation: reconciliationMetrics(registry),
    /** The engine tells the registry where its shard runners are; read at each scrape. */
    observeShards(probe: () => Iterable<ShardProbe>): void {
      shardProbe = probe;
    },
  };
  for (const reason of RISK_REFUSAL_REASONS) m.riskRefusals.labels(reason).inc(0);
  for (const reason of RISK_CHALLENGE_REASONS) m.riskChallenges.labels(reason).inc(0);
  for (const type of EVENT_TYPES) m.events.labels(type).inc(0);
  return m;
}
export type EngineMetrics = ReturnType<typeof engineMetrics>;

/** Lua script calls made through MoneyStore; an error is a call that threw, not a refusal code. */
function luaMetrics(registry: Registry) {
  const calls = new Counter({
    name: 'peakpay_lua_calls_total',
    help: 'Lua script calls (EVALSHA), by script',
    labelNames: ['script'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'peakpay_lua_errors_total',
    help: 'Lua script calls that failed (Redis error, unreachable, or a result that did not parse), by script',
    labelNames: ['script'] as const,
    registers: [registry],
  });
  for (const s of loadScripts()) {
    calls.labels(s.name).inc(0);
    errors.labels(s.name).inc(0);
  }
  return { calls, errors };
}
export type LuaMetrics = ReturnType<typeof luaMetrics>;

export function settlementMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    events: new Counter({
      name: 'peakpay_settlement_events_total',
      help: 'Events settled into Postgres: written, or already there (a redelivery)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    terminated: new Counter({
      name: 'peakpay_settlement_messages_terminated_total',
      help: 'Event messages that could not be decoded (terminated, never written)',
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'peakpay_settlement_batch_size',
      help: 'Events per Postgres transaction',
      buckets: [1, 5, 25, 100, 250, 500, 1000, 5000],
      registers: [registry],
    }),
    batchDuration: new Histogram({
      name: 'peakpay_settlement_batch_duration_seconds',
      help: 'Time to write one batch to Postgres',
      buckets: LOCAL_SECONDS_BUCKETS,
      registers: [registry],
    }),
    pending: new Gauge({
      name: 'peakpay_settlement_pending_messages',
      help: 'Event messages not yet settled (consumer num_pending + num_ack_pending)',
      registers: [registry],
    }),
    lag: new Gauge({
      name: 'peakpay_settlement_lag_seconds',
      help: 'While events are pending: now minus the time of the last event written; 0 when nothing is pending',
      registers: [registry],
    }),
    lastEventTimestamp: new Gauge({
      name: 'peakpay_settlement_last_event_timestamp_seconds',
      help: 'Unix time (ts_ms) of the newest event written to Postgres',
      registers: [registry],
    }),
  };
  for (const result of SETTLEMENT_EVENT_RESULTS) m.events.labels(result).inc(0);
  return m;
}
export type SettlementMetrics = ReturnType<typeof settlementMetrics>;

/**
 * Settlement lag in seconds. Nothing pending: 0, whatever the age of the last event (a quiet
 * hour is not a lag). Pending: the age of the last event written, or, if none was written since
 * the process started, the time since it started: either way it grows while settlement is stalled.
 */
export function settlementLagSeconds(pending: number, lastEventTsMs: number | null, startedAtMs: number, nowMs: number): number {
  if (pending <= 0) return 0;
  return Math.max(0, nowMs - (lastEventTsMs ?? startedAtMs)) / 1000;
}

/** Runs `sample` every everyMs, never two at once; a failed sample is logged and the next one tries again. */
export function sampleEvery(everyMs: number, sample: () => Promise<void>, log: Logger, what: string): { stop(): void } {
  let running = false;
  let failing = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sample().then(
      () => {
        failing = false;
      },
      (err: unknown) => {
        // Once per outage, not once a second.
        if (!failing) log.warn({ err }, `sampling ${what} failed`);
        failing = true;
      },
    ).finally(() => {
      running = false;
    });
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * Consumer lag of the shards this engine owns, from one listing of the command stream's consumers.
 * A shard the engine released loses its series here, so two engines never report the same shard.
 */
export async function sampleConsumerLag(jsm: JetStreamManager, n: Names, owned: Iterable<number>, gauge: EngineMetrics['consumerLag']): Promise<void> {
  const lagByConsumer = new Map<string, number>();
  for await (const ci of jsm.consumers.list(n.cmdStream)) lagByConsumer.set(ci.name, ci.num_pending + ci.num_ack_pending);
  gauge.reset();
  for (const shard of owned) {
    const lag = lagByConsumer.get(n.shardConsumer(shard));
    if (lag !== undefined) gauge.labels(String(shard)).set(lag);
  }
}
