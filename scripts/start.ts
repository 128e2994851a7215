// `npm start`: the whole thing, locally, in the foreground.
//   1. the stack (nats-server with JetStream, redis-server with AOF, PostgreSQL) — reused if running
//   2. migrations, JetStream streams (the webhook streams too)
//   3. the five channel sandboxes (unless PEAKPAY_CHANNELS_FILE names real credentials), their
//      settings in .data/channels.json and their control URLs in .data/sandboxes.json
//   4. engine, settlement consumer, webhooks and ingress as four processes
//   5. a demo merchant with a funded wallet, written to .data/demo-merchant.json
// Ctrl-C stops the three processes, then exactly the servers this run started.
import { spawn, type ChildProcess } from 'node:child_process';
import { SANDBOX_BASE_PORT_DEFAULT, startSandboxes } from '../engine/channels/sandboxes.ts';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { loadConfigOrExit } from '../engine/config.ts';
import { connectNats } from '../engine/infra.ts';
import { findMerchant, createMerchant } from '../engine/merchants/index.ts';
import { names } from '../engine/protocol/subjects.ts';
import { ensureStreams, ensureWebhookStreams } from '../engine/streams.ts';
import { DATA_DIR, PROJECT_ROOT, localEnv } from './local-env.ts';
import { NODE_FLAGS } from './node-flags.ts';
import { migrate } from './migrate.ts';
import { createAccount, creditAccount, opsSession } from './ops.ts';
import { stackDown, stackUp } from './stack.ts';

const DEMO_FILE = join(DATA_DIR, 'demo-merchant.json');
const CHANNELS_FILE = join(DATA_DIR, 'channels.json');
const SANDBOXES_FILE = join(DATA_DIR, 'sandboxes.json');
const DEMO_ACCOUNT = 'acc_demo';
const DEMO_FLOAT_FEN = 1_000_000; // 10,000.00 CNY
const READY_WAIT_MS_MAX = 30_000;
const CHILD_STOP_MS_MAX = 10_000;

const say = (line: string) => console.log(`[peakpay] ${line}`);

const stack = await stackUp({ log: say });
const env = localEnv({ ...process.env, NATS_URL: stack.natsUrl, REDIS_URL: stack.redisUrl, DATABASE_URL: stack.databaseUrl });
const config = loadConfigOrExit(env);
await migrate(config.databaseUrl, say);
{
  const nc = await connectNats(config, 'start');
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, names(config.namespace, config.shardCount));
  await ensureWebhookStreams(jsm, names(config.namespace, config.shardCount));
  await nc.close();
}

// Channels: the local sandboxes (each speaking its channel's real signing scheme) unless
// PEAKPAY_CHANNELS_FILE names a settings file with real credentials (docs/CHANNELS.md).
const sandboxes = env.PEAKPAY_CHANNELS_FILE
  ? null
  : await startSandboxes({
    publicUrl: `http://${config.httpHost}:${config.httpPort}`,
    basePort: Number(env.PEAKPAY_SANDBOX_BASE_PORT ?? SANDBOX_BASE_PORT_DEFAULT),
  });
if (sandboxes) {
  env.PEAKPAY_CHANNELS_FILE = CHANNELS_FILE;
  // Holds the sandboxes' generated keys: readable by this user only.
  writeFileSync(CHANNELS_FILE, `${JSON.stringify(sandboxes.settings, null, 2)}\n`, { mode: 0o600 });
  writeFileSync(SANDBOXES_FILE, `${JSON.stringify(sandboxes.urls, null, 2)}\n`);
  say(`channel sandboxes: ${Object.entries(sandboxes.urls).map(([c, u]) => `${c} ${u}`).join(', ')} (control: POST <url>/__sandbox/faults | /__sandbox/pay)`);
}

const children = new Map<string, ChildProcess>();
let stopping = false;

/**
 * Each service leads a session of its own (detached), as the stack's servers do: on Linux the
 * scheduler divides the CPU between sessions first (autogroups), so services sharing this script's
 * session would share one session's share, and a background niceness would rank them only against
 * each other (engine/infra.ts, setNiceness). So Ctrl-C at the terminal reaches this script alone,
 * which stops them (shutdown, below).
 */
function run(name: string, entry: string, extraEnv: NodeJS.ProcessEnv = {}): void {
  const child = spawn(process.execPath, [...NODE_FLAGS, '--import', 'tsx', join(PROJECT_ROOT, entry)], {
    env: { ...env, ...extraEnv }, stdio: ['ignore', 'inherit', 'inherit'], detached: true,
  });
  children.set(name, child);
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping) {
      say(`${name} exited (${signal ?? code}); stopping everything`);
      void shutdown(1);
    }
  });
}

