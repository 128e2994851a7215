// peakpay under test: its own database (dropped and migrated afresh), a fresh namespace (streams,
// consumers, Redis keys), and the three processes `npm start` runs — engine, settlement, ingress.
import { randomBytes } from 'node:crypto';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfig, type Config } from '../../engine/config.ts';
import { publishAll } from '../../engine/client/publish.ts';
import { connectNats } from '../../engine/infra.ts';
import { createMerchant } from '../../engine/merchants/index.ts';
import { PROTOCOL_VERSION, type Command } from '../../engine/protocol/commands.ts';
import { names, type Names } from '../../engine/protocol/subjects.ts';
import { merchantKeys } from '../../engine/redis/keys.ts';
import { ensureStreams } from '../../engine/streams.ts';
import { migrate } from '../../scripts/migrate.ts';
import { paymentKey, walletKey, type Observed } from './ledger-check.ts';
import type { BenchMerchant } from './payments.ts';
import { freePort, spawnTs, waitHttpOk, type Proc } from './procs.ts';
import { unlabelledValues } from './prom-text.ts';

export const SETUP_WAIT_MS_MAX = 120_000;
const PUBLISH_WINDOW = 512;

/** The same server, another database: `postgres://u@h:p/peakpay` → `…/<name>`. */
export function databaseUrlFor(baseUrl: string, name: string): string {
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Drops and recreates `name` on the server of `baseUrl` (maintenance connection to `postgres`). */
export async function freshDatabase(baseUrl: string, name: string): Promise<string> {
  if (!/^[a-z][a-z0-9_]{0,40}$/.test(name)) throw new Error(`database name ${name} is not a plain identifier`);
  const admin = new pg.Client({ connectionString: databaseUrlFor(baseUrl, 'postgres') });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrlFor(baseUrl, name);
  await migrate(url);
  return url;
}

export type Peakpay = {
  config: Config;
  names: Names;
  baseUrl: string;
  /** The engine's Prometheus endpoint. */
  engineMetricsUrl: string;
  procs: Proc[];
  nc: NatsConnection;
  jsm: JetStreamManager;
  pool: pg.Pool;
  redis: Redis;
  stop: () => Promise<void>;
};

export async function startPeakpay(baseEnv: NodeJS.ProcessEnv, opts: { databaseUrl: string; cpuProfDir?: string; shards?: number }): Promise<Peakpay> {
  const httpPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    DATABASE_URL: opts.databaseUrl,
    PEAKPAY_NAMESPACE: `be${randomBytes(4).toString('hex')}`, // be = bench end to end
    PEAKPAY_HTTP_HOST: '127.0.0.1',
    PEAKPAY_HTTP_PORT: String(httpPort),
    PEAKPAY_LOG_LEVEL: baseEnv.BENCH_LOG_LEVEL ?? 'warn',
    // The ingress rate limits are off: the benchmark measures capacity, not the limiter.
    PEAKPAY_RATE_LIMIT_MERCHANT_PER_S: '0',
    PEAKPAY_RATE_LIMIT_IP_PER_S: '0',
    // As `npm start` runs them: engine and settlement yield the cores to the ingress (spikes queue in JetStream).
    PEAKPAY_BACKGROUND_NICE: baseEnv.PEAKPAY_BACKGROUND_NICE ?? '8',
    // As `npm start` sets it: the engine yields to a saturated ingress that falls behind its
    // connections, and the ingress answers 202 at the PubAck meanwhile (docs/BENCHMARKS.md, session 19).
    PEAKPAY_ENGINE_YIELD_ELU_PERCENT: baseEnv.PEAKPAY_ENGINE_YIELD_ELU_PERCENT ?? '95',
    ...(opts.shards !== undefined && { PEAKPAY_SHARD_COUNT: String(opts.shards) }),
  };
  const config = loadConfig(env);
  const n = names(config.namespace, config.shardCount);
  const nc = await connectNats(config, 'bench');
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, n);
  const prof = opts.cpuProfDir ? { cpuProfDir: opts.cpuProfDir } : {};
  const engineMetricsPort = await freePort();
  const procs = [
    spawnTs('engine', 'engine/main.ts', { ...env, PEAKPAY_METRICS_PORT: String(engineMetricsPort) }, prof),
    spawnTs('settlement', 'engine/settlement/main.ts', { ...env, PEAKPAY_METRICS_PORT: String(await freePort()) }, prof),
    // As `npm start` runs it: the dispatcher reads every event (to find those with a notify_url).
    spawnTs('webhooks', 'engine/webhooks/main.ts', { ...env, PEAKPAY_METRICS_PORT: String(await freePort()) }, prof),
    spawnTs('ingress', 'ingress/main.ts', env, prof),
  ];
  for (const p of procs) p.child.stdout?.on('data', (c: Buffer) => process.stderr.write(c));
  const baseUrl = `http://127.0.0.1:${httpPort}`;
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 4 });
  const redis = new Redis(config.redisUrl);
  const stop = async () => {
    const t0 = Date.now();
    await Promise.all(procs.map((p) => p.stop()));
    const stoppedMs = Date.now() - t0;
    for (const s of n.allStreams) await jsm.streams.delete(s).catch(() => undefined);
    await deleteNamespaceKeys(redis, config.namespace);
    process.stderr.write(`[bench] peakpay processes stopped in ${stoppedMs} ms, cleaned up in ${Date.now() - t0 - stoppedMs} ms\n`);
    await nc.close();
    redis.disconnect();
    await pool.end();
  };
  try {
    await Promise.race([
      waitHttpOk(`${baseUrl}/readyz`, 'peakpay ingress'),
      ...procs.map((p) => p.exited.then((code) => Promise.reject(new Error(`${p.name} exited (${code}) during start-up`)))),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { config, names: n, baseUrl, engineMetricsUrl: `http://127.0.0.1:${engineMetricsPort}/metrics`, procs, nc, jsm, pool, redis, stop };
}

/** The namespace's Redis keys (tens of thousands after a run), removed in SCAN batches. */
export async function deleteNamespaceKeys(redis: Redis, namespace: string): Promise<void> {
  let cursor = '0';
  do {
    // The shared Redis holds everyone's keys: large SCAN steps keep the round-trips few.
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 20_000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** Commands not yet applied: pending in the shard consumers plus delivered and not yet acked. */
export async function commandLag(p: Peakpay): Promise<{ pending: number; ackPending: number }> {
  let pending = 0;
  let ackPending = 0;
  for (let s = 0; s < p.names.shardCount; s++) {
    const i = await p.jsm.consumers.info(p.names.cmdStream, p.names.shardConsumer(s));
    pending += i.num_pending;
    ackPending += i.num_ack_pending;
  }
  return { pending, ackPending };
}

/** Events not yet written to Postgres by the settlement consumer. */
export async function settlementLag(p: Peakpay): Promise<number> {
  const i = await p.jsm.consumers.info(p.names.evtStream, p.names.settlementConsumer);
  return i.num_pending + i.num_ack_pending;
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = SETUP_WAIT_MS_MAX): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Registers the merchants (in Postgres, as `ops merchant:create` does) and funds each of their
 * wallets (account.create + account.credit commands through the engine, as `ops account:*` does);
 * returns once the engine applied them.
 */
export async function registerMerchants(p: Peakpay, merchants: readonly BenchMerchant[], fundingPerWallet: number): Promise<void> {
  for (const m of merchants) {
    await createMerchant(p.pool, p.config.masterKey, { id: m.id, secret: m.secret, name: `bench ${m.id}`, paymentAmountMax: 5_000_000 });
  }
  const cmds: Command[] = [];
  for (const m of merchants) {
    for (const account of m.accounts) {
      cmds.push({ v: PROTOCOL_VERSION, type: 'account.create', cmd_id: `ca_${m.id}_${account}`, merchant_id: m.id, ts_ms: Date.now(), account_id: account, currency: 'CNY' });
      cmds.push({
        v: PROTOCOL_VERSION, type: 'account.credit', cmd_id: `cc_${m.id}_${account}`, merchant_id: m.id, ts_ms: Date.now(),
        account_id: account, amount: fundingPerWallet, currency: 'CNY', reason: 'bench float',
      });
    }
  }
  await publishAll(p.nc, p.names, cmds, PUBLISH_WINDOW);
  // The engine's answer is what payments depend on; the ledger gets the credits in its own time
  // (the final ledger check waits for the settlement consumer to be idle).
  await engineIdle(p);
}

export async function engineIdle(p: Peakpay): Promise<void> {
  await until('the engine to apply every command', async () => {
    const lag = await commandLag(p);
    return lag.pending + lag.ackPending === 0;
  });
}

/** Payments the ledger shows as succeeded (captured): the benchmark's "settled". */
export async function settledCount(p: Peakpay): Promise<number> {
  const r = await p.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM payments WHERE status = 'succeeded'`);
  return r.rows[0]?.n ?? 0;
}

/** The ledger of record (Postgres) and the decision store (Redis), for checkLedger(). */
export async function readPeakpayLedger(p: Peakpay, merchants: readonly BenchMerchant[]): Promise<Observed> {
  // One snapshot for both reads, so that a batch committed in between cannot make them disagree.
  const client = await p.pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    return await readLedgerIn(client, p, merchants);
  } finally {
    await client.query('COMMIT').catch(() => undefined);
    client.release();
  }
}

async function readLedgerIn(db: pg.PoolClient, p: Peakpay, merchants: readonly BenchMerchant[]): Promise<Observed> {
  const captures = await db.query<{ merchant_id: string; out_trade_no: string; n: number; amount: string }>(
    `SELECT py.merchant_id, py.out_trade_no, count(*)::int AS n, sum(po.amount)::text AS amount
     FROM postings po JOIN events e ON e.id = po.event_id JOIN payments py ON py.id = e.payment_id
     WHERE po.kind = 'capture' AND po.ledger_account = 'merchant:settlement'
     GROUP BY 1, 2`,
  );
  const balances = await db.query<{ merchant_id: string; ledger_account: string; balance: string }>(
    `SELECT merchant_id, ledger_account, balance::text FROM ledger_balances
     WHERE ledger_account = 'merchant:settlement' OR ledger_account LIKE 'wallet:%:available'`,
  );
  const wallets = new Map<string, number>();
  const merchantBalances = new Map<string, number>();
  for (const r of balances.rows) {
    if (r.ledger_account === 'merchant:settlement') merchantBalances.set(r.merchant_id, Number(r.balance));
    else wallets.set(walletKey(r.merchant_id, r.ledger_account.slice('wallet:'.length, -':available'.length)), Number(r.balance));
  }
  const mirror = new Map<string, number>();
  const all = merchants.flatMap((m) => m.accounts.map((a) => [m.id, a] as const));
  for (let i = 0; i < all.length; i += 1000) {
    const chunk = all.slice(i, i + 1000);
    const pipe = p.redis.pipeline();
    for (const [m, a] of chunk) pipe.hget(merchantKeys(p.names.redisPrefix, m).account(a), 'available');
    const res = (await pipe.exec()) ?? [];
    chunk.forEach(([m, a], j) => {
      const v = res[j]?.[1];
      if (typeof v === 'string') mirror.set(walletKey(m, a), Number(v));
    });
  }
  return {
    settled: new Map(captures.rows.map((r) => [paymentKey(r.merchant_id, r.out_trade_no), { count: r.n, amount: Number(r.amount) }])),
    wallets,
    merchants: merchantBalances,
    mirror,
  };
}

/**
 * Why answers were 202 and how long the engine yielded, as counted by the processes themselves:
 * the ingress's 202s by reason (its front door, a shard's backlog, the deadline) and the engine's
 * seconds of paced pulls. Subtract two readings to get a scenario's.
 */
export type YieldCounters = { front_door_202s: number; backlog_202s: number; deadline_202s: number; engine_yield_s: number };

export async function yieldCounters(p: Peakpay): Promise<YieldCounters> {
  const read = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(5_000) })).text();
  const [ingress, engine] = await Promise.all([read(`${p.baseUrl}/metrics`), read(p.engineMetricsUrl)]);
  const i = unlabelledValues(ingress, ['peakpay_ingress_front_door_accepts_total', 'peakpay_ingress_backlog_accepts_total', 'peakpay_ingress_engine_timeouts_total']);
  const e = unlabelledValues(engine, ['peakpay_engine_intake_limited_seconds_total']);
  return {
    front_door_202s: i.peakpay_ingress_front_door_accepts_total ?? 0,
    backlog_202s: i.peakpay_ingress_backlog_accepts_total ?? 0,
    deadline_202s: i.peakpay_ingress_engine_timeouts_total ?? 0,
    engine_yield_s: e.peakpay_engine_intake_limited_seconds_total ?? 0,
  };
}

/** What happened between two readings (the yield's seconds to 0.1 s). */
export function yieldCountersBetween(a: YieldCounters, b: YieldCounters): YieldCounters {
  return {
    front_door_202s: b.front_door_202s - a.front_door_202s,
    backlog_202s: b.backlog_202s - a.backlog_202s,
    deadline_202s: b.deadline_202s - a.deadline_202s,
    engine_yield_s: Math.round((b.engine_yield_s - a.engine_yield_s) * 10) / 10,
  };
}
