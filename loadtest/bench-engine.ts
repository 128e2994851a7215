// Engine throughput straight from JetStream, no HTTP: prints payments per second for
//   (a) uniform traffic over many merchants, and (b) one merchant taking all traffic,
// side by side in one run, plus Redis round-trips and Redis commands per payment.
//
//   npm run bench:engine -- [--payments 40000] [--merchants 1000] [--accounts 1000] [--shards 16]
//
// Method: the command backlog (payment.create, balance, automatic capture) is published to
// JetStream while no engine runs; then one engine process starts and we time how fast it drains
// the backlog (from its first acknowledgement to its last). The engine publishes every event to
// JetStream as in production; the settlement consumer is not running meanwhile. Then (unless
// --skip-settle) a settlement process starts on a fresh database and we time how fast it writes
// the engine's events into Postgres. Both phases report CPU per payment of each process (from
// /proc): a figure far steadier than end-to-end throughput on a shared machine, so a change to one
// stage can be judged by it alone.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../engine/config.ts';
import { connectNats } from '../engine/infra.ts';
import { publishAll } from '../engine/client/publish.ts';
import { PROTOCOL_VERSION, type Command } from '../engine/protocol/commands.ts';
import { names, type Names } from '../engine/protocol/subjects.ts';
import { ensureSettlementConsumer, ensureShardConsumer, ensureStreams } from '../engine/streams.ts';
import { localEnv, PROJECT_ROOT } from '../scripts/local-env.ts';
import { NODE_FLAGS } from '../scripts/node-flags.ts';
import { stackDown, stackUp } from '../scripts/stack.ts';
import { cpuBetween, cpuSnapshot } from './lib/cpu.ts';
import { freshDatabase } from './lib/peakpay.ts';

const { values } = parseArgs({
  options: {
    payments: { type: 'string', default: '40000' },
    merchants: { type: 'string', default: '1000' },
    accounts: { type: 'string', default: '1000' },
    only: { type: 'string', default: '' },
    shards: { type: 'string', default: '16' },
    'skip-settle': { type: 'boolean', default: false },
  },
});
const PAYMENTS = Number(values.payments);
const MERCHANTS = Number(values.merchants);
const HOT_ACCOUNTS = Number(values.accounts);
const PUBLISH_WINDOW = 512;
const METRICS_PORT = 19464;

type Scenario = { name: string; merchants: string[]; accountsPerMerchant: number };
type Settle = { perSecond: number; seconds: number; messagesPerPayment: number; cpuUsPerPayment: Record<string, number> };
type Result = {
  name: string; payments: number; seconds: number; perSecond: number; roundTripsPerPayment: number; redisCommandsPerPayment: number;
  avgBatch: number; cpuUsPerPayment: Record<string, number>; settle: Settle | null;
};

async function remaining(jsm: JetStreamManager, n: Names): Promise<number> {
  let r = 0;
  for (let s = 0; s < n.shardCount; s++) {
    const i = await jsm.consumers.info(n.cmdStream, n.shardConsumer(s));
    r += i.num_pending + i.num_ack_pending;
  }
  return r;
}

