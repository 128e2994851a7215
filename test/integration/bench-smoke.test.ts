// The benchmark's tooling works: the ceiling and naive servers start as child processes, the load
// generator drives them closed- and open-loop with signed requests, and the ledger check passes on
// what they did — and fails when a payment is planted doubled or lost, so a green bench means
// something. Tiny load, ~2 s each.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CLOSED_RAMP_MS, runLoad } from '../../loadtest/lib/generator.ts';
import { checkLedger, paymentKey, walletKey, type Expected, type Observed } from '../../loadtest/lib/ledger-check.ts';
import { automaticPayment, PaymentRequests, roundRobin, type BenchMerchant, type Ledger, type PaymentRef } from '../../loadtest/lib/payments.ts';
import { listeningPort, spawnTs, type Proc } from '../../loadtest/lib/procs.ts';
import { createNaiveSchema, readNaiveLedger, seedNaive, walletId } from '../../loadtest/naive/schema.ts';

const FUNDING = 10_000_000;
const schema = `naive_${randomBytes(4).toString('hex')}`;
const merchants: BenchMerchant[] = Array.from({ length: 3 }, (_, i) => ({
  id: `bs${randomBytes(3).toString('hex')}${i}`, secret: `sk_${randomBytes(12).toString('hex')}`, accounts: ['w0', 'w1'],
}));
const funding = () => new Map(merchants.flatMap((m) => m.accounts.map((a) => [walletKey(m.id, a), FUNDING] as const)));

let pool: pg.Pool;
const procs: Proc[] = [];

beforeAll(async () => {
  const databaseUrl = inject('stack').databaseUrl;
  pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  await createNaiveSchema(pool, schema);
  await seedNaive(pool, schema, merchants, FUNDING);
  const env = { ...process.env, NAIVE_DATABASE_URL: databaseUrl, NAIVE_SCHEMA: schema, NAIVE_PORT: '0', NAIVE_WORKERS: '1', NAIVE_PG_POOL: '4', CEILING_PORT: '0' };
  procs.push(spawnTs('naive', 'loadtest/naive/server.ts', env), spawnTs('ceiling', 'loadtest/ceiling/server.ts', env));
});

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await pool.end();
});

