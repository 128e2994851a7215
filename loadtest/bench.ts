// `npm run bench`: peakpay end to end against the naive epay-style stack and the HTTP ceiling, in one
// run on this machine, with the same signed requests (loadtest/lib/payments.ts) from the same Node
// load generator (loadtest/lib/generator.ts). Prints one JSON line per scenario on stdout, then a
// summary line with the targets of issue 5 and the ledger check; progress goes to stderr.
//
//   npm run bench                                        full run, ~4-5 min
//   npm run bench -- --duration 5 --scenarios ceiling,naive-hot,uniform,hot --merchants 100 --hot-wallets 100 --quiet-wait 0   < 60 s
//   npm run bench -- --scenarios uniform --profile /tmp/prof    CPU profiles of engine, settlement and ingress
//   npm run bench -- --shards 16                         PEAKPAY_SHARD_COUNT of the peakpay run (default 2:
//                                                        one engine process, which coalesces more with few shards)
//
// Scenarios (all: balance payments, automatic capture, one request per payment, unless said):
//   ceiling        node:http that only parses the body and answers 202 — saturation
//   naive-uniform  node:http + pg, one transaction per payment, --merchants merchants — saturation
//   naive-hot      the same, one merchant (its balance row is the hot row) — saturation
//   uniform        peakpay, --merchants merchants × --wallets wallets — saturation
//   hot            peakpay, one merchant, --hot-wallets wallets — saturation
//   fixed          peakpay, uniform, at --rate payments/s (open loop) — latency at a given load,
//                  measured once the rate is reached (after a 5 s ramp from a tenth of it)
//   manual         peakpay, uniform, hold then capture (two requests per payment) — saturation
//   spike          peakpay, the rehearsal: --spike-normal/s, 10× at "midnight", back; samples the
//                  JetStream consumer lag and reports how long the queued excess takes to drain
// peakpay payments count once settled: their row in the payments table says succeeded (polled).
// Saturation = --connections closed-loop connections, each sending its next request on the answer.
// 256 by default: at 128 the uniform scenario was bound by its own round trips (the machine 9% idle,
// each payment alone in its merchant's Redis call); 256 keeps the cores busy and batches more, and
// 384 or 512 only add latency (docs/BENCHMARKS.md, session 20). Every closed scenario uses the same
// count, the naive stack and the ceiling included.
//
// Options: --duration S (20, per scenario) --scenarios a,b (all) --connections N (256) --rate R (2000,
// fixed) --merchants M (1000) --wallets W (2 per merchant) --hot-wallets H (1000) --spike-normal R
// (auto: 10% of uniform, so the 10× peak is the uniform figure) --spike-factor F (10) --naive-workers
// N (2) --naive-pool N (16 per worker) --settle-timeout
// S (120) --quiet-wait S (20: wait for a quiet machine before each scenario) --database NAME
// (peakpay_bench, dropped and recreated) --profile DIR (V8 CPU profiles of engine, settlement and ingress).
// Environment: BENCH_NODE_FLAGS="--flag …" is passed to the node of every process started here,
// BENCH_NODE_FLAGS_<NAME> (ENGINE, SETTLEMENT, WEBHOOKS, INGRESS) to one of them (A/B of V8 flags).
// BENCH_SAME_SESSION=1 starts the servers in the benchmark's own session, as before session 21,
// instead of each in a session of its own (loadtest/lib/procs.ts; A/B of Linux's autogroups).
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { localEnv } from '../scripts/local-env.ts';
import { stackDown, stackUp } from '../scripts/stack.ts';
import { rehearsalStages, spikeEndS } from './k6/lib/shapes.ts';
import { cpuBetween, cpuSnapshot, listenOverflows, waitQuiet } from './lib/cpu.ts';
import { runLoad, type Iteration, type Load, type RunResult } from './lib/generator.ts';
import { checkLedger, walletKey, type LedgerReport } from './lib/ledger-check.ts';
import { automaticPayment, manualPayment, PaymentRequests, roundRobin, type BenchMerchant, type Ledger } from './lib/payments.ts';
import { commandLag, engineIdle, freshDatabase, readPeakpayLedger, registerMerchants, settledCount, settlementLag, startPeakpay, yieldCounters, yieldCountersBetween, type Peakpay } from './lib/peakpay.ts';
import { killChildren, listeningPort, spawnTs, type Proc } from './lib/procs.ts';
import { aofRewritesBetween, aofState, type AofState } from './lib/redis-info.ts';
import { countNaiveOrders, createNaiveSchema, readNaiveLedger, seedNaive } from './naive/schema.ts';

