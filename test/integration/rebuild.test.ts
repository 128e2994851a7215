// Redis can be rebuilt from Postgres and the event log (MISSION §4.4): real traffic through the real
// pipeline, settlement catches up, Redis is wiped (FLUSHALL) and rebuilt, and every key of the
// namespace — except ingress idempotency records and nonces, which are not rebuilt — is the same
// as before, field for field. Op records are compared on their own: every command that left an
// event replays after the rebuild instead of applying twice. Then traffic goes on.
//
// The wipe needs a Redis of our own: other test files run in parallel on the shared one.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { creditAccount } from '../../scripts/ops.ts';
import { rebuildCli } from '../../scripts/rebuild.ts';
import { connectNats } from '../../engine/infra.ts';
import { walletAvailable, walletHeld } from '../../engine/ledger/postings.ts';
import { commandsOfMessage, unpackRaw } from '../../engine/protocol/codec.ts';
import { PROTOCOL_VERSION, type Command } from '../../engine/protocol/commands.ts';
import { BATCH_HEADER } from '../../engine/protocol/headers.ts';
import { rebuildRedis, waitForSettlement, type RebuildReport } from '../../engine/rebuild/index.ts';
import { merchantKeys } from '../../engine/redis/keys.ts';
import { MoneyStore } from '../../engine/redis/store.ts';
import { startEngine, type RunningEngine } from '../../engine/service.ts';
import { startSettlement } from '../../engine/settlement/consumer.ts';
import { applyCommand } from '../../engine/shards/apply.ts';
import { startHarness, type Harness } from '../harness.ts';
import { TEST_MASTER_KEY, testConfig, uniqueId, waitFor } from '../helpers.ts';

const REDIS_START_MS_MAX = 10_000;
const SETTLE_MS_MAX = 30_000;

let redisServer: ChildProcess;
let redisDir: string;
let redisUrl: string;
let redis: Redis; // the test's own connection to the private Redis
let h: Harness;
let nc: NatsConnection;
let jsm: JetStreamManager;
let engine: RunningEngine | null = null;
let skewMs = 0; // the engine's clock runs this far ahead (hold deadlines, sweeper)
/** The skew that lets a 30 s hold pass its deadline. */
const LATE_SKEW_MS = 31_000;

type Merchant = { id: string; secret: string };
const merchants: Merchant[] = [];
const ACCOUNTS = [
  { id: 'acc_a', currency: 'CNY', credit: 100_000 },
  { id: 'acc_b', currency: 'CNY', credit: 5_000 },
  { id: 'acc_u', currency: 'USD', credit: 20_000 },
] as const;
/** Per merchant: payment ids of the open holds left before the rebuild. */
const openHolds = new Map<string, string[]>();
/** An account.credit sent with a known op id, to re-apply after the rebuild. */
let knownCredit: Extract<Command, { type: 'account.credit' }>;

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function startPrivateRedis(): Promise<void> {
  const port = await freePort();
  redisDir = mkdtempSync(join(tmpdir(), 'peakpay-rebuild-'));
  redisServer = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], {
    stdio: 'ignore',
  });
  redisUrl = `redis://127.0.0.1:${port}`;
  redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  redis.on('error', () => undefined); // refused until the server listens; every command below checks its own result
  await waitFor('private redis-server', async () => (await redis.ping().catch(() => null)) === 'PONG', REDIS_START_MS_MAX);
}

const prefix = () => h.names.redisPrefix;
const deps = () => ({ nc, redis, pool: h.pool });

async function startOurEngine(): Promise<void> {
  engine = await startEngine(h.config, { now: () => Date.now() + skewMs });
}
async function stopOurEngine(): Promise<void> {
  await engine?.stop();
  engine = null;
}

async function post(m: Merchant, url: string, body: unknown) {
  return h.call(m, 'POST', url, body);
}

