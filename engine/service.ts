// The engine process: owns shards, runs their actors. Started by engine/main.ts and by tests.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Config } from './config.ts';
import { connectNats, connectRedis, logger } from './infra.ts';
import { engineMetrics } from './metrics.ts';
import { names } from './protocol/subjects.ts';
import { MoneyStore } from './redis/store.ts';
import { ShardRunner } from './shards/runner.ts';
import { ensureShardConsumer, ensureStreams } from './streams.ts';

export type EngineOptions = { now?: () => number };

export async function startEngine(config: Config, opts: EngineOptions = {}) {
  const log = logger(config, 'engine');
  const n = names(config.namespace, config.shardCount);
  const nc = await connectNats(config, `engine-${config.engineId}`);
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const redis = connectRedis(config, `engine-${config.engineId}`);
  const store = new MoneyStore(redis, { prefix: n.redisPrefix, opTtlS: config.opTtlS });
  const metrics = engineMetrics();
  await ensureStreams(jsm, n);

  const runners = new Map<number, ShardRunner>();
  for (let shard = 0; shard < config.shardCount; shard++) {
    await ensureShardConsumer(jsm, n, shard, config.shardInflightMax);
    const runner = new ShardRunner(shard, {
      nc, js, store, names: n, log, metrics,
      batchMax: config.actorBatchMax,
      inflightMax: config.shardInflightMax,
      ...(opts.now ? { now: opts.now } : {}),
    });
    runners.set(shard, runner);
    runner.start();
  }
  metrics.shardsOwned.set(runners.size);
  log.info({ engineId: config.engineId, shards: runners.size }, 'engine running');

  return {
    metrics,
    store,
    async stop(): Promise<void> {
      await Promise.all([...runners.values()].map((r) => r.stop()));
      await nc.drain().catch(() => undefined);
      redis.disconnect();
    },
  };
}
export type RunningEngine = Awaited<ReturnType<typeof startEngine>>;