const ALL = ['ceiling', 'naive-uniform', 'naive-hot', 'uniform', 'hot', 'fixed', 'manual', 'spike'] as const;
type ScenarioName = (typeof ALL)[number];

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    scenarios: { type: 'string', default: ALL.join(',') },
    connections: { type: 'string', default: '256' },
    rate: { type: 'string', default: '2000' },
    merchants: { type: 'string', default: '1000' },
    wallets: { type: 'string', default: '2' },
    'hot-wallets': { type: 'string', default: '1000' },
    'spike-normal': { type: 'string', default: 'auto' },
    'spike-factor': { type: 'string', default: '10' },
    'naive-workers': { type: 'string', default: '2' },
    'naive-pool': { type: 'string', default: '16' },
    'settle-timeout': { type: 'string', default: '120' },
    database: { type: 'string', default: 'peakpay_bench' },
    profile: { type: 'string', default: '' },
    'quiet-wait': { type: 'string', default: '20' },
    // One engine process runs here: as many shards as engines own them all the same, and fewer
    // shards let the ingress coalesce more commands per message (docs/BENCHMARKS.md, "Coalescing").
    shards: { type: 'string', default: '2' },
  },
});
const DURATION_S = Number(values.duration);
const CONNECTIONS = Number(values.connections);
const RATE = Number(values.rate);
const MERCHANTS = Number(values.merchants);
const WALLETS = Number(values.wallets);
const HOT_WALLETS = Number(values['hot-wallets']);
/**
 * Normal traffic of the spike scenario. `auto`: 10% of the uniform saturation rate measured in the
 * same run, so the 10× midnight arrives at the rate this machine settles in a closed loop. Arriving
 * open (each payment on its own schedule) the same payments cost ~1.6× the CPU (docs/BENCHMARKS.md,
 * sessions 17–18): the engine settles ~2,000/s of them, so the excess must queue in JetStream.
 * Until session 21 it was 15% (a peak 1.5× the closed-loop rate): that is past what the ingress
 * alone accepts over HTTP on these two cores, and the kernel resets connections (docs/BENCHMARKS.md,
 * session 21); `--spike-normal` runs it. Else 100.
 */
const spikeNormal = () => {
  if (values['spike-normal'] !== 'auto') return Number(values['spike-normal']);
  const uniform = lines.get('uniform')?.payments_per_s;
  return uniform ? Math.max(20, Math.round(uniform * 0.1)) : 100;
};
const SPIKE_FACTOR = Number(values['spike-factor']);
/** The fixed-rate scenario ramps up to its rate in this long before the measured DURATION_S. */
const FIXED_RAMP_S = 5;
const SETTLE_TIMEOUT_MS = Number(values['settle-timeout']) * 1000;
/** Wallet float: far more than a run can spend, so no payment is refused for funds. */
const FUNDING_PER_WALLET = 1_000_000_000;
/** Lag samples: each is one consumer-info request per shard, which costs the NATS server a little. */
const LAG_SAMPLE_MS = 500;
const LAG_DRAIN_WAIT_MS_MAX = 120_000;
/** Before each scenario, wait at most this long for the shared machine to be quiet. */
const QUIET_WAIT_MS_MAX = Number(values['quiet-wait']) * 1000;
/** Cores used by processes outside the benchmark above which a line is marked contaminated. */
const FOREIGN_CORES_MAX = 0.2;

