// Prometheus metrics of the engine and the settlement consumer. Labels are bounded enums, never
// merchant ids or anything secret.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** GET /metrics for a process without an HTTP server of its own (engine, settlement). */
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

export function engineMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  return {
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
    batchSize: new Histogram({
      name: 'peakpay_engine_actor_batch_size',
      help: 'Commands per actor batch (one Redis round-trip)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers: [registry],
    }),
    inflight: new Gauge({
      name: 'peakpay_engine_inflight_commands',
      help: 'Commands received and not yet acknowledged',
      labelNames: ['shard'] as const,
      registers: [registry],
    }),
    shardFailures: new Counter({
      name: 'peakpay_engine_shard_failures_total',
      help: 'Shard restarts after an operating error (Redis or NATS unavailable)',
      registers: [registry],
    }),
    shardsOwned: new Gauge({ name: 'peakpay_engine_shards_owned', help: 'Shards this engine owns', registers: [registry] }),
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
  };
}
export type EngineMetrics = ReturnType<typeof engineMetrics>;
