// One zod-parsed configuration for every process. A bad or missing setting stops start-up with
// a message that names the variable; nothing reads process.env anywhere else.
import { hostname } from 'node:os';
import { z } from 'zod';
import { parseSchedule, WEBHOOK_RETRY_SCHEDULE_MS } from './webhooks/schedule.ts';
import { IDEMPOTENCY_TTL_S } from './redis/keys.ts';
import { ACCEPT_QUEUE_BEHIND_MIN } from './shards/intake.ts';

const intFrom = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const envSchema = z.object({
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:24222'),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:26379'),
  DATABASE_URL: z.string().url().default('postgres://peakpay@127.0.0.1:25432/peakpay'),
  // 32 random bytes, hex: encrypts merchant API secrets at rest (AES-256-GCM).
  PEAKPAY_MASTER_KEY: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters (32 bytes)'),
  // Namespace for stream names, subjects, consumers and Redis keys; tests use a fresh one each.
  PEAKPAY_NAMESPACE: z.string().regex(/^[a-z][a-z0-9]{0,15}$/, 'must be 1-16 of [a-z0-9], starting with a letter').default('pp'),
  // Fixed for the life of a deployment: a merchant's shard is hash(merchant_id) % count.
  PEAKPAY_SHARD_COUNT: intFrom(1, 1024, 16),
  PEAKPAY_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  PEAKPAY_HTTP_PORT: intFrom(0, 65535, 8080),
  // Prometheus endpoint of an engine or settlement process (the ingress serves /metrics itself); 0 = off.
  PEAKPAY_METRICS_PORT: intFrom(0, 65535, 0),
  PEAKPAY_INGRESS_DEADLINE_MS: intFrom(50, 30_000, 2000),
  // Answer 202 as soon as JetStream has stored a command when the engine's last decisions on its
  // shard came this long after their PubAcks (a backlog: the spike waits in JetStream, not in open
  // connections); 0 = always wait for the deadline. Default: 1000, or half the deadline if that is less.
  PEAKPAY_INGRESS_BACKLOG_LAG_MS: z.coerce.number().int().min(0).max(30_000).optional(),
  // Answer 202 as soon as JetStream has stored a command while this many connections or more wait in
  // the ingress's accept queue (it falls behind its arrivals: a request held open for a decision
  // then only makes the client open another connection); 0 = off. Linux only (read from /proc).
  // Default: 128 when PEAKPAY_ENGINE_YIELD_ELU_PERCENT is set (the two work together), else 0.
  PEAKPAY_INGRESS_FRONT_DOOR_QUEUE: z.coerce.number().int().min(0).max(65_535).optional(),
  // Scheduling niceness (0-19) the engine, settlement and webhooks processes give all their threads at start.
  // Where they share cores with the ingress, a positive value lets the ingress accept a spike first
  // and the engine work the queue off after it.
  PEAKPAY_BACKGROUND_NICE: intFrom(0, 19, 0),
  // Front-door priority where ingress and engine share cores (engine/shards/intake.ts): while an
  // ingress's event loop is busy at least this percentage of the time, report after report, and
  // the kernel turns its connections away, the engine takes fewer commands a second (never fewer
  // than the floor, at most 20 s in a row) and the spike waits in JetStream, answered 202. 0 = off
  // (docs/OPERATIONS.md, "Servers on a small machine").
  PEAKPAY_ENGINE_YIELD_ELU_PERCENT: intFrom(0, 100, 0),
  PEAKPAY_ENGINE_YIELD_FLOOR_PER_S: intFrom(1, 1_000_000, 200),
  PEAKPAY_ENGINE_ID: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default(`${hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${process.pid}`),
  // At least IDEMPOTENCY_TTL_S: an Idempotency-Key the engine completed replays its op record.
  PEAKPAY_OP_TTL_S: intFrom(IDEMPOTENCY_TTL_S, 90 * 86400, 7 * 86400),
  PEAKPAY_ACTOR_BATCH_MAX: intFrom(1, 4096, 256),
  PEAKPAY_SHARD_INFLIGHT_MAX: intFrom(1, 65536, 2048),
  PEAKPAY_SETTLEMENT_BATCH_MAX: intFrom(1, 5000, 500),
  // How long a delivered, unacknowledged command waits before JetStream redelivers it (e.g. after
  // its engine was killed). Must exceed the slowest batch.
  PEAKPAY_ACK_WAIT_MS: intFrom(1000, 300_000, 30_000),
  // Merchant webhooks (engine/webhooks): delays between attempts in ms, comma-separated (default:
  // WEBHOOK_RETRY_SCHEDULE_MS, 11 attempts over ~23.4 h); one POST's time limit; POSTs at once per process.
  PEAKPAY_WEBHOOK_RETRY_SCHEDULE_MS: z.string().transform((s, ctx) => {
    const delays = parseSchedule(s);
    if (delays === null) ctx.addIssue({ code: 'custom', message: 'must be 1-100 comma-separated delays of 1 ms to 24 h' });
    return delays ?? [];
  }).optional(),
  PEAKPAY_WEBHOOK_TIMEOUT_MS: intFrom(100, 60_000, 10_000),
  PEAKPAY_WEBHOOK_CONCURRENCY: intFrom(1, 1024, 64),
  // Whether notify_url may point at loopback, private, link-local … addresses. Off by default (SSRF);
  // `npm start` and the tests turn it on because their receivers listen on 127.0.0.1.
  PEAKPAY_WEBHOOK_ALLOW_PRIVATE: z.enum(['true', 'false']).default('false'),
  // The payment channels (engine/channels/settings.ts): adapters, routes, fees, rates. Absent = balance only.
  PEAKPAY_CHANNELS_FILE: z.string().min(1).optional(),
  // Ingress rate limits (token buckets in Redis, shared by every ingress; 429 rate_limited): refill
  // per second and bucket size, per merchant (after its signature checks out) and per client
  // address (before anything else). 0 = off. The defaults leave room for a ~5,000 req/s benchmark
  // from one merchant on one address.
  PEAKPAY_RATE_LIMIT_MERCHANT_PER_S: intFrom(0, 1_000_000, 10_000),
  PEAKPAY_RATE_LIMIT_MERCHANT_BURST: intFrom(1, 10_000_000, 20_000),
  PEAKPAY_RATE_LIMIT_IP_PER_S: intFrom(0, 1_000_000, 20_000),
  PEAKPAY_RATE_LIMIT_IP_BURST: intFrom(1, 10_000_000, 40_000),
  // Comma-separated addresses or CIDRs of proxies whose X-Forwarded-For names the client (fastify
  // trustProxy); unset = the socket's peer is the client.
  PEAKPAY_TRUST_PROXY: z.string().regex(/^[0-9A-Fa-f.:/, ]{2,1000}$/, 'must be comma-separated IP addresses or CIDRs').optional(),
  // PEM files: when both are set the ingress serves HTTPS only.
  PEAKPAY_TLS_CERT_FILE: z.string().min(1).optional(),
  PEAKPAY_TLS_KEY_FILE: z.string().min(1).optional(),
  PEAKPAY_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = {
  natsUrl: string;
  redisUrl: string;
  databaseUrl: string;
  masterKey: Buffer;
  namespace: string;
  shardCount: number;
  httpHost: string;
  httpPort: number;
  metricsPort: number;
  ingressDeadlineMs: number;
  ingressBacklogLagMs: number;
  /** Accept-queue depth at which the ingress answers at the PubAck (0: never). */
  ingressFrontDoorQueue: number;
  backgroundNice: number;
  /** engine/shards/intake.ts: null = off. */
  engineYield: { elu: number; floorPerS: number } | null;
  engineId: string;
  opTtlS: number;
  /** engine/channels/settings.ts JSON; null = no channels (balance payments only). */
  channelsFile: string | null;
  actorBatchMax: number;
  shardInflightMax: number;
  settlementBatchMax: number;
  ackWaitMs: number;
  webhookRetryScheduleMs: readonly number[];
  webhookTimeoutMs: number;
  webhookConcurrency: number;
  webhookAllowPrivate: boolean;
  rateLimitMerchantPerS: number;
  rateLimitMerchantBurst: number;
  rateLimitIpPerS: number;
  rateLimitIpBurst: number;
  trustProxy: string | null;
  tls: { certFile: string; keyFile: string } | null;
  logLevel: z.infer<typeof envSchema>['PEAKPAY_LOG_LEVEL'];
};

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isConfigError = (err: unknown): err is ConfigError => err instanceof ConfigError;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings count as unset so that `FOO= npm start` falls back to the default.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const name = String(i.path[0] ?? '?');
      return cleaned[name] === undefined ? `${name}: missing (${i.message})` : `${name}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = parsed.data;
  if ((e.PEAKPAY_TLS_CERT_FILE === undefined) !== (e.PEAKPAY_TLS_KEY_FILE === undefined)) {
    throw new ConfigError('invalid configuration:\n  PEAKPAY_TLS_CERT_FILE / PEAKPAY_TLS_KEY_FILE: set both (HTTPS) or neither (HTTP)');
  }
  // Lag is seen from the PubAck up to the deadline at most: a setting at or past it would never trip.
  const backlogLagMs = e.PEAKPAY_INGRESS_BACKLOG_LAG_MS ?? Math.min(1000, Math.floor(e.PEAKPAY_INGRESS_DEADLINE_MS / 2));
  if (backlogLagMs >= e.PEAKPAY_INGRESS_DEADLINE_MS) {
    throw new ConfigError('invalid configuration:\n  PEAKPAY_INGRESS_BACKLOG_LAG_MS: must be below PEAKPAY_INGRESS_DEADLINE_MS (or 0: off)');
  }
  return {
    natsUrl: e.NATS_URL,
    redisUrl: e.REDIS_URL,
    databaseUrl: e.DATABASE_URL,
    masterKey: Buffer.from(e.PEAKPAY_MASTER_KEY, 'hex'),
    namespace: e.PEAKPAY_NAMESPACE,
    shardCount: e.PEAKPAY_SHARD_COUNT,
    httpHost: e.PEAKPAY_HTTP_HOST,
    httpPort: e.PEAKPAY_HTTP_PORT,
    metricsPort: e.PEAKPAY_METRICS_PORT,
    ingressDeadlineMs: e.PEAKPAY_INGRESS_DEADLINE_MS,
    ingressBacklogLagMs: backlogLagMs,
    ingressFrontDoorQueue: e.PEAKPAY_INGRESS_FRONT_DOOR_QUEUE ?? (e.PEAKPAY_ENGINE_YIELD_ELU_PERCENT > 0 ? ACCEPT_QUEUE_BEHIND_MIN : 0),
    backgroundNice: e.PEAKPAY_BACKGROUND_NICE,
    engineYield: e.PEAKPAY_ENGINE_YIELD_ELU_PERCENT > 0
      ? { elu: e.PEAKPAY_ENGINE_YIELD_ELU_PERCENT / 100, floorPerS: e.PEAKPAY_ENGINE_YIELD_FLOOR_PER_S }
      : null,
    engineId: e.PEAKPAY_ENGINE_ID,
    opTtlS: e.PEAKPAY_OP_TTL_S,
    channelsFile: e.PEAKPAY_CHANNELS_FILE ?? null,
    actorBatchMax: e.PEAKPAY_ACTOR_BATCH_MAX,
    shardInflightMax: e.PEAKPAY_SHARD_INFLIGHT_MAX,
    settlementBatchMax: e.PEAKPAY_SETTLEMENT_BATCH_MAX,
    ackWaitMs: e.PEAKPAY_ACK_WAIT_MS,
    webhookRetryScheduleMs: e.PEAKPAY_WEBHOOK_RETRY_SCHEDULE_MS ?? WEBHOOK_RETRY_SCHEDULE_MS,
    webhookTimeoutMs: e.PEAKPAY_WEBHOOK_TIMEOUT_MS,
    webhookConcurrency: e.PEAKPAY_WEBHOOK_CONCURRENCY,
    webhookAllowPrivate: e.PEAKPAY_WEBHOOK_ALLOW_PRIVATE === 'true',
    rateLimitMerchantPerS: e.PEAKPAY_RATE_LIMIT_MERCHANT_PER_S,
    rateLimitMerchantBurst: e.PEAKPAY_RATE_LIMIT_MERCHANT_BURST,
    rateLimitIpPerS: e.PEAKPAY_RATE_LIMIT_IP_PER_S,
    rateLimitIpBurst: e.PEAKPAY_RATE_LIMIT_IP_BURST,
    trustProxy: e.PEAKPAY_TRUST_PROXY ?? null,
    tls: e.PEAKPAY_TLS_CERT_FILE && e.PEAKPAY_TLS_KEY_FILE ? { certFile: e.PEAKPAY_TLS_CERT_FILE, keyFile: e.PEAKPAY_TLS_KEY_FILE } : null,
    logLevel: e.PEAKPAY_LOG_LEVEL,
  };
}

/** For main modules: print the named problem and exit instead of a stack trace. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!isConfigError(err)) throw err;
    console.error(`peakpay: ${err.message}`);
    process.exit(78); // EX_CONFIG
  }
}