const chosen = values.scenarios.split(',').map((s) => s.trim()).filter(Boolean);
for (const s of chosen) if (!(ALL as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}; known: ${ALL.join(', ')}`);
const wants = (s: ScenarioName) => chosen.includes(s);

const T0_MS = Date.now();
const say = (line: string) => process.stderr.write(`[bench +${((Date.now() - T0_MS) / 1000).toFixed(1)} s] ${line}\n`);
const emit = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (x: number, d = 0) => Math.round(x * 10 ** d) / 10 ** d;

// Merchants and secrets are the bench's own, so that the naive stack and peakpay get the same ones.
const stamp = randomBytes(2).toString('hex');
const secret = () => `sk_${randomBytes(18).toString('base64url')}`;
const uniformMerchants: BenchMerchant[] = Array.from({ length: MERCHANTS }, (_, i) => ({
  id: `u${stamp}m${i}`, secret: secret(), accounts: Array.from({ length: WALLETS }, (_, a) => `w${a}`),
}));
const hotMerchants: BenchMerchant[] = [{ id: `h${stamp}`, secret: secret(), accounts: Array.from({ length: HOT_WALLETS }, (_, a) => `w${a}`) }];

type Line = Record<string, unknown> & { scenario: ScenarioName; payments_per_s: number };
const lines = new Map<ScenarioName, Line>();

/** ListenOverflows when the current scenario's load started (see listenOverflows()). */
let overflowsAtStart = 0;
const markLoadStart = () => {
  overflowsAtStart = listenOverflows();
};

function resultLine(scenario: ScenarioName, server: string, r: RunResult, extra: Record<string, unknown>): Line {
  const main = r.latency.create ?? r.latency.capture ?? { count: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const lat = Object.fromEntries(Object.entries(r.latency).map(([k, v]) => [k, { p50: v.p50, p99: v.p99, max: v.max }]));
  return {
    scenario, server, payments_per_s: 0, acknowledged: r.acknowledged, http_requests_per_s: round(r.requests / r.seconds),
    p50_ms: main.p50, p99_ms: main.p99, max_ms: main.max, errors: r.errors, dropped: r.dropped, load_s: r.seconds,
    statuses: r.statuses, ...(Object.keys(lat).length > 1 && { latency_ms: lat }),
    ...(r.errorSamples.length > 0 && { error_samples: r.errorSamples }), listen_overflows: listenOverflows() - overflowsAtStart, ...extra,
  };
}

/** Waits for a quiet machine; says how busy it was when the scenario started. */
async function quiet(scenario: string): Promise<number> {
  const busy = await waitQuiet(QUIET_WAIT_MS_MAX);
  say(`${scenario} … (machine busy ${busy} cores before it)`);
  return busy;
}

/** Foreign load during the scenario: figures of a contaminated line are not comparable. */
function contamination(cpu: Record<string, number>): { foreign_cores: number; contaminated: boolean } {
  const foreign = cpu.other ?? 0;
  return { foreign_cores: foreign, contaminated: foreign > FOREIGN_CORES_MAX };
}

/** AOF rewrites that ran during a scenario (load and settling): said aloud, since they cost CPU. */
function rewritesDuring(scenario: string, before: AofState | null, after: AofState | null): number | null {
  const n = aofRewritesBetween(before, after);
  if (n !== null && n > 0) say(`${scenario}: ${n} Redis AOF rewrite(s) ran meanwhile; redis-server's CPU includes them (redis_aof_rewrites)`);
  return n;
}

/**
 * CPU microseconds per payment of each process group while the load ran: less sensitive to a busy
 * machine than throughput, and what says where the time goes. `ours` leaves out `other` (foreign).
 */
function perPayment(cpu: Record<string, number>, paymentsPerS: number): Record<string, number> {
  if (paymentsPerS <= 0) return {};
  const out: Record<string, number> = {};
  let ours = 0;
  for (const [k, cores] of Object.entries(cpu)) {
    if (k === 'machine' || k === 'other') continue;
    out[k] = Math.round((cores * 1e6) / paymentsPerS);
    ours += out[k];
  }
  out.ours = ours;
  return out;
}

