// monitoring/ against real Prometheus tools (Debian's prometheus package): promtool checks the
// rules, runs their unit tests and checks the scrape config; then a real Prometheus scrapes the
// ingress, engine and settlement of a stack under a short load, and every query of the Grafana
// dashboard must return data, the core ones a positive value; every alert rule must evaluate
// without error against the real series.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveMetrics } from '../../engine/metrics.ts';
import { creditAccount } from '../../scripts/ops.ts';
import { dashboardQueries, loadDashboard, PROMETHEUS_DIR, toPromQL } from '../dashboard-queries.ts';
import { startHarness, type Harness } from '../harness.ts';
import { uniqueId, waitFor } from '../helpers.ts';

const RULES = join(PROMETHEUS_DIR, 'alerts.yml');
const JOBS = ['peakpay-ingress', 'peakpay-engine', 'peakpay-settlement'] as const;
const PAYMENTS = 300;
const CONCURRENCY = 16;
/** What $__rate_interval becomes: several 1 s scrapes, and the whole load fits in it. */
const RATE_INTERVAL = '30s';
const PROMETHEUS_READY_MS_MAX = 20_000;
const QUERIES_MS_MAX = 25_000;

function promtool(...args: string[]) {
  const r = spawnSync('promtool', args, { cwd: PROMETHEUS_DIR, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

describe('promtool', () => {
  it('accepts the alert rules', () => {
    const r = promtool('check', 'rules', 'alerts.yml');
    expect(r.out).toContain('SUCCESS');
    expect(r.status, r.out).toBe(0);
  });

  it('passes the unit test of every alert', () => {
    const r = promtool('test', 'rules', 'alerts.test.yml');
    expect(r.out).toContain('SUCCESS');
    expect(r.status, r.out).toBe(0);
  });

  it('accepts the scrape config, which names the jobs the alerts and the dashboard use', () => {
    const r = promtool('check', 'config', 'prometheus.yml');
    expect(r.status, r.out).toBe(0);
    const config = readFileSync(join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8');
    for (const job of JOBS) expect(config).toContain(`job_name: ${job}`);
  });
});

async function freePort(): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

type PromResult = { metric: Record<string, string>; value: [number, string] };

describe('the dashboard against Prometheus scraping a loaded stack', () => {
  let h: Harness;
  let merchant: { id: string; secret: string };
  const metricServers: HttpServer[] = [];
  let prometheus: ChildProcess | null = null;
  let prometheusLog = '';
  let dir = '';
  let api = '';

  async function query(expr: string): Promise<PromResult[]> {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: PromResult[] } };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
    return body.data?.result ?? [];
  }

  beforeAll(async () => {
    h = await startHarness();
    merchant = await h.newMerchant();
    const registries = {
      'peakpay-ingress': h.ingress.ctx.metrics.registry,
      'peakpay-engine': h.engine?.metrics.registry,
      'peakpay-settlement': h.settlement?.registry,
    };
    const scrapeConfigs = [];
    for (const job of JOBS) {
      const registry = registries[job];
      if (!registry) throw new Error(`assertion: harness without ${job}`);
      const server = await serveMetrics(registry, '127.0.0.1', 0);
      metricServers.push(server);
      scrapeConfigs.push({ job_name: job, static_configs: [{ targets: [`127.0.0.1:${(server.address() as AddressInfo).port}`] }] });
    }
    dir = mkdtempSync(join(tmpdir(), 'peakpay-prometheus-'));
    // JSON is YAML: Prometheus reads it as its config.
    writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: [RULES],
      scrape_configs: scrapeConfigs,
    }));
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prometheus = spawn('prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    prometheus.stdout?.on('data', (c: Buffer) => (prometheusLog += c.toString()));
    prometheus.stderr?.on('data', (c: Buffer) => (prometheusLog += c.toString()));
    await waitFor(`prometheus ready (${prometheusLog})`, async () => (await fetch(`${api}/-/ready`).catch(() => null))?.ok, PROMETHEUS_READY_MS_MAX);
    await waitFor('every target scraped and up', async () => {
      const up = await query('up');
      return up.length === JOBS.length && up.every((r) => r.value[1] === '1');
    }, PROMETHEUS_READY_MS_MAX);
  });

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus?.once('exit', resolve));
      prometheus.kill('SIGTERM');
      await exited;
    }
    for (const s of metricServers) s.close();
    await h?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * A few hundred signed payments through the ingress, with what a day brings besides: one buyer
   * paying too often (refused by the velocity rule), a wallet running dry, bad input, a bad
   * signature, manual captures and reads.
   */
  async function load(): Promise<Record<number, number>> {
    const wallets = ['acc_0', 'acc_1', 'acc_2', 'acc_3', 'acc_dry'];
    for (const w of wallets) {
      expect((await h.call(merchant, 'POST', '/v1/accounts', { account_id: w, currency: 'CNY' })).statusCode).toBe(201);
      await creditAccount(h.ingress.ctx.client, merchant.id, w, w === 'acc_dry' ? 1_000 : 10_000_000, 'CNY', 'monitoring test float');
    }
    const statuses: Record<number, number> = {};
    const count = (s: number) => (statuses[s] = (statuses[s] ?? 0) + 1);
    let next = 0;
    async function worker(): Promise<void> {
      while (next < PAYMENTS) {
        const i = next++;
        const dry = i % 30 === 0;
        const manual = i % 7 === 0;
        const body = {
          out_trade_no: uniqueId('T'), amount: dry ? 600 : 100 + (i % 50), currency: 'CNY', method: 'balance',
          account_id: dry ? 'acc_dry' : wallets[i % 4], capture: manual ? 'manual' : 'automatic', hold_ttl_s: 600, scene: 'pc',
          ...(i % 5 === 0 ? { buyer: { user_id: 'u_busy' } } : {}),
        };
        const res = await h.call(merchant, 'POST', '/v1/payments', body);
        count(res.statusCode);
        const id = (res.json() as { id?: string }).id;
        if (manual && id) count((await h.call(merchant, 'POST', `/v1/payments/${id}/capture`, {})).statusCode);
        if (i % 10 === 0 && id) count((await h.call(merchant, 'GET', `/v1/payments/${id}`)).statusCode);
        if (i % 50 === 0) {
          count((await h.call(merchant, 'POST', '/v1/payments', { ...body, amount: -1 })).statusCode);
          count((await h.call({ id: merchant.id, secret: 'not-the-secret' }, 'POST', '/v1/payments', body)).statusCode);
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // Commands the engine refuses, at the end of the load so they are inside the rate window:
    // captures of payments that do not exist (payment.not_found); and requests with a bad
    // signature, whose earlier ones may have left the window on a slow machine. One per scrape
    // interval: a series born at its final value has no increase for rate() to see.
    for (let i = 0; i < 4; i++) {
      count((await h.call(merchant, 'POST', `/v1/payments/${uniqueId('pay')}/capture`, {})).statusCode);
      count((await h.call({ id: merchant.id, secret: 'not-the-secret' }, 'GET', `/v1/payments/${uniqueId('pay')}`)).statusCode);
      await new Promise((r) => setTimeout(r, 1_100));
    }
    return statuses;
  }

  it('answers every query of the dashboard with data', async () => {
    const statuses = await load();
    // The load did what it says: payments created, some refused, bad input and a bad signature rejected.
    expect(statuses[201] ?? 0).toBeGreaterThan(PAYMENTS / 2);
    expect(statuses[400] ?? 0).toBeGreaterThan(0);
    expect(statuses[401] ?? 0).toBeGreaterThan(0);

    const queries = dashboardQueries(loadDashboard()).map((q) => ({ ...q, promql: toPromQL(q.expr, RATE_INTERVAL) }));
    expect(queries.length).toBeGreaterThan(40);
    // Panels whose first query must show the load itself, not only exist.
    const busy = new Set([
      'Ingress requests/s by route', 'Commands applied/s by type', 'Ingress latency (merchant API)', 'Engine decision latency (command ts → reply)',
      'Events/s: published by the engine, settled into Postgres', 'Refused commands/s by code', 'Auth failures/s by code', 'Risk refusals/s by rule',
      'Lua calls/s and errors by script', 'Settlement batches', 'Actor batch size',
    ]);
    // A query is done once it answered as required; the rest are asked again after the next scrape.
    let waiting = queries;
    let problems: string[] = [];
    const deadline = Date.now() + QUERIES_MS_MAX;
    for (;;) {
      problems = [];
      const still: typeof queries = [];
      for (const q of waiting) {
        const result = await query(q.promql);
        const problem = result.length === 0 ? 'no data'
          : busy.has(q.panel) && q.refId === 'A' && !result.some((r) => Number(r.value[1]) > 0) ? 'no positive value' : null;
        if (problem) {
          problems.push(`${problem}: ${q.panel} ${q.refId}: ${q.promql}`);
          still.push(q);
        }
      }
      waiting = still;
      if (waiting.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(problems).toEqual([]);
    expect(busy.size).toBe(queries.filter((q) => busy.has(q.panel) && q.refId === 'A').length);
  });

  it('loads every alert rule and evaluates it against the real series without error', async () => {
    const alerts = [...readFileSync(RULES, 'utf8').matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1]);
    type Rule = { name: string; health: string; lastError?: string; state?: string };
    const rules = await waitFor('every rule evaluated', async () => {
      const body = (await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: { rules: Rule[] }[] } };
      const all = body.data.groups.flatMap((g) => g.rules);
      return all.length === alerts.length && all.every((r) => r.health !== 'unknown') ? all : null;
    }, 10_000);
    expect(rules.map((r) => r.name).sort()).toEqual([...alerts].sort());
    for (const r of rules) expect({ name: r.name, health: r.health, lastError: r.lastError ?? '' }).toEqual({ name: r.name, health: 'ok', lastError: '' });
    // A healthy stack under a short load: no alert fires (their "for" periods are longer than this test anyway).
    expect(rules.filter((r) => r.state === 'firing').map((r) => r.name)).toEqual([]);
  });
});