async function shutdown(exitCode: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  say('stopping ingress, engine, settlement, webhooks …');
  const exits = [...children.entries()].map(([name, child]) => new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      say(`${name} did not stop in time; killing it`);
      child.kill('SIGKILL');
    }, CHILD_STOP_MS_MAX);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  }));
  await Promise.all(exits);
  await sandboxes?.stop();
  await stackDown(stack.started, { log: say });
  process.exit(exitCode);
}
// SIGHUP: the terminal closed. The services are in sessions of their own, so it reaches this script alone.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void shutdown(0));
// However this script ends otherwise (an error nobody caught), the services end with it.
process.on('exit', () => {
  for (const child of children.values()) child.kill('SIGTERM');
});

// Everything shares this machine's cores: the background processes yield to the ingress, so that a
// spike is accepted first (into JetStream) and worked off after (docs/ARCHITECTURE.md, "Spikes wait in JetStream").
const backgroundNice = env.PEAKPAY_BACKGROUND_NICE ?? '8';
// And the engine paces its pulls while the ingress is saturated and falling behind its connections,
// which then answers 202 at the PubAck (the setting turns on both; docs/BENCHMARKS.md, session 19).
const engineYield = env.PEAKPAY_ENGINE_YIELD_ELU_PERCENT ?? '95';
run('engine', 'engine/main.ts', { PEAKPAY_METRICS_PORT: env.PEAKPAY_ENGINE_METRICS_PORT ?? '9464', PEAKPAY_BACKGROUND_NICE: backgroundNice, PEAKPAY_ENGINE_YIELD_ELU_PERCENT: engineYield });
run('settlement', 'engine/settlement/main.ts', { PEAKPAY_METRICS_PORT: env.PEAKPAY_SETTLEMENT_METRICS_PORT ?? '9465', PEAKPAY_BACKGROUND_NICE: backgroundNice });
// Local receivers (a shop on localhost) are the point of a demo, so private notify_urls are allowed here.
run('webhooks', 'engine/webhooks/main.ts', {
  PEAKPAY_METRICS_PORT: env.PEAKPAY_WEBHOOKS_METRICS_PORT ?? '9466',
  PEAKPAY_WEBHOOK_ALLOW_PRIVATE: env.PEAKPAY_WEBHOOK_ALLOW_PRIVATE ?? 'true',
  PEAKPAY_BACKGROUND_NICE: backgroundNice,
});
run('ingress', 'ingress/main.ts', { PEAKPAY_ENGINE_YIELD_ELU_PERCENT: engineYield });

const baseUrl = `http://${config.httpHost}:${config.httpPort}`;
const deadline = Date.now() + READY_WAIT_MS_MAX;
for (;;) {
  const ok = await fetch(`${baseUrl}/readyz`).then((r) => r.ok, () => false);
  if (ok) break;
  if (Date.now() > deadline) {
    say(`ingress not ready after ${READY_WAIT_MS_MAX} ms`);
    await shutdown(1);
  }
  await new Promise((r) => setTimeout(r, 200));
}

// The demo merchant: reused across restarts while it exists in the database.
const session = await opsSession(config);
let demo: { base_url: string; merchant_id: string; secret: string; account_id: string } | null = null;
if (existsSync(DEMO_FILE)) {
  const saved = JSON.parse(readFileSync(DEMO_FILE, 'utf8')) as { merchant_id: string; secret: string };
  const m = await findMerchant(session.pool, config.masterKey, saved.merchant_id).catch(() => null);
  if (m && m.secret === saved.secret) demo = { base_url: baseUrl, merchant_id: m.id, secret: m.secret, account_id: DEMO_ACCOUNT };
}
if (!demo) {
  const m = await createMerchant(session.pool, config.masterKey, { name: 'Demo card shop' });
  await createAccount(session.client, m.id, DEMO_ACCOUNT, 'CNY');
  await creditAccount(session.client, m.id, DEMO_ACCOUNT, DEMO_FLOAT_FEN, 'CNY', 'demo float');
  demo = { base_url: baseUrl, merchant_id: m.id, secret: m.secret, account_id: DEMO_ACCOUNT };
  writeFileSync(DEMO_FILE, `${JSON.stringify(demo, null, 2)}\n`, { mode: 0o600 });
}
await session.close();

say(`ready: ${baseUrl}   (openapi: ${baseUrl}/openapi.json, metrics: ${baseUrl}/metrics)`);
say(`demo merchant ${demo.merchant_id}, wallet ${demo.account_id} (CNY); credentials in .data/demo-merchant.json`);
say('send a first signed payment from another terminal:   npm run demo:pay');
say('Ctrl-C stops everything this command started.');