async function stopAll(procs: Proc[]): Promise<void> {
  await Promise.all(procs.map((p) => p.stop()));
}

// ------------------------------------------------------------------------------------------------
// (c) the ceiling and (b) the naive stack: acknowledged = done (the naive stack commits before it answers).

async function runCeiling(env: NodeJS.ProcessEnv): Promise<void> {
  const proc = spawnTs('ceiling', 'loadtest/ceiling/server.ts', env);
  try {
    const port = await listeningPort(proc);
    const ledger: Ledger = { acknowledged: [], unacknowledged: [] };
    const iteration = automaticPayment(new PaymentRequests(), roundRobin(uniformMerchants), ledger);
    await runLoad(`http://127.0.0.1:${port}`, { kind: 'closed', connections: CONNECTIONS, durationS: 2 }, iteration); // JIT warm-up
    const busyBefore = await quiet('ceiling');
    markLoadStart();
    const cpu0 = cpuSnapshot({ ceiling: proc.pid });
    const r = await runLoad(`http://127.0.0.1:${port}`, { kind: 'closed', connections: CONNECTIONS, durationS: DURATION_S }, iteration);
    const cpu = cpuBetween(cpu0, cpuSnapshot({ ceiling: proc.pid }));
    const line = resultLine('ceiling', 'node:http parse + 202', r, { cpu_cores: cpu, busy_before: busyBefore, ...contamination(cpu) });
    line.payments_per_s = round(r.acknowledged / r.seconds);
    line.cpu_us_per_payment = perPayment(cpu, line.payments_per_s);
    lines.set('ceiling', line);
    emit(line);
  } finally {
    await stopAll([proc]);
  }
}

type NaiveRun = { ledger: Ledger; merchants: BenchMerchant[] };

async function runNaive(env: NodeJS.ProcessEnv, databaseUrl: string, pool: pg.Pool, scenario: 'naive-uniform' | 'naive-hot', merchants: BenchMerchant[], runs: NaiveRun[]): Promise<void> {
  const proc = spawnTs(scenario, 'loadtest/naive/server.ts', {
    ...env, NAIVE_DATABASE_URL: databaseUrl, NAIVE_SCHEMA: 'naive', NAIVE_PORT: '0', NAIVE_WORKERS: values['naive-workers'], NAIVE_PG_POOL: values['naive-pool'],
  });
  try {
    const url = `http://127.0.0.1:${await listeningPort(proc)}`;
    const ledger: Ledger = { acknowledged: [], unacknowledged: [] };
    const reqs = new PaymentRequests();
    await runLoad(url, { kind: 'closed', connections: CONNECTIONS, durationS: 2 }, automaticPayment(reqs, roundRobin(merchants), ledger)); // warm-up, checked too
    const busyBefore = await quiet(scenario);
    const before = await countNaiveOrders(pool, 'naive');
    markLoadStart();
    const cpu0 = cpuSnapshot({ naive: proc.pid });
    const r = await runLoad(url, { kind: 'closed', connections: CONNECTIONS, durationS: DURATION_S }, automaticPayment(reqs, roundRobin(merchants), ledger));
    const cpu = cpuBetween(cpu0, cpuSnapshot({ naive: proc.pid }));
    const committed = (await countNaiveOrders(pool, 'naive')) - before;
    const line = resultLine(scenario, `node:http + pg (${values['naive-workers']} workers, pool ${values['naive-pool']} each)`, r, {
      merchants: merchants.length, wallets: merchants.reduce((a, m) => a + m.accounts.length, 0), committed_orders: committed, cpu_cores: cpu,
      busy_before: busyBefore, ...contamination(cpu),
    });
    line.payments_per_s = round(r.acknowledged / r.seconds);
    line.cpu_us_per_payment = perPayment(cpu, line.payments_per_s);
    lines.set(scenario, line);
    emit(line);
    runs.push({ ledger, merchants });
  } finally {
    await stopAll([proc]);
  }
}

