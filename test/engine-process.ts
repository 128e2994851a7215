// Engines as real child processes, so a test can SIGKILL them, and a load of commands published
// straight to JetStream (no HTTP), with the checks that money was applied exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { Redis } from 'ioredis';
import type { Config } from '../engine/config.ts';
import { PROTOCOL_VERSION, type Command } from '../engine/protocol/commands.ts';
import type { Names } from '../engine/protocol/subjects.ts';
import { merchantKeys } from '../engine/redis/keys.ts';
import { ShardLeases } from '../engine/leases/index.ts';
import { TEST_MASTER_KEY } from './helpers.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export type LeaseLog = { engine: string; shard: number; event: 'lease_taken' | 'shard_stopped'; timeMs: number };

export type EngineProcess = { id: string; child: ChildProcess; leaseLog: LeaseLog[]; exited: Promise<void> };

export function envFor(config: Config): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NATS_URL: config.natsUrl,
    REDIS_URL: config.redisUrl,
    DATABASE_URL: config.databaseUrl,
    PEAKPAY_MASTER_KEY: TEST_MASTER_KEY,
    PEAKPAY_NAMESPACE: config.namespace,
    PEAKPAY_SHARD_COUNT: String(config.shardCount),
    PEAKPAY_ACK_WAIT_MS: String(config.ackWaitMs),
    PEAKPAY_LOG_LEVEL: 'info',
  };
}

export function spawnEngine(config: Config, id: string): EngineProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'engine/main.ts')], {
    env: { ...envFor(config), PEAKPAY_ENGINE_ID: id },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const leaseLog: LeaseLog[] = [];
  let buf = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const rec = JSON.parse(line) as { event?: string; shard?: number; time?: number };
        if ((rec.event === 'lease_taken' || rec.event === 'shard_stopped') && typeof rec.shard === 'number' && typeof rec.time === 'number') {
          leaseLog.push({ engine: id, shard: rec.shard, event: rec.event, timeMs: rec.time });
        }
      } catch {
        // not a log record
      }
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { id, child, leaseLog, exited };
}

export async function sigkill(p: EngineProcess): Promise<number> {
  const at = Date.now();
  p.child.kill('SIGKILL');
  await p.exited;
  return at;
}

/** Owner of each shard according to the lease bucket (null = free). */
export async function shardOwners(nc: NatsConnection, n: Names): Promise<(string | null)[]> {
  const kv = await ShardLeases.openBucket(nc, n.leaseBucket);
  const out: (string | null)[] = [];
  for (let s = 0; s < n.shardCount; s++) {
    const e = await kv.get(`shard.${s}`);
    out.push(e && e.operation === 'PUT' ? e.string() : null);
  }
  return out;
}

export { publishAll } from '../engine/client/publish.ts';

/** Commands not yet acknowledged by an engine (pending delivery or delivered and unacked). */
export async function remainingCommands(jsm: JetStreamManager, n: Names): Promise<number> {
  let remaining = 0;
  for (let s = 0; s < n.shardCount; s++) {
    const info = await jsm.consumers.info(n.cmdStream, n.shardConsumer(s));
    remaining += info.num_pending + info.num_ack_pending;
  }
  return remaining;
}

export async function settlementPending(jsm: JetStreamManager, n: Names): Promise<number> {
  const info = await jsm.consumers.info(n.evtStream, n.settlementConsumer);
  return info.num_pending + info.num_ack_pending;
}

export { jetstreamManager };

