// The ingress alone over HTTP, beside a bare node:http server, in one run with one load generator:
// prints one JSON line per target (req/s, p50, p99, errors, non-2xx, CPU per process) and a final
// line with the ratio ingress / bare (target ≥ 0.6), and the ratio's upper bound on this machine:
// what the cores would allow if the ingress process cost nothing and only its dependencies (NATS,
// Redis, the stub engine) and the load generator ran.
//
//   npm run bench:http -- [--connections 100] [--duration 10] [--warmup 3] [--merchants 100] [--only bare|ingress]
//   BENCH_CPU_PROF=<dir> npm run bench:http       also writes a V8 CPU profile of the ingress there
//
// Targets, each in its own child process, started only while it is measured:
//   bare     loadtest/http-bare.ts: parses the same JSON body, answers 202.
//   ingress  ingress/main.ts, unchanged, on the real NATS (JetStream publish + PubAck), Redis
//            (nonce, idempotency claim and record) and Postgres (merchant, cached), with the stub
//            engine loadtest/http-stub-engine.ts answering every command at once (a core-NATS
//            subscriber on <ns>.cmd.>, so no engine work competes for the cores).
// The load generator is autocannon's API in this process; setupRequest signs every request with
// a fresh nonce, timestamp, Idempotency-Key and out_trade_no, as a storefront would.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../engine/config.ts';
import { connectNats, pgPool } from '../engine/infra.ts';
import { createMerchant } from '../engine/merchants/index.ts';
import { authorizationHeader, newNonce } from '../ingress/sdk/index.ts';
import { localEnv, PROJECT_ROOT } from '../scripts/local-env.ts';
import { NODE_FLAGS } from '../scripts/node-flags.ts';
import { stackDown, stackUp } from '../scripts/stack.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '100' },
    pipelining: { type: 'string', default: '1' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    merchants: { type: 'string', default: '100' },
    only: { type: 'string', default: '' },
  },
});
const CONNECTIONS = Number(values.connections);
const PIPELINING = Number(values.pipelining);
const DURATION_S = Number(values.duration);
const WARMUP_S = Number(values.warmup);
const MERCHANTS = Number(values.merchants);
const RATIO_TARGET = 0.6;
/** Before each measurement, wait (at most this long) for the shared machine to be this quiet. */
const QUIET_WAIT_MS_MAX = 120_000;
const QUIET_BUSY_PCT_MAX = 25;
const CHILD_READY_MS_MAX = 30_000;
const CHILD_STOP_MS_MAX = 20_000;
const CLK_TCK = 100; // Linux USER_HZ: /proc times are in 1/100 s on every kernel we run on
const REDIS_SCAN_COUNT = 1_000;
const RATE_LIMIT_PER_S = 1_000_000;

type Merchant = { id: string; secret: string };
type Child = { name: string; pid: number; stop: () => Promise<void> };

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc, to see where the time goes and how much of it was someone else's.