async function createPayment(m: Merchant, body: Record<string, unknown>) {
  const res = await post(m, '/v1/payments', { out_trade_no: uniqueId('T'), currency: 'CNY', method: 'balance', scene: 'pc', ...body });
  return { status: res.statusCode, body: res.json() as { id: string; status: string; code?: string } };
}

/** Every key of the namespace: values of hashes, strings, sets and sorted sets; op records apart. */
async function snapshot() {
  const state: Record<string, unknown> = {};
  const ops = new Map<string, { result: unknown; expiresAtMs: number }>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix()}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      // Ingress bookkeeping, not money state: idempotency records, nonces, rate-limit buckets.
      if (key.includes(':idem:') || key.includes(':nonce:') || /:rl(:|$)/.test(key)) continue;
      if (key.includes(':op:')) {
        const [value, pttl] = await Promise.all([redis.getBuffer(key), redis.pttl(key)]);
        if (value) ops.set(key, { result: normalizeOp(unpackRaw(value)), expiresAtMs: Date.now() + pttl });
        continue;
      }
      const type = await redis.type(key);
      if (type === 'hash') state[key] = await redis.hgetall(key);
      else if (type === 'string') state[key] = await redis.get(key);
      else if (type === 'set') state[key] = (await redis.smembers(key)).sort();
      else if (type === 'zset') state[key] = await redis.zrange(key, '0', '-1', 'WITHSCORES');
      else throw new Error(`unexpected ${type} key ${key}`);
    }
  } while (cursor !== '0');
  return { state, ops };
}

/** cmsgpack packs an empty Lua table as a map: read lists as lists either way. */
function normalizeOp(raw: unknown) {
  const r = raw as Record<string, unknown>;
  const list = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.values(v) : v);
  return { ...r, effects: list(r.effects), events: list(r.events) };
}

async function ledgerSums(merchantId: string) {
  const r = await h.pool.query<{ ledger_account: string; kind: string; total: number }>(
    'SELECT ledger_account, kind, sum(amount)::bigint AS total FROM postings WHERE merchant_id = $1 GROUP BY ledger_account, kind',
    [merchantId],
  );
  const of = (account: string, kind?: string) =>
    r.rows.filter((x) => x.ledger_account === account && (kind === undefined || x.kind === kind)).reduce((s, x) => s + x.total, 0);
  return of;
}

/** Redis wallet hashes equal the ledger's sums, for every account of every merchant. */
async function expectBalancesEqualLedger() {
  await waitForSettlement(jsm, h.names, SETTLE_MS_MAX);
  for (const m of merchants) {
    const of = await ledgerSums(m.id);
    for (const a of ACCOUNTS) {
      const hash = await redis.hgetall(merchantKeys(prefix(), m.id).account(a.id));
      expect({ merchant: m.id, account: a.id, ...hash }).toEqual({
        merchant: m.id, account: a.id, currency: a.currency, created_at_ms: hash.created_at_ms, refunded: '0',
        available: String(of(walletAvailable(a.id))),
        held: String(of(walletHeld(a.id))),
        credited: String(of(walletAvailable(a.id), 'adjustment')),
        captured: String(-of(walletHeld(a.id), 'capture') - of(walletAvailable(a.id), 'capture')),
      });
    }
  }
}

/** Every command of the namespace's command log, in order. */
async function commandLog(): Promise<Command[]> {
  const info = await jsm.streams.info(h.names.cmdStream);
  const out: Command[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(h.names.cmdStream, { seq });
    if (m) out.push(...commandsOfMessage(m.data, m.header?.has(BATCH_HEADER) ?? false));
  }
  return out;
}