/** A workload: funded accounts, then payments (automatic, and manual followed by capture or cancel). */
export function workload(opts: { merchants: number; accountsPer: number; payments: number; creditFen: number; seed?: number }) {
  let seed = opts.seed ?? 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const merchants = Array.from({ length: opts.merchants }, (_, i) => `mk${i}_${Date.now().toString(36)}`);
  const setup: Command[] = [];
  const accounts: { merchant: string; account: string }[] = [];
  for (const m of merchants) {
    for (let a = 0; a < opts.accountsPer; a++) {
      const account = `acc${a}`;
      accounts.push({ merchant: m, account });
      setup.push({ v: PROTOCOL_VERSION, type: 'account.create', cmd_id: `ca_${m}_${a}`, merchant_id: m, ts_ms: Date.now(), account_id: account, currency: 'CNY' });
      setup.push({ v: PROTOCOL_VERSION, type: 'account.credit', cmd_id: `cc_${m}_${a}`, merchant_id: m, ts_ms: Date.now(), account_id: account, amount: opts.creditFen, currency: 'CNY', reason: 'load' });
    }
  }
  const payments: { merchant: string; id: string; manual: boolean }[] = [];
  const stream: Command[] = [];
  for (let i = 0; i < opts.payments; i++) {
    const acct = accounts[Math.floor(rand() * accounts.length)] as { merchant: string; account: string };
    const id = `p${i}_${acct.merchant}`;
    const manual = rand() < 0.34;
    const amount = 100 + Math.floor(rand() * 5000);
    payments.push({ merchant: acct.merchant, id, manual });
    stream.push({
      v: PROTOCOL_VERSION, type: 'payment.create', cmd_id: `c_${id}`, merchant_id: acct.merchant, ts_ms: Date.now(), payment_id: id,
      out_trade_no: `T${id}`, amount, currency: 'CNY', method: 'balance', account_id: acct.account,
      capture: manual ? 'manual' : 'automatic', hold_ttl_s: 3600, scene: 'pc',
    });
    if (manual) {
      const base = { v: PROTOCOL_VERSION, merchant_id: acct.merchant, ts_ms: Date.now(), payment_id: id } as const;
      stream.push(rand() < 0.7
        ? { ...base, type: 'payment.capture', cmd_id: `k_${id}`, amount: Math.max(1, Math.floor(amount / 2)) }
        : { ...base, type: 'payment.cancel', cmd_id: `x_${id}` });
    }
  }
  return { merchants, accounts, setup, payments, stream };
}

/** Every payment final in Redis; no event twice per payment; Redis balances = ledger = credits − captures. */
export async function verifyExactlyOnce(config: Config, pool: pg.Pool, n: Names, w: ReturnType<typeof workload>) {
  const redis = new Redis(config.redisUrl);
  const problems: string[] = [];
  try {
    const statuses = new Map<string, number>();
    for (const p of w.payments) {
      const status = await redis.hget(merchantKeys(n.redisPrefix, p.merchant).payment(p.id), 'status');
      statuses.set(status ?? 'missing', (statuses.get(status ?? 'missing') ?? 0) + 1);
      if (!status || !['succeeded', 'failed', 'canceled'].includes(status)) problems.push(`${p.id} ends ${status}`);
    }
    const dup = await pool.query(
      `SELECT coalesce(payment_id, account_id) AS payment_id, type, count(*)::int AS n FROM events WHERE merchant_id = ANY($1)
       GROUP BY merchant_id, coalesce(payment_id, account_id), type HAVING count(*) > 1 LIMIT 5`,
      [w.merchants]);
    for (const r of dup.rows) problems.push(`event ${r.type} of ${r.payment_id} recorded ${r.n} times`);
    const unbalanced = await pool.query(
      `SELECT event_id FROM postings WHERE merchant_id = ANY($1) GROUP BY event_id, currency HAVING sum(amount) <> 0 LIMIT 5`, [w.merchants]);
    for (const r of unbalanced.rows) problems.push(`unbalanced event ${r.event_id}`);
    const ledger = await pool.query<{ merchant_id: string; ledger_account: string; balance: number }>(
      `SELECT merchant_id, ledger_account, sum(amount)::bigint AS balance FROM postings WHERE merchant_id = ANY($1) GROUP BY 1, 2`, [w.merchants]);
    const led = new Map(ledger.rows.map((r) => [`${r.merchant_id}|${r.ledger_account}`, r.balance]));
    for (const a of w.accounts) {
      const h = await redis.hgetall(merchantKeys(n.redisPrefix, a.merchant).account(a.account));
      const available = Number(h.available);
      const held = Number(h.held);
      const la = led.get(`${a.merchant}|wallet:${a.account}:available`) ?? 0;
      const lh = led.get(`${a.merchant}|wallet:${a.account}:held`) ?? 0;
      if (available !== la || held !== lh) problems.push(`${a.merchant}/${a.account}: redis ${available}/${held} ledger ${la}/${lh}`);
      if (available + held !== Number(h.credited) - Number(h.captured) + Number(h.refunded)) {
        problems.push(`${a.merchant}/${a.account}: available+held != credited-captured+refunded`);
      }
      if (available < 0 || held !== 0) problems.push(`${a.merchant}/${a.account}: available ${available}, held ${held} after all holds resolved`);
    }
    const rows = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM payments WHERE merchant_id = ANY($1)`, [w.merchants]);
    if (rows.rows[0]?.n !== w.payments.length) problems.push(`postgres has ${rows.rows[0]?.n} payments, expected ${w.payments.length}`);
    return { problems, statuses: Object.fromEntries(statuses) };
  } finally {
    redis.disconnect();
  }
}
