// The settlement consumer: streams events from JetStream into Postgres. Batches grow with load
// (everything buffered since the last commit, up to batchMax) and stay small when it is quiet, so
// latency is one commit. Events are acknowledged only after their transaction committed; on an
// error the batch is nak'ed and retried after a bounded backoff.
import { jetstream, jetstreamManager, type JsMsg, type ConsumerMessages } from '@nats-io/jetstream';
import type pg from 'pg';
import type { Logger } from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import type { Config } from '../config.ts';
import { connectNats, logger, pgPool } from '../infra.ts';
import { serveMetrics } from '../metrics.ts';
import { decodeEventBatch } from '../protocol/codec.ts';
import { names } from '../protocol/subjects.ts';
import { ensureSettlementConsumer, ensureStreams } from '../streams.ts';
import { writeEvents, type StoredEvent } from './writer.ts';

const BACKOFF_MS_MAX = 5_000;

export async function startSettlement(config: Config, opts: { pool?: pg.Pool; log?: Logger } = {}) {
  const log = opts.log ?? logger(config, 'settlement');
  const n = names(config.namespace, config.shardCount);
  const nc = await connectNats(config, 'settlement');
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const pool = opts.pool ?? pgPool(config, 4);
  const ownsPool = !opts.pool;
  const batchMax = config.settlementBatchMax;
  await ensureStreams(jsm, n);
  await ensureSettlementConsumer(jsm, n, batchMax * 4, config.ackWaitMs);

  const registry = new Registry();
  const written = new Counter({ name: 'peakpay_settlement_events_total', help: 'Events written to Postgres', registers: [registry] });
  const batchSize = new Histogram({
    name: 'peakpay_settlement_batch_size', help: 'Events per Postgres transaction',
    buckets: [1, 5, 25, 100, 250, 500, 1000, 5000], registers: [registry],
  });

  let stopped = false;
  let messages: ConsumerMessages | null = null;
  let buffer: JsMsg[] = [];

  async function flush(): Promise<void> {
    const msgs = buffer;
    buffer = [];
    const batch: StoredEvent[] = [];
    for (const m of msgs) {
      try {
        for (const event of decodeEventBatch(m.data).events) batch.push({ seq: m.seq, event });
      } catch (err) {
        log.error({ seq: m.seq, err: (err as Error).message }, 'undecodable event terminated');
        m.term();
      }
    }
    await writeEvents(pool, batch);
    for (const m of msgs) m.ack();
    written.inc(batch.length);
    batchSize.observe(batch.length);
  }

  async function loop(): Promise<void> {
    let backoffMs = 100;
    while (!stopped) {
      try {
        const consumer = await js.consumers.get(n.evtStream, n.settlementConsumer);
        messages = await consumer.consume({ max_messages: batchMax * 2 });
        for await (const m of messages) {
          buffer.push(m);
          // Write when a batch is full or nothing more is waiting right now.
          if (buffer.length >= batchMax || messages.getPending() <= 1) await flush(); // 1 = this message
          backoffMs = 100;
        }
      } catch (err) {
        log.error({ err }, 'settlement batch failed; nak and retry');
        for (const m of buffer) m.nak();
        buffer = [];
        await messages?.close().catch(() => undefined);
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MS_MAX);
      }
    }
  }
  const running = loop();
  const metricsServer = config.metricsPort > 0 ? await serveMetrics(registry, config.httpHost, config.metricsPort) : null;
  log.info('settlement consumer running');

  return {
    registry,
    async stop(): Promise<void> {
      metricsServer?.close();
      stopped = true;
      await messages?.close().catch(() => undefined);
      await running;
      for (const m of buffer) m.nak();
      await nc.drain().catch(() => undefined);
      if (ownsPool) await pool.end();
    },
  };
}