// ------------------------------------------------------------------------------------------------
// (a) peakpay: counted once settled in Postgres.

async function waitSettled(p: Peakpay, target: number, t0: number): Promise<{ settledAtMs: number | null; settled: number }> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const n = await settledCount(p);
    if (n >= target) return { settledAtMs: performance.now() - t0, settled: n };
    if (performance.now() > deadline) return { settledAtMs: null, settled: n };
    await sleep(100);
  }
}

/** Until nothing is left in flight (late, unacknowledged payments finish before the next scenario). */
async function waitIdle(p: Peakpay): Promise<void> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const idle = await commandLag(p).then(async (lag) => lag.pending + lag.ackPending === 0 && (await settlementLag(p)) === 0, () => false);
    if (idle) return;
    await sleep(250);
  }
  say('peakpay still busy after the settle timeout; going on');
}

async function runPeakpay(
  p: Peakpay, scenario: Exclude<ScenarioName, 'ceiling' | 'naive-uniform' | 'naive-hot' | 'spike'>, load: Load, iteration: Iteration, ledger: Ledger, extra: Record<string, unknown>,
  measureFromS = 0,
): Promise<void> {
  const busyBefore = await quiet(scenario);
  const base = await settledCount(p);
  const ackedBefore = ledger.acknowledged.length;
  const pids = Object.fromEntries(p.procs.map((x) => [x.name, x.pid]));
  const aof0 = await aofState(p.redis);
  const yield0 = await yieldCounters(p);
  markLoadStart();
  const cpu0 = cpuSnapshot(pids);
  const t0 = performance.now();
  const r = await runLoad(p.baseUrl, load, iteration, { measureFromS });
  const cpu = cpuBetween(cpu0, cpuSnapshot(pids));
  const acked = ledger.acknowledged.length - ackedBefore;
  const { settledAtMs, settled } = await waitSettled(p, base + acked, t0);
  const line = resultLine(scenario, 'peakpay (ingress + engine + settlement + webhooks)', r, {
    settled: settled - base, settled_s: settledAtMs === null ? null : round(settledAtMs / 1000, 2),
    settle_after_load_s: settledAtMs === null ? null : round(settledAtMs / 1000 - r.seconds, 2), cpu_cores_during_load: cpu, busy_before: busyBefore, ...contamination(cpu),
    redis_aof_rewrites: rewritesDuring(scenario, aof0, await aofState(p.redis)),
    // Why answers were 202 (front door, backlog, deadline) and how long the engine yielded, as the processes count them.
    ...yieldCountersBetween(yield0, await yieldCounters(p)), ...extra,
    // An open load: each second's [t, started, acknowledged, p99 ms], to see when a queue built up.
    ...(r.warmupLatency && {
      warmup_s: measureFromS, warmup_p50_ms: r.warmupLatency.p50, warmup_p99_ms: r.warmupLatency.p99,
      // Answered (201/202) a second while at the rate, before settling: payments_per_s spans the ramp too.
      acknowledged_per_s_at_rate: round(r.perSecond.filter((x) => x.t >= measureFromS).reduce((a, x) => a + x.acknowledged, 0) / Math.max(1, r.seconds - measureFromS)),
    }),
    ...(load.kind === 'open' && { per_second: r.perSecond.map((x) => [x.t, x.started, x.acknowledged, x.p99]) }),
  });
  line.payments_per_s = settledAtMs === null ? 0 : round(acked / (settledAtMs / 1000));
  line.cpu_us_per_payment = perPayment(cpu, r.acknowledged / r.seconds);
  lines.set(scenario, line);
  emit(line);
  await waitIdle(p);
}

