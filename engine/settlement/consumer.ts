// The settlement consumer: streams events from JetStream into Postgres. Batches grow with load
// (everything buffered since the last commit, up to batchMax messages or WRITE_EVENTS_MAX events)
// and stay small when it is quiet: an event waits at most WRITE_LINGER_MS, then one commit.
// Events are acknowledged only after their transaction committed; on an error the batch is
// nak'ed and retried after a bounded backoff.
import { jetstream, jetstreamManager, type JsMsg, type ConsumerMessages } from '@nats-io/jetstream';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { connectNats, logger, pgPool } from '../infra.ts';
import { BACKLOG_SAMPLE_EVERY_MS, sampleEvery, serveMetrics, settlementLagSeconds, settlementMetrics } from '../metrics.ts';
import { lingeringFlush } from '../lingering-flush.ts';
import { decodeEventBatch } from '../protocol/codec.ts';
import type { EngineEvent } from '../protocol/events.ts';
import { names } from '../protocol/subjects.ts';
import { ensureSettlementConsumer, ensureStreams } from '../streams.ts';
import { writeEvents, type StoredEvent } from './writer.ts';

/**
 * A batch that is not full is written this long after its first message: a bound on how long an
 * event waits here. (It used to be written 20 ms after its *last* message, so a steady trickle
 * kept it waiting until the batch was full.) Batches grow by themselves while a write is in
 * progress, so a longer linger bought nothing measurable: 1, 50 and 100 ms gave the same CPU per
 * payment under load (docs/BENCHMARKS.md).
 */
export const WRITE_LINGER_MS = 20;
const BACKOFF_MS_MAX = 5_000;
/**
 * A transaction holds at most this many events, however few messages carry them: the engine
 * coalesces up to 256 events in one message, and a message is never split. A backlog of 500 full
 * messages made one transaction of ~100,000 events: Postgres then spent a quarter of its time
 * copying memory, and a payment cost 589 µs of settlement and Postgres CPU instead of ~370
 * (npm run bench:engine, drain).
 */
export const WRITE_EVENTS_MAX = 1_000;

/** A message and its events, decoded on arrival. */
type Received = { m: JsMsg; events: EngineEvent[] };

export async function startSettlement(config: Config, opts: { pool?: pg.Pool; log?: Logger } = {}) {
  const log = opts.log ?? logger(config, 'settlement');
  const n = names(config.namespace, config.shardCount);
  const nc = await connectNats(config, 'settlement');
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const pool = opts.pool ?? pgPool(config, 4, log);
  const ownsPool = !opts.pool;
  const batchMax = config.settlementBatchMax;
  await ensureStreams(jsm, n);
  await ensureSettlementConsumer(jsm, n, batchMax * 4, config.ackWaitMs);

  const metrics = settlementMetrics();
  const registry = metrics.registry;
  const startedAtMs = Date.now();
  let lastEventTsMs: number | null = null;
  const backlogSampler = sampleEvery(BACKLOG_SAMPLE_EVERY_MS, async () => {
    const info = await jsm.consumers.info(n.evtStream, n.settlementConsumer);
    const pending = info.num_pending + info.num_ack_pending;
    metrics.pending.set(pending);
    metrics.lag.set(settlementLagSeconds(pending, lastEventTsMs, startedAtMs, Date.now()));
  }, log, 'settlement backlog');

  let stopped = false;
  let messages: ConsumerMessages | null = null;
  let buffer: Received[] = [];
  let bufferedEvents = 0;

  // One write at a time: from the loop (batch full) or WRITE_LINGER_MS after a batch's first message.
  const flusher = lingeringFlush(flush, WRITE_LINGER_MS, (err) => log.error({ err }, 'settlement batch failed (linger flush); nak and retry'));

  async function flush(): Promise<void> {
    const received = buffer;
    buffer = [];
    bufferedEvents = 0;
    if (received.length === 0) return;
    try {
      await write(received);
    } catch (err) {
      for (const r of received) r.m.nak();
      throw err;
    }
  }

  /** Decoded on arrival, so that a write is bounded in events too; an undecodable message is terminated. */
  function decode(m: JsMsg): Received | null {
    try {
      return { m, events: decodeEventBatch(m.data).events };
    } catch (err) {
      log.error({ seq: m.seq, err: (err as Error).message }, 'undecodable event terminated');
      metrics.terminated.inc();
      m.term();
      return null;
    }
  }

  async function write(received: Received[]): Promise<void> {
    const batch: StoredEvent[] = [];
    for (const { m, events } of received) for (const event of events) batch.push({ seq: m.seq, event });
    const msgs = received.map((r) => r.m);
    const endTimer = metrics.batchDuration.startTimer();
    const { inserted } = await writeEvents(pool, batch);
    endTimer();
    for (const m of msgs) m.ack();
    metrics.events.labels('written').inc(inserted);
    metrics.events.labels('duplicate').inc(batch.length - inserted);
    metrics.batchSize.observe(batch.length);
    for (const { event } of batch) if (lastEventTsMs === null || event.ts_ms > lastEventTsMs) lastEventTsMs = event.ts_ms;
    if (lastEventTsMs !== null) metrics.lastEventTimestamp.set(lastEventTsMs / 1000);
  }

  async function loop(): Promise<void> {
    let backoffMs = 100;
    while (!stopped) {
      try {
        const consumer = await js.consumers.get(n.evtStream, n.settlementConsumer);
        messages = await consumer.consume({ max_messages: batchMax * 2 });
        for await (const m of messages) {
          const r = decode(m);
          if (r === null) continue;
          // A write holds at most WRITE_EVENTS_MAX events (or one message, if that has more).
          if (buffer.length > 0 && bufferedEvents + r.events.length > WRITE_EVENTS_MAX) await flusher.now();
          buffer.push(r);
          bufferedEvents += r.events.length;
          // Write when a batch is full, else WRITE_LINGER_MS after the first message of the batch.
          if (buffer.length >= batchMax || bufferedEvents >= WRITE_EVENTS_MAX) await flusher.now();
          else flusher.arm();
          backoffMs = 100;
        }
      } catch (err) {
        log.error({ err }, 'settlement batch failed; nak and retry');
        flusher.cancel();
        for (const r of buffer) r.m.nak();
        buffer = [];
        bufferedEvents = 0;
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
      backlogSampler.stop();
      stopped = true;
      flusher.cancel();
      await messages?.close().catch(() => undefined);
      await running;
      await flusher.settled();
      for (const r of buffer) r.m.nak();
      await nc.drain().catch(() => undefined);
      if (ownsPool) await pool.end();
    },
  };
}