function startEngine(config: Config, entry = 'engine/main.ts', databaseUrl = config.databaseUrl) {
  // BENCH_CPU_PROF=<dir> writes a V8 CPU profile of each engine (and settlement) process there.
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = spawn(process.execPath, [...NODE_FLAGS, ...prof, '--import', 'tsx', join(PROJECT_ROOT, entry)], {
    env: {
      ...process.env, NATS_URL: config.natsUrl, REDIS_URL: config.redisUrl, DATABASE_URL: databaseUrl,
      PEAKPAY_MASTER_KEY: config.masterKey.toString('hex'), PEAKPAY_NAMESPACE: config.namespace,
      PEAKPAY_SHARD_COUNT: String(config.shardCount), PEAKPAY_METRICS_PORT: String(METRICS_PORT),
      PEAKPAY_LOG_LEVEL: process.env.BENCH_ENGINE_LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  if (child.pid === undefined) throw new Error(`${entry} did not start`);
  return {
    pid: child.pid,
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function metric(name: string): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`).then((r) => r.text());
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && !line.startsWith('#')) sum += Number(line.split(' ').pop());
  return sum;
}

/** Every command Redis processed (the bench's own INFO calls are negligible). */
async function redisCommandCount(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? 0);
}

async function run(s: Scenario, baseEnv: NodeJS.ProcessEnv): Promise<Result> {
  const config = loadConfig({ ...baseEnv, PEAKPAY_NAMESPACE: `b${randomBytes(4).toString('hex')}`, PEAKPAY_SHARD_COUNT: values.shards });
  const n = names(config.namespace, config.shardCount);
  const nc = await connectNats(config, 'bench');
  const jsm = await jetstreamManager(nc);
  const redis = new Redis(config.redisUrl);
  await ensureStreams(jsm, n);
  for (let i = 0; i < n.shardCount; i++) await ensureShardConsumer(jsm, n, i, config.shardInflightMax, config.ackWaitMs);

  // Accounts and funds first, applied by an engine, so the measured backlog is payments only.
  const accounts: { merchant: string; account: string }[] = [];
  const setup: Command[] = [];
  for (const m of s.merchants) {
    for (let a = 0; a < s.accountsPerMerchant; a++) {
      const account = `acc${a}`;
      accounts.push({ merchant: m, account });
      setup.push({ v: PROTOCOL_VERSION, type: 'account.create', cmd_id: `ca_${m}_${a}`, merchant_id: m, ts_ms: Date.now(), account_id: account, currency: 'CNY' });
      setup.push({ v: PROTOCOL_VERSION, type: 'account.credit', cmd_id: `cc_${m}_${a}`, merchant_id: m, ts_ms: Date.now(), account_id: account, amount: 1_000_000_000, currency: 'CNY', reason: 'bench' });
    }
  }
  let engine = startEngine(config);
  await publishAll(nc, n, setup, PUBLISH_WINDOW);
  while ((await remaining(jsm, n)) > 0) await new Promise((r) => setTimeout(r, 100));
  await engine.stop();

  const backlog: Command[] = [];
  for (let i = 0; i < PAYMENTS; i++) {
    const a = accounts[i % accounts.length] as { merchant: string; account: string };
    backlog.push({
      v: PROTOCOL_VERSION, type: 'payment.create', cmd_id: `c${i}`, merchant_id: a.merchant, ts_ms: Date.now(), payment_id: `p${i}`,
      out_trade_no: `T${i}`, amount: 100 + (i % 900), currency: 'CNY', method: 'balance', account_id: a.account, capture: 'automatic',
      hold_ttl_s: 900, scene: 'pc',
    });
  }
  await publishAll(nc, n, backlog, PUBLISH_WINDOW);
  const redisBefore = await redisCommandCount(redis);

  engine = startEngine(config);
  let t0 = 0;
  let startRemaining = 0;
  let rtBefore = 0;
  let cpu0 = cpuSnapshot({ engine: engine.pid });
  for (;;) {
    const r = await remaining(jsm, n);
    if (t0 === 0 && r < PAYMENTS) {
      t0 = performance.now();
      cpu0 = cpuSnapshot({ engine: engine.pid });
      startRemaining = r;
      rtBefore = await metric('peakpay_engine_redis_roundtrips_total');
    }
    if (r === 0) break;
    // Coarse on purpose: each look is 16 consumer-info requests, which cost the NATS server CPU.
    await new Promise((res) => setTimeout(res, 250));
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpuUsPerPayment = usPerPayment(cpuBetween(cpu0, cpuSnapshot({ engine: engine.pid })), seconds, startRemaining);
  const roundTrips = (await metric('peakpay_engine_redis_roundtrips_total')) - rtBefore;
  const batches = await metric('peakpay_engine_actor_batch_size_count');
  const batchedCommands = await metric('peakpay_engine_actor_batch_size_sum');
  const redisCommands = (await redisCommandCount(redis)) - redisBefore;
  await engine.stop();
  const settle = values['skip-settle'] ? null : await settleAll(config, jsm, n, baseEnv, PAYMENTS);
  for (const st of n.allStreams) await jsm.streams.delete(st).catch(() => undefined);
  await nc.close();
  redis.disconnect();
  return {
    name: s.name,
    payments: startRemaining,
    seconds,
    perSecond: Math.round(startRemaining / seconds),
    roundTripsPerPayment: roundTrips / startRemaining,
    redisCommandsPerPayment: redisCommands / PAYMENTS,
    avgBatch: batchedCommands / Math.max(1, batches),
    cpuUsPerPayment,
    settle,
  };
}

/** cores (cpuBetween) over `seconds` → µs of CPU per payment, per process; `machine` is the whole machine. */
function usPerPayment(cores: Record<string, number>, seconds: number, payments: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(cores)) if (k !== 'other' && v > 0) out[k] = Math.round((v * seconds * 1e6) / payments);
  return out;
}

/**
 * The settlement consumer from a backlog: every event the engine published (the backlog's and the
 * setup's accounts) is waiting in the event stream; one settlement process writes them into a fresh
 * database, timed from its first acknowledgement to its last.
 */
async function settleAll(config: Config, jsm: JetStreamManager, n: Names, baseEnv: NodeJS.ProcessEnv, payments: number): Promise<Settle> {
  const pending = async () => {
    const i = await jsm.consumers.info(n.evtStream, n.settlementConsumer);
    return i.num_pending + i.num_ack_pending;
  };
  // As the settlement process creates it (engine/settlement/consumer.ts), before it starts, to count what waits.
  await ensureSettlementConsumer(jsm, n, config.settlementBatchMax * 4, config.ackWaitMs);
  const before = await pending();
  const databaseUrl = await freshDatabase(baseEnv.DATABASE_URL ?? config.databaseUrl, 'peakpay_bench_settle');
  const settlement = startEngine(config, 'engine/settlement/main.ts', databaseUrl);
  let t0 = 0;
  let startPending = 0;
  let cpu0 = cpuSnapshot({ settlement: settlement.pid });
  for (;;) {
    const r = await pending();
    if (t0 === 0 && r < before) {
      t0 = performance.now();
      cpu0 = cpuSnapshot({ settlement: settlement.pid });
      startPending = r;
    }
    if (r === 0) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const seconds = (performance.now() - t0) / 1000;
  const cores = cpuBetween(cpu0, cpuSnapshot({ settlement: settlement.pid }));
  await settlement.stop();
  // The events of the measured part, in payments: the backlog's share of what was pending.
  const share = (startPending / before) * payments;
  return {
    perSecond: Math.round(share / seconds), seconds, messagesPerPayment: before / payments,
    cpuUsPerPayment: usPerPayment(cores, seconds, share),
  };
}

const stack = await stackUp({ log: (l) => console.error(`[stack] ${l}`) });
const baseEnv = localEnv({ ...process.env, NATS_URL: stack.natsUrl, REDIS_URL: stack.redisUrl, DATABASE_URL: stack.databaseUrl, PEAKPAY_LOG_LEVEL: 'warn' });
try {
  const stamp = Date.now().toString(36);
  const skip = (k: string) => values.only !== '' && values.only !== k;
  const uniform = skip('a') ? null : await run({ name: `(a) ${MERCHANTS} merchants, uniform`, merchants: Array.from({ length: MERCHANTS }, (_, i) => `u${stamp}m${i}`), accountsPerMerchant: 1 }, baseEnv);
  const hot = skip('b') ? null : await run({ name: `(b) 1 merchant, ${HOT_ACCOUNTS} wallets`, merchants: [`h${stamp}`], accountsPerMerchant: HOT_ACCOUNTS }, baseEnv);
  console.log(`\nengine drain of ${PAYMENTS} payment.create (balance, automatic capture); ${values.shards} shards; ${cpus().length} cores (${cpus()[0]?.model ?? '?'})`);
  console.log('scenario                              payments/s   seconds   redis round-trips/payment   redis commands/payment   avg batch');
  for (const r of [uniform, hot]) {
    if (!r) continue;
    console.log(`${r.name.padEnd(38)}${String(r.perSecond).padStart(10)}${r.seconds.toFixed(2).padStart(10)}${r.roundTripsPerPayment.toFixed(3).padStart(28)}${r.redisCommandsPerPayment.toFixed(2).padStart(25)}${r.avgBatch.toFixed(1).padStart(12)}`);
  }
  console.log('\nCPU per payment, µs (from /proc; the servers are shared: their figures include anyone else\'s use):');
  for (const r of [uniform, hot]) {
    if (!r) continue;
    console.log(`${r.name}: engine drain ${JSON.stringify(r.cpuUsPerPayment)}`);
    if (r.settle) {
      console.log(`${r.name}: settlement drain ${r.settle.perSecond} payments/s (${r.settle.messagesPerPayment.toFixed(2)} event messages a payment) in ${r.settle.seconds.toFixed(2)} s, ${JSON.stringify(r.settle.cpuUsPerPayment)}`);
    }
  }
  if (hot && uniform) console.log(`hot / uniform = ${(hot.perSecond / uniform.perSecond).toFixed(2)} (target ≥ 0.5)`);
} finally {
  await stackDown(stack.started);
}