async function runSpike(p: Peakpay, ledger: Ledger): Promise<void> {
  const SPIKE_NORMAL = spikeNormal();
  const stages = rehearsalStages(SPIKE_NORMAL, SPIKE_FACTOR, { warmS: 10, rampS: 2, spikeS: Math.max(10, Math.round(DURATION_S / 2)), afterS: 20 });
  const spikeEnd = spikeEndS(stages);
  const warmEnd = stages[0]?.durationS ?? 0;
  const busyBefore = await quiet('spike');
  const samples: { t: number; lag: number; settlement: number }[] = [];
  const t0 = performance.now();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const t = (performance.now() - t0) / 1000;
      try {
        const [lag, settlement] = await Promise.all([commandLag(p), settlementLag(p)]);
        samples.push({ t: round(t, 1), lag: lag.pending + lag.ackPending, settlement });
      } catch (err) {
        say(`lag sample at ${round(t, 1)} s failed: ${(err as Error).message}`); // a busy NATS server; the next one may answer
      }
      await sleep(LAG_SAMPLE_MS);
    }
  })();
  const base = await settledCount(p);
  const ackedBefore = ledger.acknowledged.length;
  const pids = Object.fromEntries(p.procs.map((x) => [x.name, x.pid]));
  const aof0 = await aofState(p.redis);
  const yield0 = await yieldCounters(p);
  markLoadStart();
  const cpu0 = cpuSnapshot(pids);
  const r = await runLoad(p.baseUrl, { kind: 'open', startRate: SPIKE_NORMAL, stages, inFlightMax: Math.max(2000, SPIKE_NORMAL * SPIKE_FACTOR * 3) },
    automaticPayment(new PaymentRequests(), roundRobin(uniformMerchants), ledger));
  const cpu = cpuBetween(cpu0, cpuSnapshot(pids));
  // Drained: the lag is back to what it was under normal traffic before the spike.
  const warm = samples.filter((s) => s.t < warmEnd).map((s) => s.lag);
  const normalLag = Math.max(50, ...warm);
  const deadline = performance.now() + LAG_DRAIN_WAIT_MS_MAX;
  const drainedAt = () => samples.find((s) => s.t >= spikeEnd && s.lag <= normalLag)?.t ?? null;
  while (drainedAt() === null && performance.now() < deadline) await sleep(LAG_SAMPLE_MS);
  sampling = false;
  await sampler;
  const acked = ledger.acknowledged.length - ackedBefore;
  const { settledAtMs, settled } = await waitSettled(p, base + acked, t0);
  const drained = drainedAt();
  const duringSpike = r.perSecond.filter((s) => s.t >= warmEnd && s.t < spikeEnd);
  const line = resultLine('spike', 'peakpay (ingress + engine + settlement + webhooks)', r, {
    normal_per_s: SPIKE_NORMAL, peak_per_s: SPIKE_NORMAL * SPIKE_FACTOR, stages, spike_end_s: spikeEnd,
    offered: r.iterations + r.dropped, settled: settled - base, settled_s: settledAtMs === null ? null : round(settledAtMs / 1000, 2),
    acknowledged_per_s_during_spike: duringSpike.length ? round(duringSpike.reduce((a, s) => a + s.acknowledged, 0) / duringSpike.length) : 0,
    p99_ms_during_spike_worst_second: Math.max(0, ...duringSpike.map((s) => s.p99)),
    lag_max: Math.max(0, ...samples.map((s) => s.lag)), lag_normal: normalLag, settlement_lag_max: Math.max(0, ...samples.map((s) => s.settlement)),
    lag_drain_s: drained === null ? null : round(drained - spikeEnd, 1),
    lag_series: samples.filter((_, i) => i % 2 === 0).map((s) => [s.t, s.lag, s.settlement]),
    // [second, requests started, acknowledged, p99 ms of the requests started in that second]
    per_second: r.perSecond.map((s) => [s.t, s.started, s.acknowledged, Math.round(s.p99)]),
    cpu_cores_during_load: cpu, busy_before: busyBefore, ...contamination(cpu),
    redis_aof_rewrites: rewritesDuring('spike', aof0, await aofState(p.redis)),
    ...yieldCountersBetween(yield0, await yieldCounters(p)),
  });
  line.payments_per_s = settledAtMs === null ? 0 : round(acked / (settledAtMs / 1000));
  lines.set('spike', line);
  emit(line);
  await waitIdle(p);
}

