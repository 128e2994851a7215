// Front-door priority on the real NATS (engine/shards/intake.ts, ingress/load-report.ts): the
// ingress reports its event-loop load; an engine started with PEAKPAY_ENGINE_YIELD_ELU_PERCENT
// paces its pulls while an ingress reports itself saturated, keeps deciding at its floor meanwhile,
// and lets go once the reports are normal again.
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { Gauge, Registry } from 'prom-client';
import { connectNats } from '../../engine/infra.ts';
import { decodeIngressLoad, encodeIngressLoad, HOT_REPORTS_MIN, type IngressLoad } from '../../engine/shards/intake.ts';
import { startLoadReports } from '../../ingress/load-report.ts';
import { startHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId } from '../helpers.ts';
import { creditAccount } from '../../scripts/ops.ts';

let h: Harness;
let nc: NatsConnection;

beforeAll(async () => {
  // The harness's ingress publishes real reports too: an idle test process reports a low ELU.
  h = await startHarness({ config: testConfig({ PEAKPAY_ENGINE_YIELD_ELU_PERCENT: '95', PEAKPAY_ENGINE_YIELD_FLOOR_PER_S: '50' }) });
  nc = await connectNats(h.config, 'test-intake');
});
afterAll(async () => {
  await nc.close();
  await h.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const limited = async (): Promise<number> => (await h.engine?.metrics.intakeLimited.get())?.values[0]?.value ?? -1;
const limitPerS = async (): Promise<number> => (await h.engine?.metrics.intakeLimit.get())?.values[0]?.value ?? -1;

async function until(what: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await what()) return true;
    await sleep(20);
  }
  return what();
}

describe('ingress load reports', () => {
  it('an ingress reports ten times a second; a blocked event loop reports itself busy', async () => {
    const reports: IngressLoad[] = [];
    const sub = nc.subscribe(h.names.ingressLoad, { callback: (_err, msg) => {
      const r = decodeIngressLoad(msg.data);
      if (r) reports.push(r);
    } });
    await nc.flush();
    const registry = new Registry();
    const gauge = new Gauge({ name: 'test_elu', help: 'test', registers: [registry] });
    // A listening server of its own: the reports carry its accept queue.
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
    const own = startLoadReports(nc, h.names.ingressLoad, { eluGauge: gauge, listening: () => server.address() as AddressInfo });
    try {
      await sleep(350);
      // Blocks this process's event loop for a second: the next report covers that second and at
      // most one report interval before it, so its ELU is at least 1000 / 1100.
      const end = Date.now() + 1000;
      while (Date.now() < end) { /* busy */ }
      await sleep(250);
    } finally {
      own.stop();
      sub.unsubscribe();
      server.close();
    }
    const mine = reports.filter((r) => r.ingress_id.startsWith(`ingress-${process.pid}-`));
    expect(mine.length).toBeGreaterThanOrEqual(5);
    expect(new Set(mine.map((r) => r.ingress_id)).size).toBeGreaterThanOrEqual(1);
    expect(Math.max(...mine.map((r) => r.elu))).toBeGreaterThanOrEqual(0.9);
    expect(Math.min(...mine.map((r) => r.elu))).toBeLessThan(0.5);
    for (const r of mine) expect(r.window_ms).toBeGreaterThan(0);
    // Linux (CI): the connections turned away are known, a count per window.
    for (const r of mine) expect(r.listen_overflows).toBeGreaterThanOrEqual(0);
    // This process's harness ingress reports too (it does not listen: no accept queue); this one listens.
    const listening = mine.filter((r) => r.ingress_id === own.ingressId);
    expect(listening.length).toBeGreaterThanOrEqual(5);
    for (const r of listening) expect(r.accept_queue).toBe(0);
    expect((await gauge.get()).values[0]?.value).toBeGreaterThanOrEqual(0);
  });
});

describe('the engine yields to a saturated ingress', () => {
  it('paces while reports say saturated, keeps deciding, and lets go after', async () => {
    expect(await limited()).toBe(0);
    const merchant = await h.newMerchant();
    const account = uniqueId('acc');
    expect((await h.call(merchant, 'POST', '/v1/accounts', { account_id: account, currency: 'CNY' })).statusCode).toBe(201);
    await creditAccount(h.ingress.ctx.client, merchant.id, account, 1_000_000, 'CNY', 'float');

    const saturated = setInterval(() => nc.publish(h.names.ingressLoad, encodeIngressLoad({ v: 1, ingress_id: 'test-busy', elu: 1, window_ms: 100 })), 50);
    try {
      expect(await until(async () => (await limited()) === 1, 2_000)).toBe(true);
      expect(await limitPerS()).toBeGreaterThanOrEqual(50);
      // Still deciding while limited (the floor): a payment is answered, 201 or 202 then decided.
      const res = await h.call(merchant, 'POST', '/v1/payments', {
        out_trade_no: uniqueId('T'), amount: 100, currency: 'CNY', method: 'balance', account_id: account, scene: 'pc',
      });
      expect([201, 202]).toContain(res.statusCode);
      const id = res.json().id as string;
      expect(await until(async () => (await h.call(merchant, 'GET', `/v1/payments/${id}`)).json().status === 'succeeded', 5_000)).toBe(true);
      expect(await limited()).toBe(1);
    } finally {
      clearInterval(saturated);
    }
    // A saturated report only HOT_REPORTS_MIN in a row limits; normal ones now let go.
    for (let i = 0; i < HOT_REPORTS_MIN; i++) nc.publish(h.names.ingressLoad, encodeIngressLoad({ v: 1, ingress_id: 'test-busy', elu: 0.1, window_ms: 100 }));
    expect(await until(async () => (await limited()) === 0, 5_000)).toBe(true);
    expect(await limitPerS()).toBe(0);
    const seconds = (await h.engine?.metrics.intakeLimitedSeconds.get())?.values[0]?.value ?? 0;
    expect(seconds).toBeGreaterThan(0);
  });

  it('drops a report that does not parse and goes on', async () => {
    nc.publish(h.names.ingressLoad, new TextEncoder().encode('{"v":1,"elu":"lots"}'));
    for (let i = 0; i < 4; i++) nc.publish(h.names.ingressLoad, encodeIngressLoad({ v: 1, ingress_id: 'test-2', elu: 1, window_ms: 100 }));
    expect(await until(async () => (await limited()) === 1, 2_000)).toBe(true);
    nc.publish(h.names.ingressLoad, encodeIngressLoad({ v: 1, ingress_id: 'test-2', elu: 0, window_ms: 100 }));
    expect(await until(async () => (await limited()) === 0, 5_000)).toBe(true);
  });
});