beforeAll(async () => {
  await startPrivateRedis();
  h = await startHarness({ config: testConfig({ REDIS_URL: redisUrl }), engine: false });
  nc = await connectNats(h.config, 'rebuild-test');
  jsm = await jetstreamManager(nc);
  await startOurEngine();

  for (let i = 0; i < 3; i++) merchants.push(await h.newMerchant());
  for (const m of merchants) {
    for (const a of ACCOUNTS) {
      expect((await post(m, '/v1/accounts', { account_id: a.id, currency: a.currency })).statusCode).toBe(201);
      await creditAccount(h.ingress.ctx.client, m.id, a.id, a.credit, a.currency, 'float');
    }
    // Opening an existing account again: answered, no event, no change.
    expect((await post(m, '/v1/accounts', { account_id: 'acc_a', currency: 'CNY' })).statusCode).toBe(201);

    // Open holds, one with every optional field (metadata keys out of order: its JSON must survive as written).
    const open1 = await createPayment(m, {
      amount: 1_000, account_id: 'acc_a', capture: 'manual', hold_ttl_s: 900, subject: 'Game card 100',
      buyer: { ip: '203.0.113.9' }, metadata: { sku: 'card-100', batch: 'b7', a: '1' }, notify_url: 'https://shop.example/notify', scene: 'h5',
    });
    const open2 = await createPayment(m, { amount: 2_500, account_id: 'acc_b', capture: 'manual', hold_ttl_s: 3600 });
    const openUsd = await createPayment(m, { amount: 300, currency: 'USD', account_id: 'acc_u', capture: 'manual', hold_ttl_s: 1200 });
    for (const p of [open1, open2, openUsd]) expect(p.body.status).toBe('authorized');
    openHolds.set(m.id, [open1.body.id, open2.body.id, openUsd.body.id]);

    // Captured in full, in part; canceled; failed for funds; captured at once.
    const full = await createPayment(m, { amount: 1_999, account_id: 'acc_a', capture: 'manual' });
    expect((await post(m, `/v1/payments/${full.body.id}/capture`, {})).json().status).toBe('succeeded');
    const partial = await createPayment(m, { amount: 3_000, account_id: 'acc_a', capture: 'manual' });
    expect((await post(m, `/v1/payments/${partial.body.id}/capture`, { amount: 1_200 })).json()).toMatchObject({ status: 'succeeded', amount_captured: 1_200 });
    const canceled = await createPayment(m, { amount: 700, account_id: 'acc_a', capture: 'manual' });
    expect((await post(m, `/v1/payments/${canceled.body.id}/cancel`, {})).json().status).toBe('canceled');
    const failed = await createPayment(m, { amount: 1_000_000, account_id: 'acc_b', capture: 'manual' });
    expect(failed.body).toMatchObject({ status: 'failed', failure: { code: 'balance.insufficient_funds' } });
    const otn = uniqueId('T');
    const auto = await createPayment(m, { out_trade_no: otn, amount: 450, account_id: 'acc_a', capture: 'automatic' });
    expect(auto.body.status).toBe('succeeded');

    // Refusals (no event): a reused out_trade_no, a capture above the hold, a cancel of a final payment.
    expect((await createPayment(m, { out_trade_no: otn, amount: 5, account_id: 'acc_a' })).status).toBe(409);
    expect((await post(m, `/v1/payments/${open2.body.id}/capture`, { amount: 9_999 })).statusCode).toBeGreaterThanOrEqual(400);
    expect((await post(m, `/v1/payments/${full.body.id}/cancel`, {})).statusCode).toBeGreaterThanOrEqual(400);
  }

  // A hold that passes its deadline: the engine's clock jumps past it and a capture races the
  // sweeper. Either the capture finds it expired (-10, payment.expired) or the sweeper's
  // payment.expire got there first; both leave it expired, and both are rebuilt.
  const m0 = merchants[0] as Merchant;
  const late = await createPayment(m0, { amount: 800, account_id: 'acc_a', capture: 'manual', hold_ttl_s: 30 });
  skewMs = LATE_SKEW_MS;
  await post(m0, `/v1/payments/${late.body.id}/capture`, {});
  await waitFor('late hold expired', async () => (await h.call(m0, 'GET', `/v1/payments/${late.body.id}`)).json().status === 'expired');
  skewMs = 0;

  // A credit with a known op id, re-applied after the rebuild.
  const cmdId = uniqueId('cmd');
  await creditAccount(h.ingress.ctx.client, m0.id, 'acc_b', 777, 'CNY', 'known op', cmdId);
  knownCredit = {
    v: PROTOCOL_VERSION, type: 'account.credit', cmd_id: cmdId, merchant_id: m0.id, ts_ms: Date.now(),
    account_id: 'acc_b', amount: 777, currency: 'CNY', reason: 'known op',
  };
  await waitForSettlement(jsm, h.names, SETTLE_MS_MAX);
});