// ------------------------------------------------------------------------------------------------

// However the bench ends (an error nobody awaited, Ctrl-C), the servers it started end with it.
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => process.exit(130));
process.on('unhandledRejection', (err) => {
  console.error(err);
  process.exit(1);
});

const stack = await stackUp({ log: (l) => say(`stack: ${l}`) });
const env = localEnv({ ...process.env, NATS_URL: stack.natsUrl, REDIS_URL: stack.redisUrl, DATABASE_URL: stack.databaseUrl });
let naiveReport: LedgerReport | null = null;
let peakpayReport: LedgerReport | null = null;
let exitCode = 0;
try {
  say(`${cpus().length} cores (${cpus()[0]?.model ?? '?'}); scenarios ${chosen.join(', ')}; ${DURATION_S} s each; ${CONNECTIONS} connections`);
  const databaseUrl = await freshDatabase(stack.databaseUrl, values.database);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  try {
    if (wants('ceiling')) {
      await runCeiling(env);
    }
    if (wants('naive-uniform') || wants('naive-hot')) {
      await createNaiveSchema(pool, 'naive');
      await seedNaive(pool, 'naive', [...uniformMerchants, ...hotMerchants], FUNDING_PER_WALLET);
      const runs: NaiveRun[] = [];
      for (const s of ['naive-uniform', 'naive-hot'] as const) {
        if (!wants(s)) continue;
        await runNaive(env, databaseUrl, pool, s, s === 'naive-hot' ? hotMerchants : uniformMerchants, runs);
      }
      const all = [...uniformMerchants, ...hotMerchants];
      naiveReport = checkLedger({
        acknowledged: runs.flatMap((r) => r.ledger.acknowledged), unacknowledged: runs.flatMap((r) => r.ledger.unacknowledged),
        funding: new Map(all.flatMap((m) => m.accounts.map((a) => [walletKey(m.id, a), FUNDING_PER_WALLET] as const))), merchants: all.map((m) => m.id),
      }, await readNaiveLedger(pool, 'naive'));
    }
  } finally {
    await pool.end();
  }

  const peakpayScenarios = (['uniform', 'hot', 'fixed', 'manual', 'spike'] as const).filter(wants);
  if (peakpayScenarios.length > 0) {
    say('peakpay: starting ingress, engine, settlement …');
    const p = await startPeakpay(env, { databaseUrl, shards: Number(values.shards), ...(values.profile && { cpuProfDir: values.profile }) });
    try {
      const merchants = [...(peakpayScenarios.some((s) => s !== 'hot') ? uniformMerchants : []), ...(wants('hot') ? hotMerchants : [])];
      say(`peakpay: registering ${merchants.length} merchants, funding ${merchants.reduce((a, m) => a + m.accounts.length, 0)} wallets …`);
      await registerMerchants(p, merchants, FUNDING_PER_WALLET);
      const ledger: Ledger = { acknowledged: [], unacknowledged: [] };
      const reqs = new PaymentRequests();
      // Warm-up (JIT, connection pools, merchant caches of the ingress): checked by the ledger too.
      await runLoad(p.baseUrl, { kind: 'closed', connections: CONNECTIONS, durationS: 3 }, automaticPayment(reqs, roundRobin(merchants), ledger));
      await engineIdle(p);
      const closed: Load = { kind: 'closed', connections: CONNECTIONS, durationS: DURATION_S };
      for (const s of peakpayScenarios) {
        if (s === 'uniform') await runPeakpay(p, s, closed, automaticPayment(reqs, roundRobin(uniformMerchants), ledger), ledger, { merchants: MERCHANTS, wallets: MERCHANTS * WALLETS });
        if (s === 'hot') await runPeakpay(p, s, closed, automaticPayment(reqs, roundRobin(hotMerchants), ledger), ledger, { merchants: 1, wallets: HOT_WALLETS });
        if (s === 'manual') await runPeakpay(p, s, closed, manualPayment(reqs, roundRobin(uniformMerchants), ledger), ledger, { merchants: MERCHANTS, flow: 'hold, then capture' });
        if (s === 'fixed') {
          // From a tenth of the rate up to it in FIXED_RAMP_S (its connections opened meanwhile, as
          // k6's ramping-arrival-rate does), then DURATION_S at the rate: p50/p99 are of that part.
          const stages = [{ durationS: FIXED_RAMP_S, target: RATE }, { durationS: DURATION_S, target: RATE }];
          await runPeakpay(p, s, { kind: 'open', startRate: Math.ceil(RATE / 10), stages, inFlightMax: Math.max(1000, RATE) },
            automaticPayment(reqs, roundRobin(uniformMerchants), ledger), ledger, { merchants: MERCHANTS, offered_per_s: RATE }, FIXED_RAMP_S);
        }
        if (s === 'spike') await runSpike(p, ledger);
      }
      // Quiesce before the check: stop the ingress first (after an overload it may still be working
      // through requests whose clients gave up long ago), then let engine and settlement drain.
      say('ledger check: stopping the ingress, draining …');
      await p.procs.find((x) => x.name === 'ingress')?.stop();
      await waitIdle(p);
      peakpayReport = checkLedger({
        acknowledged: ledger.acknowledged, unacknowledged: ledger.unacknowledged,
        funding: new Map(merchants.flatMap((m) => m.accounts.map((a) => [walletKey(m.id, a), FUNDING_PER_WALLET] as const))), merchants: merchants.map((m) => m.id),
      }, await readPeakpayLedger(p, merchants));
      say('ledger checked');
    } finally {
      await p.stop();
      say('peakpay stopped');
    }
  }

  // Ratios and the targets of issue 5.
  const pps = (s: ScenarioName) => lines.get(s)?.payments_per_s;
  const ratio = (a?: number, b?: number) => (a !== undefined && b ? round(a / b, 2) : null);
  const ratios = {
    uniform_vs_naive_uniform: ratio(pps('uniform'), pps('naive-uniform')),
    hot_vs_naive_hot: ratio(pps('hot'), pps('naive-hot')),
    uniform_vs_ceiling: ratio(pps('uniform'), pps('ceiling')),
    hot_vs_ceiling: ratio(pps('hot'), pps('ceiling')),
    manual_vs_ceiling: ratio(pps('manual'), pps('ceiling')),
    hot_vs_uniform: ratio(pps('hot'), pps('uniform')),
    naive_hot_vs_naive_uniform: ratio(pps('naive-hot'), pps('naive-uniform')),
  };
  const errors = [...lines.values()].reduce((a, l) => a + Number(l.errors) + Number(l.dropped), 0);
  const spike = lines.get('spike');
  const targets = {
    uniform_ge_3000_per_s: pps('uniform') === undefined ? null : (pps('uniform') as number) >= 3000,
    hot_ge_2x_naive_hot: ratios.hot_vs_naive_hot === null ? null : ratios.hot_vs_naive_hot >= 2,
    hot_ge_0_8x_uniform: ratios.hot_vs_uniform === null ? null : ratios.hot_vs_uniform >= 0.8,
    p99_le_100_ms_at_fixed_rate: lines.has('fixed') ? Number(lines.get('fixed')?.p99_ms) <= 100 : null,
    zero_errors: errors === 0,
    ledger_exact: (naiveReport?.ok ?? true) && (peakpayReport?.ok ?? true),
    spike_drains_within_60_s: spike ? spike.lag_drain_s !== null && Number(spike.lag_drain_s) <= 60 : null,
  };
  emit({ summary: true, cores: cpus().length, duration_s: DURATION_S, connections: CONNECTIONS, payments_per_s: Object.fromEntries([...lines].map(([k, l]) => [k, l.payments_per_s])), ratios, targets, ledger: { peakpay: peakpayReport, naive: naiveReport } });
  if (!targets.ledger_exact) exitCode = 1;
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  await stackDown(stack.started);
}
process.exit(exitCode);
