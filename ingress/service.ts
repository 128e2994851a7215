// The ingress process: connections, context, server. Used by ingress/main.ts and by tests.
import { readFileSync } from 'node:fs';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type pg from 'pg';
import type { DestinationStream } from 'pino';
import { CommandClient } from '../engine/client/index.ts';
import type { Config } from '../engine/config.ts';
import { connectNats, connectRedis, logger, pgPool } from '../engine/infra.ts';
import { MerchantDirectory } from '../engine/merchants/index.ts';
import { names } from '../engine/protocol/subjects.ts';
import { MoneyStore } from '../engine/redis/store.ts';
import { ensureStreams } from '../engine/streams.ts';
import type { IngressContext } from './context.ts';
import { IdempotencyStore } from './idempotency.ts';
import { ingressMetrics } from './metrics.ts';
import { inlineCrypto } from '../engine/channels/crypto.ts';
import { buildAdapters } from '../engine/channels/registry.ts';
import { loadChannelSettings, type ChannelSettings } from '../engine/channels/settings.ts';
import { channelMetrics } from '../engine/metrics.ts';
import { RateLimiter } from './rate-limit.ts';
import { buildServer } from './server.ts';
import { startLoadReports } from './load-report.ts';
import { NONCE_TTL_S } from './signature.ts';

/** Connections the kernel queues before the ingress accepts them. */
export const LISTEN_BACKLOG = 4096;

export async function startIngress(
  config: Config,
  opts: { pool?: pg.Pool; listen?: boolean; logDestination?: DestinationStream; channels?: ChannelSettings | null } = {},
) {
  const log = logger(config, 'ingress', opts.logDestination);
  // Read before any connection: a missing certificate stops start-up at once, naming the file.
  const https = config.tls ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } : null;
  const n = names(config.namespace, config.shardCount);
  const nc = await connectNats(config, 'ingress');
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, n);
  const redis = connectRedis(config, 'ingress');
  const pool = opts.pool ?? pgPool(config, 8, log);
  const channelSettings = opts.channels !== undefined ? opts.channels : config.channelsFile ? loadChannelSettings(config.channelsFile) : null;
  const metrics = ingressMetrics();
  const client = new CommandClient(nc, jetstream(nc), n, { backlogLagMs: config.ingressBacklogLagMs });
  client.start();
  const ctx: IngressContext = {
    config, names: n, nc, jsm, redis, pool, client, log,
    merchants: new MerchantDirectory(pool, config.masterKey),
    store: new MoneyStore(redis, { prefix: n.redisPrefix, opTtlS: config.opTtlS }),
    idempotency: new IdempotencyStore(redis, n.redisPrefix),
    rateLimiter: new RateLimiter(redis, n.redisPrefix, {
      merchantPerS: config.rateLimitMerchantPerS, merchantBurst: config.rateLimitMerchantBurst,
      ipPerS: config.rateLimitIpPerS, ipBurst: config.rateLimitIpBurst,
    }, NONCE_TTL_S),
    metrics,
    // Callback verification is cheap (one RSA verify, ~50 µs): inline, no worker pool.
    channels: channelSettings ? buildAdapters(channelSettings, inlineCrypto) : null,
    channelMetrics: channelSettings ? channelMetrics(metrics.registry) : null,
  };
  const app = await buildServer(ctx, https ? { https } : {});
  const loadReports = startLoadReports(nc, n.ingressLoad, {
    eluGauge: metrics.eventLoopUtilization,
    acceptQueueGauge: metrics.acceptQueue,
    listening: () => app.server.address(),
    // Falling behind its connections: answer at the PubAck, so that no request holds a connection
    // open for a decision while new ones queue (engine/client, "Front door").
    behindAtQueue: config.ingressFrontDoorQueue,
    onBehind: (forMs) => client.frontDoorBehind(forMs),
  });
  // Node's default accept backlog is 511: in a midnight spike the kernel reset connections beyond it
  // (ECONNRESET at the storefront, docs/BENCHMARKS.md) while JetStream had room. A longer queue turns
  // those into waiting; the kernel caps it at net.core.somaxconn (4096 on current Linux).
  if (opts.listen !== false) await app.listen({ host: config.httpHost, port: config.httpPort, backlog: LISTEN_BACKLOG });
  return {
    app,
    ctx,
    async stop(): Promise<void> {
      loadReports.stop();
      await app.close();
      client.stop();
      await nc.drain().catch(() => undefined);
      redis.disconnect();
      if (!opts.pool) await pool.end();
    },
  };
}