afterAll(async () => {
  await stopOurEngine().catch(() => undefined);
  await h?.stop();
  await nc?.close();
  redis?.disconnect();
  if (redisServer?.pid !== undefined && redisServer.exitCode === null) {
    const exited = new Promise((resolve) => redisServer.once('exit', resolve));
    redisServer.kill('SIGTERM');
    await exited;
  }
  if (redisDir) rmSync(redisDir, { recursive: true, force: true });
});

describe('rebuilding Redis from Postgres and the event log', () => {
  let before: Awaited<ReturnType<typeof snapshot>>;
  let report: RebuildReport;

  it('refuses while an engine holds shard leases, and changes nothing', async () => {
    const pre = await snapshot();
    await expect(rebuildRedis(deps(), { config: h.config, merchantIds: merchants.map((m) => m.id) })).rejects.toThrow(/engines .* are running/);
    expect((await snapshot()).state).toEqual(pre.state);
  });

  it('rebuilds every key exactly after FLUSHALL', async () => {
    await stopOurEngine();
    await expectBalancesEqualLedger();
    before = await snapshot();
    // Sanity: the snapshot holds every kind of state.
    const kinds = new Set(Object.keys(before.state).map((k) => k.replace(/^[^:]+:\{[^}]+\}:([a-z]+).*$/, '$1')));
    expect([...kinds].sort()).toEqual(['acct', 'holds', 'merchants', 'otn', 'pay']);

    expect(await redis.flushall()).toBe('OK');
    expect(await redis.dbsize()).toBe(0);
    report = await rebuildRedis(deps(), { config: h.config, merchantIds: merchants.map((m) => m.id) });

    const after = await snapshot();
    expect(Object.keys(after.state).sort()).toEqual(Object.keys(before.state).sort());
    expect(after.state).toEqual(before.state);
    expect(report).toMatchObject({
      merchants: 3, inexact: {}, incompleteCommands: [],
      counts: { accounts: 9, payments: 3 * 8 + 1, holds: 9, shard_merchants: 3 },
    });
    for (const m of merchants) {
      const holds = await redis.zrange(merchantKeys(prefix(), m.id).holdsExpiring, '0', '-1');
      expect(holds.sort()).toEqual([...(openHolds.get(m.id) ?? [])].sort());
    }
  });

  it('rebuilds the op record of every command that left an event, and only those', async () => {
    const after = await snapshot();
    const expected = [...before.ops].filter(([, op]) => ((op.result as { events: unknown[] }).events).length > 0);
    expect(expected.length).toBeGreaterThan(50);
    expect(before.ops.size).toBeGreaterThan(expected.length); // refusals were recorded before, and are not rebuilt
    expect([...after.ops.keys()].sort()).toEqual(expected.map(([k]) => k).sort());
    expect(report.counts.ops).toBe(expected.length);
    for (const [key, op] of expected) {
      const got = after.ops.get(key);
      expect({ key, result: got?.result }).toEqual({ key, result: op.result });
      // The script expires an op record a TTL after Redis' clock, the rebuild a TTL after the
      // engine's (the event time): the same clock in production, LATE_SKEW_MS apart for the late hold.
      const drift = (got?.expiresAtMs ?? 0) - op.expiresAtMs;
      expect(Math.min(Math.abs(drift), Math.abs(drift - LATE_SKEW_MS))).toBeLessThan(2_000);
    }
  });

  it('applies no command twice: a re-sent command replays its first result', async () => {
    const store = new MoneyStore(redis, { prefix: prefix(), opTtlS: h.config.opTtlS });
    const credit = await store.creditAccount(knownCredit, Date.now());
    expect(credit).toMatchObject({ replayed: true, code: 0, effects: [['credit', 777]], events: ['account.credited'] });

    // The whole command log, once more, straight into the scripts: every command that left an
    // event replays; the others decide again and change nothing.
    const log = await commandLog();
    expect(log.length).toBeGreaterThanOrEqual(3 * 21 + 3);
    for (const cmd of log) {
      const outcome = await applyCommand(store, cmd, Date.now());
      const leftEvents = ((before.ops.get(merchantKeys(prefix(), cmd.merchant_id).op(cmd.cmd_id))?.result as { events?: unknown[] } | undefined)?.events ?? []).length > 0;
      if (leftEvents) expect({ cmd: cmd.cmd_id, replayed: outcome.reply.replayed }).toEqual({ cmd: cmd.cmd_id, replayed: true });
    }
    expect((await snapshot()).state).toEqual(before.state);
  });

  it('runs on from the rebuilt state: captures a rebuilt hold, takes new payments, expires rebuilt holds', async () => {
    await startOurEngine();
    const [m0, m1] = merchants as [Merchant, Merchant];
    const hold = (openHolds.get(m0.id) ?? [])[0] as string;
    const captured = await post(m0, `/v1/payments/${hold}/capture`, { amount: 600 });
    expect(captured.statusCode).toBe(200);
    expect(captured.json()).toMatchObject({ id: hold, status: 'succeeded', amount_captured: 600 });
    const fresh = await createPayment(m1, { amount: 4_000, account_id: 'acc_a', capture: 'manual', hold_ttl_s: 600 });
    expect(fresh.body.status).toBe('authorized');
    await creditAccount(h.ingress.ctx.client, m1.id, 'acc_b', 1_234, 'CNY', 'after the rebuild');
    await expectBalancesEqualLedger();

    // The engine found the rebuilt holds (shard merchant sets + holds:exp): past every deadline,
    // its sweeper expires them all.
    skewMs = 3 * 3600_000;
    await waitFor('every hold expired', async () => {
      for (const m of merchants) if ((await redis.zcard(merchantKeys(prefix(), m.id).holdsExpiring)) > 0) return false;
      return true;
    }, SETTLE_MS_MAX);
    skewMs = 0;
    await expectBalancesEqualLedger();
    for (const m of merchants) {
      for (const a of ACCOUNTS) expect(await redis.hget(merchantKeys(prefix(), m.id).account(a.id), 'held')).toBe('0');
    }
  });

  it('rebuilds one merchant from the command line, replacing its stale keys and touching no other', async () => {
    await stopOurEngine();
    const pre = await snapshot();
    const [m0, m1] = merchants as [Merchant, Merchant];
    const k = merchantKeys(prefix(), m1.id);
    await redis.del(k.account('acc_a'), k.holdsExpiring);
    await redis.hset(k.account('acc_b'), 'available', '1');
    await redis.hset(k.payment('pay_stale'), 'status', 'authorized');
    const other = merchantKeys(prefix(), m0.id).payment('pay_untouched');
    await redis.hset(other, 'status', 'authorized');

    const cliReport = await rebuildCli(['--merchant', m1.id], {
      ...process.env, NATS_URL: h.config.natsUrl, REDIS_URL: redisUrl, DATABASE_URL: h.config.databaseUrl,
      PEAKPAY_MASTER_KEY: TEST_MASTER_KEY, PEAKPAY_NAMESPACE: h.config.namespace, PEAKPAY_SHARD_COUNT: String(h.config.shardCount),
      PEAKPAY_LOG_LEVEL: 'warn',
    });
    expect(cliReport.merchants).toBe(1);
    const post = await snapshot();
    expect(post.state[other]).toEqual({ status: 'authorized' });
    delete post.state[other];
    expect(post.state).toEqual(pre.state);
  });

  it('leaves out a command whose events did not all reach Postgres, so that its redelivery applies it once', async () => {
    // Scripts v7 emitted an automatic capture as two events (a payment.authorized stub, then
    // payment.succeeded with the state and the postings); v8 emits one. The event log can still hold
    // v7 commands. Suppose one reached Postgres without its second event: here a v8 payment's row is
    // turned into the v7 stub and its postings are taken out.
    await startOurEngine();
    const m = await h.newMerchant();
    expect((await post(m, '/v1/accounts', { account_id: 'acc_a', currency: 'CNY' })).statusCode).toBe(201);
    await creditAccount(h.ingress.ctx.client, m.id, 'acc_a', 10_000, 'CNY', 'float');
    const paid = await createPayment(m, { amount: 1_000, account_id: 'acc_a', capture: 'automatic' });
    expect(paid.body.status).toBe('succeeded');
    await waitForSettlement(jsm, h.names, SETTLE_MS_MAX);
    await stopOurEngine();
    const k = merchantKeys(prefix(), m.id);
    const pre = await redis.hgetall(k.account('acc_a'));
    const events = await h.pool.query<{ id: string; cmd_id: string }>('SELECT id, cmd_id FROM events WHERE payment_id = $1 ORDER BY id', [paid.body.id]);
    const cmdId = (events.rows[0] as { cmd_id: string }).cmd_id;
    expect(events.rows.map((e) => e.id)).toEqual([`evt_${cmdId}_0`]);
    await h.pool.query('DELETE FROM postings WHERE event_id = $1', [`evt_${cmdId}_0`]);
    await h.pool.query(
      `UPDATE events SET type = 'payment.authorized',
         body = (body::jsonb || '{"type":"payment.authorized","payment":null,"postings":[],"cmd_events":2}'::jsonb) - 'payment_record'
       WHERE id = $1`,
      [`evt_${cmdId}_0`],
    );

    const r = await rebuildRedis(deps(), { config: h.config, merchantIds: [m.id] });
    expect(r.incompleteCommands).toEqual([cmdId]);
    expect(await redis.exists(k.payment(paid.body.id), k.op(cmdId))).toBe(0);
    expect(await redis.hgetall(k.account('acc_a'))).toMatchObject({ available: '10000', held: '0', captured: '0' });

    // The redelivery applies it, once.
    const cmd = (await commandLog()).find((c) => c.cmd_id === cmdId) as Command;
    const store = new MoneyStore(redis, { prefix: prefix(), opTtlS: h.config.opTtlS });
    const again = await applyCommand(store, cmd, Date.now());
    expect(again.reply).toMatchObject({ ok: true, replayed: false, payment: { id: paid.body.id, status: 'succeeded' } });
    expect(again.events.map((e) => [e.id, e.type])).toEqual([[`evt_${cmdId}_0`, 'payment.succeeded']]);
    expect(await redis.hgetall(k.account('acc_a'))).toEqual(pre);
    expect((await applyCommand(store, cmd, Date.now())).reply.replayed).toBe(true);
  });

  it('refuses, changing nothing, while Postgres is behind the event log', async () => {
    await h.settlement?.stop();
    await startOurEngine();
    const m = merchants[2] as Merchant;
    expect((await createPayment(m, { amount: 10, account_id: 'acc_a', capture: 'manual' })).body.status).toBe('authorized');
    await stopOurEngine();
    const pre = await snapshot();
    await expect(rebuildRedis(deps(), { config: h.config, settleTimeoutMs: 300 })).rejects.toThrow(/Postgres is behind the event log/);
    expect((await snapshot()).state).toEqual(pre.state);

    const settlement = await startSettlement(h.config, { pool: h.pool });
    await waitForSettlement(jsm, h.names, SETTLE_MS_MAX);
    await settlement.stop();
  });
});
