// Merchant webhooks (API.md "Notifications to the merchant"), a process of its own
// (`npm run webhooks`): the dispatcher turns payment and refund events into delivery jobs on a
// JetStream work queue, the deliverer POSTs them signed, retries on the schedule and parks what
// never succeeds. Several processes may run: they share the two durable consumers.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { connectNats, logger, pgPool } from '../infra.ts';
import { MerchantDirectory } from '../merchants/index.ts';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { serveMetrics, webhookMetrics } from '../metrics.ts';
import { names } from '../protocol/subjects.ts';
import { ensureStreams, ensureWebhookDeliverConsumer, ensureWebhookDispatchConsumer, ensureWebhookStreams } from '../streams.ts';
import { DISPATCH_BATCH_MAX, startDispatcher } from './dispatcher.ts';
import { deliverAckWaitMs, startDeliverer, WEBHOOK_PENDING_MAX } from './deliverer.ts';
import { webhookAgents } from './http.ts';
import { parkedCount } from './parked.ts';

export { WEBHOOK_RETRY_SCHEDULE_MS, WEBHOOK_RETRY_WINDOW_MS, nextRetryDelayMs } from './schedule.ts';
export { SIGNATURE_HEADER, webhookSignature } from './signature.ts';
export { listParked, resendParked, resendAllParked, isWebhookParkedError, WebhookParkedError, type ParkedEntry } from './parked.ts';
export { webhookOf, WEBHOOK_EVENT_TYPES, type WebhookJob, type ParkedDelivery } from './payload.ts';

/** How often the peakpay_webhook_parked gauge is read from the parked stream. */
export const PARKED_REFRESH_MS = 5_000;

export async function startWebhooks(config: Config, opts: { pool?: pg.Pool; log?: Logger; dispatch?: boolean; deliver?: boolean } = {}) {
  const log = opts.log ?? logger(config, 'webhooks');
  const n = names(config.namespace, config.shardCount);
  const nc = await connectNats(config, 'webhooks');
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const pool = opts.pool ?? pgPool(config, 2, log);
  const ownsPool = !opts.pool;
  await ensureStreams(jsm, n);
  await ensureWebhookStreams(jsm, n);
  await ensureWebhookDispatchConsumer(jsm, n, DISPATCH_BATCH_MAX * 4, config.ackWaitMs);
  await ensureWebhookDeliverConsumer(jsm, n, WEBHOOK_PENDING_MAX, deliverAckWaitMs(config.webhookTimeoutMs));

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = webhookMetrics(registry);
  // The parked count is the stream's, shared by every webhooks process and changed by operators too.
  const refreshParked = () => parkedCount(jsm, n).then((c) => metrics.parked.set(c), () => undefined);
  await refreshParked();
  const parkedTimer = setInterval(() => void refreshParked(), PARKED_REFRESH_MS);
  parkedTimer.unref();
  const agents = webhookAgents(config.webhookConcurrency);
  const dispatcher = opts.dispatch === false ? null : startDispatcher(js, n, log);
  const deliverer = opts.deliver === false ? null : startDeliverer({
    js, n, log, metrics, agents,
    merchants: new MerchantDirectory(pool, config.masterKey),
    scheduleMs: config.webhookRetryScheduleMs,
    timeoutMs: config.webhookTimeoutMs,
    concurrency: config.webhookConcurrency,
    allowPrivate: config.webhookAllowPrivate,
  });
  const metricsServer = config.metricsPort > 0 ? await serveMetrics(registry, config.httpHost, config.metricsPort) : null;
  log.info({ schedule_ms: config.webhookRetryScheduleMs, allow_private: config.webhookAllowPrivate }, 'webhooks running');

  return {
    registry,
    names: n,
    refreshParked,
    async stop(): Promise<void> {
      clearInterval(parkedTimer);
      metricsServer?.close();
      await dispatcher?.stop();
      await deliverer?.stop();
      agents.destroy();
      await nc.drain().catch(() => undefined);
      if (ownsPool) await pool.end();
    },
  };
}