describe('bench tooling', () => {
  it('drives the ceiling closed-loop: every request answered 202, latencies recorded', async () => {
    const port = await listeningPort(procs[1] as Proc);
    const ledger: Ledger = { acknowledged: [], unacknowledged: [] };
    const r = await runLoad(`http://127.0.0.1:${port}`, { kind: 'closed', connections: 4, durationS: 2 }, automaticPayment(new PaymentRequests(), roundRobin(merchants), ledger));
    expect(r.errors).toBe(0);
    expect(r.acknowledged).toBeGreaterThan(10);
    expect(r.statuses).toEqual({ 202: r.requests });
    expect(r.latency.create?.count).toBe(r.requests);
    expect(ledger.unacknowledged).toEqual([]);
  });

  it('opens a closed load\'s connections spread over CLOSED_RAMP_MS, not in one burst', async () => {
    const opened: number[] = [];
    const server = createServer((_req, res) => res.end('{}'));
    server.on('connection', () => opened.push(performance.now()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const r = await runLoad(`http://127.0.0.1:${port}`, { kind: 'closed', connections: 8, durationS: 1 },
        async (send) => (await send({ method: 'GET', path: '/', headers: {}, tag: 'get' })).status === 200);
      expect(r.errors).toBe(0);
      expect(opened).toHaveLength(8);
      // The last worker starts 7/8 of the ramp after the first (timers never fire early by more than a ms).
      expect((opened.at(-1) as number) - (opened[0] as number)).toBeGreaterThanOrEqual((CLOSED_RAMP_MS * 7) / 8 - 5);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('drives the naive stack open-loop, and the ledger check passes, then catches a planted doubled and a lost payment', async () => {
    const port = await listeningPort(procs[0] as Proc);
    const ledger: Ledger = { acknowledged: [], unacknowledged: [] };
    const reqs = new PaymentRequests();
    const r = await runLoad(`http://127.0.0.1:${port}`, { kind: 'open', startRate: 40, stages: [{ durationS: 2, target: 40 }], inFlightMax: 64 },
      automaticPayment(reqs, roundRobin(merchants), ledger), { measureFromS: 1 });
    expect(r.errors).toBe(0);
    // Sent in the first second: the warm-up's latencies; after it: the measured ones; each once.
    expect(r.warmupLatency?.count).toBeGreaterThan(10);
    expect(r.latency.create?.count).toBeGreaterThan(10);
    expect((r.warmupLatency?.count ?? 0) + (r.latency.create?.count ?? 0)).toBe(r.requests);
    expect(r.acknowledged).toBeGreaterThan(2);
    expect(r.acknowledged).toBe(r.iterations);
    expect(ledger.acknowledged.length).toBe(r.acknowledged);
    expect(ledger.unacknowledged).toEqual([]);

    // A forged signature is refused by the naive server too (it pays the same HMAC cost).
    const forged = await runLoad(`http://127.0.0.1:${port}`, { kind: 'closed', connections: 1, durationS: 0.2 },
      automaticPayment(reqs, roundRobin(merchants.map((m) => ({ ...m, secret: `${m.secret}x` }))), { acknowledged: [], unacknowledged: [] }));
    expect(forged.statuses[401]).toBe(forged.requests);

    const expected: Expected = { ...ledger, funding: funding(), merchants: merchants.map((m) => m.id) };
    const clean = checkLedger(expected, await readNaiveLedger(pool, schema));
    expect(clean).toMatchObject({ ok: true, lost: 0, doubled: 0, wallet_mismatches: 0, merchant_mismatches: 0 });
    expect(clean.settled_once).toBe(r.acknowledged);

    // Planted: one payment's money moved a second time (a retried request without idempotency) …
    const doubled = ledger.acknowledged[0] as PaymentRef;
    await pool.query(`UPDATE ${schema}.wallets SET available = available - $1 WHERE id = $2`, [doubled.amount, walletId(doubled.merchant, doubled.account)]);
    await pool.query(`UPDATE ${schema}.merchants SET balance = balance + $1 WHERE id = $2`, [doubled.amount, doubled.merchant]);
    // … and another merchant's acknowledged payment gone from the orders (its money moved all the same).
    const lost = ledger.acknowledged.find((p) => p.merchant !== doubled.merchant) as PaymentRef;
    await pool.query(`DELETE FROM ${schema}.orders WHERE merchant_id = $1 AND out_trade_no = $2`, [lost.merchant, lost.outTradeNo]);
    const planted = checkLedger(expected, await readNaiveLedger(pool, schema));
    expect(planted.ok).toBe(false);
    // Two wallets and two merchants are off: the doubled payment's, and the lost one's (money moved, no order).
    expect(planted).toMatchObject({ lost: 1, doubled: 0, wallet_mismatches: 2, merchant_mismatches: 2 });
    expect(planted.examples.join('\n')).toContain(paymentKey(lost.merchant, lost.outTradeNo));
  });
});

describe('checkLedger', () => {
  const refArb = fc.record({
    merchant: fc.constantFrom('m1', 'm2'), account: fc.constantFrom('a', 'b'), amount: fc.integer({ min: 1, max: 10_000 }),
  });
  const runArb = fc.array(refArb, { minLength: 1, maxLength: 40 }).map((rs) => rs.map((r, i): PaymentRef => ({ ...r, outTradeNo: `T${i}` })));

  /** The ledger a correct server leaves behind after exactly these payments. */
  function honest(acked: PaymentRef[], start: number): Observed {
    const wallets = new Map<string, number>();
    const ms = new Map<string, number>();
    for (const m of ['m1', 'm2']) for (const a of ['a', 'b']) wallets.set(walletKey(m, a), start);
    for (const p of acked) {
      wallets.set(walletKey(p.merchant, p.account), (wallets.get(walletKey(p.merchant, p.account)) ?? 0) - p.amount);
      ms.set(p.merchant, (ms.get(p.merchant) ?? 0) + p.amount);
    }
    return { settled: new Map(acked.map((p) => [paymentKey(p.merchant, p.outTradeNo), { count: 1, amount: p.amount }])), wallets, merchants: ms, mirror: new Map(wallets) };
  }
  const expectedFor = (acked: PaymentRef[], start: number): Expected => ({
    acknowledged: acked, unacknowledged: [], merchants: ['m1', 'm2'],
    funding: new Map(['m1', 'm2'].flatMap((m) => ['a', 'b'].map((a) => [walletKey(m, a), start] as const))),
  });

  it('passes an honest ledger and fails any single doubled, lost or mis-mirrored payment', () => {
    fc.assert(fc.property(runArb, fc.nat(), fc.constantFrom('double', 'lose', 'mirror'), (acked, pick, fault) => {
      const start = 1_000_000;
      expect(checkLedger(expectedFor(acked, start), honest(acked, start)).ok).toBe(true);
      const victim = acked[pick % acked.length] as PaymentRef;
      const o = honest(acked, start);
      const k = paymentKey(victim.merchant, victim.outTradeNo);
      const w = walletKey(victim.merchant, victim.account);
      if (fault === 'double') {
        o.settled.set(k, { count: 2, amount: victim.amount * 2 });
        o.wallets.set(w, (o.wallets.get(w) ?? 0) - victim.amount);
        o.merchants.set(victim.merchant, (o.merchants.get(victim.merchant) ?? 0) + victim.amount);
      } else if (fault === 'lose') {
        o.settled.delete(k);
      } else {
        o.mirror?.set(w, (o.mirror.get(w) ?? 0) + 1);
      }
      const report = checkLedger(expectedFor(acked, start), o);
      expect(report.ok).toBe(false);
      if (fault === 'double') expect(report.doubled).toBe(1);
      if (fault === 'lose') expect(report.lost).toBe(1);
      if (fault === 'mirror') expect(report.mirror_mismatches).toBe(1);
    }));
  });

  it('counts what settled but was never sent as unexpected', () => {
    const acked: PaymentRef[] = [{ merchant: 'm1', account: 'a', outTradeNo: 'T1', amount: 5 }];
    const o = honest(acked, 100);
    o.settled.set(paymentKey('m1', 'T9'), { count: 1, amount: 7 });
    expect(checkLedger(expectedFor(acked, 100), o)).toMatchObject({ ok: false, unexpected: 1 });
  });
});
