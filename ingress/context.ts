// What the routes need, built once per server. No business logic lives in the ingress: it
// authenticates, validates, deduplicates, publishes a command, waits briefly, and replies.
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { CommandClient } from '../engine/client/index.ts';
import type { Config } from '../engine/config.ts';
import type { MerchantDirectory, Merchant } from '../engine/merchants/index.ts';
import type { Names } from '../engine/protocol/subjects.ts';
import type { MoneyStore } from '../engine/redis/store.ts';
import type { IdempotencyStore } from './idempotency.ts';
import type { IngressMetrics } from './metrics.ts';
import type { ChannelAdapter, ChannelName } from '../engine/channels/types.ts';
import type { ChannelMetrics } from '../engine/metrics.ts';
import type { RateLimiter } from './rate-limit.ts';

export type IngressContext = {
  config: Config;
  names: Names;
  nc: NatsConnection;
  jsm: JetStreamManager;
  redis: Redis;
  pool: pg.Pool;
  client: CommandClient;
  merchants: MerchantDirectory;
  store: MoneyStore;
  idempotency: IdempotencyStore;
  rateLimiter: RateLimiter;
  metrics: IngressMetrics;
  log: Logger;
  /** Channel adapters, for verifying callbacks (/v1/notify/{channel}); null = no channels. */
  channels: Partial<Record<ChannelName, ChannelAdapter>> | null;
  channelMetrics: ChannelMetrics | null;
};

declare module 'fastify' {
  interface FastifyRequest {
    merchant: Merchant | null;
    rawBody: Buffer;
    /**
     * The authenticated request's nonce when its check was left to the idempotency claim (one
     * Redis round-trip for both: admitClaim-3.lua); null once checked, or when auth checked it.
     */
    deferredNonce: string | null;
  }
  interface FastifyContextConfig {
    /** The route runs idempotent(): authentication leaves the nonce to its claim. */
    claimsNonce?: boolean;
  }
}
