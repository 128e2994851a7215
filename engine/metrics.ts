// Prometheus metrics of the engine and the settlement consumer. Labels are bounded enums, never
// merchant ids or anything secret.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
  };
}
export type EngineMetrics = ReturnType<typeof engineMetrics>;