function machineTicks(): { busy: number; total: number } {
  const cpu = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

function processTicks(pid: number): number {
  try {
    // Fields after the ")" of comm: state is field 3, utime 14, stime 15.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0; // the process is gone
  }
}

/** Read and write system calls a process has made so far (/proc/<pid>/io); a loopback write wakes its reader. */
function processSyscalls(pid: number): number {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    return Number(/syscr: (\d+)/.exec(io)?.[1] ?? 0) + Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function pidsByName(comm: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function waitForQuietMachine(): Promise<{ waitedS: number; busyPct: number }> {
  const t0 = Date.now();
  for (;;) {
    const a = machineTicks();
    await new Promise((r) => setTimeout(r, 1_000));
    const b = machineTicks();
    const busyPct = (100 * (b.busy - a.busy)) / Math.max(1, b.total - a.total);
    if (busyPct < QUIET_BUSY_PCT_MAX || Date.now() - t0 > QUIET_WAIT_MS_MAX) return { waitedS: Math.round((Date.now() - t0) / 1000), busyPct: Math.round(busyPct) };
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes.

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Starts `node <NODE_FLAGS> --import tsx <entry>` (the bare server too: the same flags on both
 * sides); ready once `readyLine` accepts a line of its stdout, or (for processes that print
 * nothing) once `readyProbe` resolves true.
 */
async function startChild(
  name: string, entry: string, env: NodeJS.ProcessEnv,
  ready: { line?: (line: string) => boolean; probe?: () => Promise<boolean> }, nodeFlags: string[] = [],
): Promise<Child> {
  const child: ChildProcess = spawn(process.execPath, [...NODE_FLAGS, ...nodeFlags, '--import', 'tsx', join(PROJECT_ROOT, entry)], {
    env, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((r) => child.once('exit', (code) => {
    exitCode = code;
    r();
  }));
  const stop = async () => {
    if (exitCode !== undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_STOP_MS_MAX);
    await exited;
    clearTimeout(timer);
  };
  let sawLine = false;
  let buf = '';
  child.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (ready.line?.(line)) sawLine = true;
    }
  });
  const deadline = Date.now() + CHILD_READY_MS_MAX;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`${name} exited (${exitCode}) before it was ready`);
    if (sawLine || (ready.probe && (await ready.probe()))) return { name, pid: child.pid as number, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} not ready within ${CHILD_READY_MS_MAX} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------------
// Load.

/** A storefront's payment request, signed afresh for every request autocannon sends. */
function signedPaymentRequests(merchants: Merchant[]): autocannon.Request[] {
  let i = 0;
  return [{
    method: 'POST',
    path: '/v1/payments',
    setupRequest: (req) => {
      const m = merchants[i++ % merchants.length] as Merchant;
      const body = JSON.stringify({
        out_trade_no: `B${randomUUID().replaceAll('-', '')}`, amount: 1999, currency: 'CNY', method: 'balance', account_id: 'acc_bench',
        capture: 'manual', scene: 'pc', subject: 'Game card 100', buyer: { user_id: 'u_9', device_id: 'd_77', ip: '203.0.113.9' },
        metadata: { sku: 'card-100' },
      });
      const authorization = authorizationHeader(m.id, m.secret, {
        method: 'POST', pathWithQuery: '/v1/payments', body, timestampS: Math.floor(Date.now() / 1000), nonce: newNonce(),
      });
      return { ...req, body, headers: { ...req.headers, 'content-type': 'application/json', 'idempotency-key': randomUUID(), authorization } };
    },
  }];
}

type Line = {
  target: string; req_s: number; p50_ms: number; p99_ms: number; errors: number; timeouts: number; non_2xx: number;
  statuses: Record<string, number>; requests: number; duration_s: number;
  cpu_pct: Record<string, number>; cpu_us_per_req: Record<string, number>; syscalls_per_req: Record<string, number>; machine_busy_pct: number; pre_run_busy_pct: number; waited_s: number;
};

async function measure(target: string, url: string, merchants: Merchant[], procs: Record<string, number[]>): Promise<Line> {
  const opts = { url, connections: CONNECTIONS, pipelining: PIPELINING, requests: signedPaymentRequests(merchants) };
  await autocannon({ ...opts, duration: WARMUP_S }); // JIT, merchant cache, connection pools
  const quiet = await waitForQuietMachine();
  const ticks0 = Object.fromEntries(Object.entries(procs).map(([k, pids]) => [k, pids.reduce((a, p) => a + processTicks(p), 0)]));
  const sys0 = Object.fromEntries(Object.entries(procs).map(([k, pids]) => [k, pids.reduce((a, p) => a + processSyscalls(p), 0)]));
  const m0 = machineTicks();
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await autocannon({ ...opts, duration: DURATION_S });
  const wallS = (performance.now() - t0) / 1000;
  const self = process.cpuUsage(self0);
  const m1 = machineTicks();
  const pct = (ticks: number) => Math.round((100 * ticks) / CLK_TCK / wallS);
  const cpu: Record<string, number> = {};
  const cpuUsPerReq: Record<string, number> = {};
  const perReq = (ticks: number) => Math.round((ticks / CLK_TCK) * 1e6 / Math.max(1, r.requests.total));
  const syscallsPerReq: Record<string, number> = {};
  let accounted = 0;
  for (const [k, pids] of Object.entries(procs)) {
    const t = pids.reduce((a, p) => a + processTicks(p), 0) - (ticks0[k] ?? 0);
    cpu[k] = pct(t);
    cpuUsPerReq[k] = perReq(t);
    accounted += t;
    const calls = pids.reduce((a, p) => a + processSyscalls(p), 0) - (sys0[k] ?? 0);
    syscallsPerReq[k] = Math.round((10 * calls) / Math.max(1, r.requests.total)) / 10;
  }
  const selfTicks = ((self.user + self.system) / 1e6) * CLK_TCK;
  cpu.loadgen = pct(selfTicks);
  cpuUsPerReq.loadgen = perReq(selfTicks);
  // Everything else on the machine: other people's work on this shared machine, and the kernel.
  cpu.other = Math.max(0, pct(m1.busy - m0.busy - accounted - selfTicks));
  const statuses = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([code, s]) => [code, s.count ?? 0]));
  return {
    target, req_s: Math.round(r.requests.average), p50_ms: r.latency.p50, p99_ms: r.latency.p99, errors: r.errors, timeouts: r.timeouts,
    non_2xx: r.non2xx, statuses, requests: r.requests.total, duration_s: r.duration, cpu_pct: cpu, cpu_us_per_req: cpuUsPerReq, syscalls_per_req: syscallsPerReq,
    machine_busy_pct: Math.round((100 * (m1.busy - m0.busy)) / Math.max(1, m1.total - m0.total)), pre_run_busy_pct: quiet.busyPct, waited_s: quiet.waitedS,
  };
}

// ---------------------------------------------------------------------------------------------

async function benchBare(merchants: Merchant[]): Promise<Line> {
  let port = 0;
  const bare = await startChild('bare', 'loadtest/http-bare.ts', { ...process.env, BARE_PORT: '0' }, {
    line: (line) => {
      port = Number(/^\{"listening":(\d+)\}$/.exec(line)?.[1] ?? 0);
      return port > 0;
    },
  });
  try {
    return await measure('bare node:http', `http://127.0.0.1:${port}`, merchants, { server: [bare.pid] });
  } finally {
    await bare.stop();
  }
}

async function benchIngress(config: Config, env: NodeJS.ProcessEnv, merchants: Merchant[]): Promise<Line> {
  const port = await freePort();
  // Rate limits far above what one machine can send: the limiter's Redis calls are measured, its 429s are not.
  const childEnv = {
    ...env, PEAKPAY_NAMESPACE: config.namespace, PEAKPAY_HTTP_PORT: String(port), PEAKPAY_LOG_LEVEL: 'warn',
    PEAKPAY_RATE_LIMIT_IP_PER_S: String(RATE_LIMIT_PER_S), PEAKPAY_RATE_LIMIT_IP_BURST: String(RATE_LIMIT_PER_S),
    PEAKPAY_RATE_LIMIT_MERCHANT_PER_S: String(RATE_LIMIT_PER_S), PEAKPAY_RATE_LIMIT_MERCHANT_BURST: String(RATE_LIMIT_PER_S),
  };
  const stub = await startChild('stub engine', 'loadtest/http-stub-engine.ts', childEnv, { line: (l) => l.includes('"ready"') });
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const base = `http://127.0.0.1:${port}`;
  try {
    const ingress = await startChild('ingress', 'ingress/main.ts', childEnv, {
      probe: () => fetch(`${base}/healthz`).then((r) => r.ok, () => false),
    }, prof);
    try {
      return await measure('ingress', base, merchants, {
        server: [ingress.pid], stub_engine: [stub.pid], nats: pidsByName('nats-server'), redis: pidsByName('redis-server'),
      });
    } finally {
      await ingress.stop();
    }
  } finally {
    await stub.stop();
  }
}

/** Deletes what the ingress run left: the namespace's streams and its Redis keys (nonces, idempotency records for 24 h). */
async function cleanUp(config: Config): Promise<void> {
  const nc = await connectNats(config, 'bench-http-cleanup');
  const jsm = await jetstreamManager(nc);
  const prefix = `${config.namespace.toUpperCase()}_`;
  for await (const name of jsm.streams.names()) if (name.startsWith(prefix)) await jsm.streams.delete(name).catch(() => undefined);
  await nc.close();
  const redis = new Redis(config.redisUrl);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.namespace}:*`, 'COUNT', REDIS_SCAN_COUNT);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}

const stack = await stackUp({ log: (l) => console.error(`[stack] ${l}`) });
const env = localEnv({ ...process.env, NATS_URL: stack.natsUrl, REDIS_URL: stack.redisUrl, DATABASE_URL: stack.databaseUrl });
const config = loadConfig({ ...env, PEAKPAY_NAMESPACE: `h${randomBytes(4).toString('hex')}` });
const pool = pgPool(config, 2);
const merchants: Merchant[] = [];
const stamp = Date.now().toString(36);
try {
  for (let i = 0; i < MERCHANTS; i++) merchants.push(await createMerchant(pool, config.masterKey, { id: `mbh${stamp}${i}`, name: 'bench:http' }));
  console.error(`# bench:http  ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), autocannon -c ${CONNECTIONS} -p ${PIPELINING}, ` +
    `${WARMUP_S} s warm-up + ${DURATION_S} s per target, ${MERCHANTS} merchants, namespace ${config.namespace}`);
  const only = values.only;
  const bare = only === '' || only === 'bare' ? await benchBare(merchants) : null;
  if (bare) console.log(JSON.stringify(bare));
  const ingress = only === '' || only === 'ingress' ? await benchIngress(config, env, merchants) : null;
  if (ingress) console.log(JSON.stringify(ingress));
  if (bare && ingress) {
    const ratio = Math.round((100 * ingress.req_s) / bare.req_s) / 100;
    // What the ingress's dependencies alone allow: were the ingress process free, the machine's
    // cores would still have to run nats-server, Redis, the stub and the load generator for each
    // request. The ratio can never exceed this on this machine, however lean the ingress.
    const othersUs = Object.entries(ingress.cpu_us_per_req).filter(([k]) => k !== 'server').reduce((a, [, us]) => a + us, 0);
    const boundReqS = (cpus().length * 1e6) / Math.max(1, othersUs);
    const bound = Math.round((100 * boundReqS) / bare.req_s) / 100;
    console.log(JSON.stringify({
      ratio_ingress_over_bare: ratio, target: RATIO_TARGET, met: ratio >= RATIO_TARGET,
      dependencies_us_per_req: othersUs, ratio_bound_if_the_ingress_cost_nothing: bound,
    }));
  }
} finally {
  await cleanUp(config).catch((err: unknown) => console.error('clean-up failed:', err));
  await pool.query('DELETE FROM merchants WHERE id = ANY($1)', [merchants.map((m) => m.id)]).catch((err: unknown) => console.error('merchant clean-up failed:', err));
  await pool.end();
  await stackDown(stack.started);
}
