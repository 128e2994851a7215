// The engine process: takes shard leases on NATS KV and runs the shards it owns. Started by
// engine/main.ts and by tests (several engines may run side by side and share the shards).
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { connectNats, connectRedis, logger } from './infra.ts';
import { ShardLeases } from './leases/index.ts';
import { BACKLOG_SAMPLE_EVERY_MS, channelMetrics, engineMetrics, sampleConsumerLag, sampleEvery, serveMetrics, type EngineMetrics } from './metrics.ts';
import { names, type Names } from './protocol/subjects.ts';
import { MoneyStore } from './redis/store.ts';
import { ReplyOut } from './shards/reply-out.ts';
import { ShardRunner } from './shards/runner.ts';
import { decodeIngressLoad, IntakeGovernor, TICK_MS } from './shards/intake.ts';
import { ensureShardConsumer, ensureStreams } from './streams.ts';
import { inlineCrypto, poolCrypto } from './channels/crypto.ts';
import { buildDesk } from './channels/registry.ts';
import { loadChannelSettings, type ChannelSettings } from './channels/settings.ts';
import { CryptoPool } from './workers/pool.ts';

export type EngineOptions = {
  now?: () => number;
  engineId?: string;
  /** Channel settings to use instead of config.channelsFile (tests point them at sandboxes). */
  channels?: ChannelSettings | null;
};

export async function startEngine(config: Config, opts: EngineOptions = {}) {
  const engineId = opts.engineId ?? config.engineId;
  const log = logger(config, 'engine').child({ engineId });
  const n = names(config.namespace, config.shardCount);
  const nc = await connectNats(config, `engine-${engineId}`);
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const redis = connectRedis(config, `engine-${engineId}`);
  const metrics = engineMetrics();
  const store = new MoneyStore(redis, { prefix: n.redisPrefix, opTtlS: config.opTtlS, metrics: metrics.lua });
  await ensureStreams(jsm, n);
  for (let shard = 0; shard < config.shardCount; shard++) await ensureShardConsumer(jsm, n, shard, config.shardInflightMax, config.ackWaitMs);

  // Channels: RSA signing runs on the piscina pool (engine/workers), off the event loop.
  const channelSettings = opts.channels !== undefined ? opts.channels : config.channelsFile ? loadChannelSettings(config.channelsFile) : null;
  const cryptoPool = channelSettings ? new CryptoPool() : null;
  const desk = channelSettings
    ? buildDesk(channelSettings, { crypto: cryptoPool ? poolCrypto(cryptoPool) : inlineCrypto, metrics: channelMetrics(metrics.registry), log })
    : null;

  const runners = new Map<number, ShardRunner>();
  const replies = new ReplyOut(nc);
  const intake = config.engineYield ? startIntake(nc, n, config.engineYield, metrics, log) : null;
  metrics.shardsConfigured.set(config.shardCount);
  metrics.observeShards(() => [...runners.values()]);
  const lagSampler = sampleEvery(BACKLOG_SAMPLE_EVERY_MS, () => sampleConsumerLag(jsm, n, runners.keys(), metrics.consumerLag), log, 'consumer lag');
  const leases = new ShardLeases({
    bucket: n.leaseBucket,
    engineId,
    shardCount: config.shardCount,
    log,
    onAcquire: async (shard) => {
      const runner = new ShardRunner(shard, {
        nc, js, jsm, store, redis, names: n, log, metrics, desk, replies, intake: intake?.governor ?? null,
        batchMax: config.actorBatchMax,
        inflightMax: config.shardInflightMax,
        ...(opts.now ? { now: opts.now } : {}),
      });
      runners.set(shard, runner);
      metrics.shardsOwned.set(runners.size);
      await runner.start();
    },
    onRelease: async (shard) => {
      const runner = runners.get(shard);
      runners.delete(shard);
      metrics.shardsOwned.set(runners.size);
      await runner?.stop();
    },
  });
  const metricsServer = config.metricsPort > 0 ? await serveMetrics(metrics.registry, config.httpHost, config.metricsPort) : null;
  await leases.start(nc);
  log.info({ shards: leases.shards }, 'engine running');

  return {
    engineId,
    metrics,
    store,
    /** Shards this engine owns now. */
    shards: () => leases.shards,
    async stop(): Promise<void> {
      metricsServer?.close();
      lagSampler.stop();
      intake?.stop();
      await leases.stop();
      await nc.drain().catch(() => undefined);
      redis.disconnect();
      desk?.shutdown();
      await cryptoPool?.destroy();
    },
  };
}
export type RunningEngine = Awaited<ReturnType<typeof startEngine>>;

/**
 * Front-door priority (engine/shards/intake.ts): the ingresses' load reports in, one control step
 * every TICK_MS, the state out as metrics. A report that does not parse is dropped and logged once
 * a minute at most: it must not stop the engine, and a stranger on the subject must not flood the log.
 */
function startIntake(nc: NatsConnection, n: Names, settings: { elu: number; floorPerS: number }, metrics: EngineMetrics, log: Logger) {
  const governor = new IntakeGovernor({ yieldElu: settings.elu, floorPerS: settings.floorPerS });
  let badLoggedAtMs = 0;
  const sub = nc.subscribe(n.ingressLoad, {
    callback: (err, msg) => {
      if (err) return;
      const parsed = decodeIngressLoad(msg.data);
      if (parsed) governor.observe(parsed);
      else if (Date.now() - badLoggedAtMs > 60_000) {
        badLoggedAtMs = Date.now();
        log.warn({ subject: msg.subject }, 'unreadable ingress load report dropped');
      }
    },
  });
  let wasLimited = false;
  const timer = setInterval(() => {
    const s = governor.tick();
    if (s.limited !== wasLimited) log.info({ limitPerS: s.limitPerS }, s.limited ? 'an ingress is saturated: pacing pulls' : 'ingress load normal: pulls unpaced');
    wasLimited = s.limited;
    metrics.intakeLimited.set(s.limited ? 1 : 0);
    metrics.intakeLimit.set(s.limitPerS);
    if (s.limited) metrics.intakeLimitedSeconds.inc(TICK_MS / 1000);
  }, TICK_MS);
  timer.unref();
  return {
    governor,
    stop(): void {
      clearInterval(timer);
      sub.unsubscribe();
    },
  };
}
