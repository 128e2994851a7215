// The monitoring files against the code: the Grafana dashboard is well-formed and asks only for
// metrics the processes export; the metrics follow Prometheus naming and use bounded labels only;
// every alert has a promtool test that sees it fire and one that sees it stay quiet.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  CHANNEL_NOTIFY_RESULTS, CHANNEL_OPERATIONS, CHANNEL_RESULTS, CHANNELS, engineMetrics, settlementLagSeconds, settlementMetrics, WEBHOOK_RESULTS,
} from '../../engine/metrics.ts';
import { ingressMetrics } from '../../ingress/metrics.ts';
import { allPanels, dashboardQueries, loadDashboard, PROMETHEUS_DIR, toPromQL } from '../dashboard-queries.ts';

type Exported = { name: string; type: string; labelNames: string[] };

function exported(): Exported[] {
  const registries = [engineMetrics(new Registry()).registry, ingressMetrics(new Registry()).registry, settlementMetrics(new Registry()).registry];
  return registries.flatMap((r) =>
    r.getMetricsAsArray().map((m) => ({ name: m.name, type: String(m.type), labelNames: [...((m as unknown as { labelNames?: string[] }).labelNames ?? [])] })));
}

/** Series names a PromQL expression reads (histogram series map to their metric). */
function metricNamesIn(expr: string): string[] {
  const names = expr.match(/\b(?:peakpay|process|nodejs)_[a-z0-9_]+\b/g) ?? [];
  return names.map((n) => n.replace(/_(bucket|sum|count)$/, ''));
}

// Every label value comes from a bounded set: none of these may carry an id.
const ALLOWED_LABELS = new Set(['method', 'route', 'status', 'code', 'type', 'result', 'shard', 'reason', 'script', 'channel', 'operation', 'from', 'to', 'kind', 'limit']);

describe('Grafana dashboard', () => {
  const d = loadDashboard();
  const panels = allPanels(d).filter((p) => p.type !== 'row');

  it('has the fields Grafana requires, a Prometheus datasource variable, and unique panel ids', () => {
    expect(d.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(d.title).toBeTruthy();
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(d.templating?.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }));
    const ids = allPanels(d).map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('gives every panel a title, a place on the 24-column grid, the datasource and queries', () => {
    expect(panels.length).toBeGreaterThan(20);
    for (const p of panels) {
      const where = `panel ${p.id} ${p.title}`;
      expect(p.title, where).toBeTruthy();
      expect(['timeseries', 'stat', 'state-timeline', 'gauge', 'bargauge', 'table'], where).toContain(p.type);
      const g = p.gridPos ?? {};
      expect((g.x ?? -1) >= 0 && (g.w ?? 0) > 0 && (g.x ?? 0) + (g.w ?? 0) <= 24 && (g.h ?? 0) > 0 && (g.y ?? -1) >= 0, where).toBe(true);
      expect(p.datasource, where).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, where).toBeGreaterThan(0);
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, where).toBe(refIds.length);
      for (const t of p.targets ?? []) {
        expect(t.datasource, where).toEqual({ type: 'prometheus', uid: '${datasource}' });
        expect(t.expr, where).toMatch(/\S/);
      }
    }
  });

  it('uses no Grafana variable besides the interval built-ins', () => {
    for (const q of dashboardQueries(d)) expect(toPromQL(q.expr, '15s'), `${q.panel} ${q.refId}`).not.toContain('$');
  });

  it('asks only for metrics the ingress, engine and settlement export', () => {
    const names = new Set(exported().map((m) => m.name));
    for (const q of dashboardQueries(d)) {
      for (const n of metricNamesIn(q.expr)) expect(names.has(n), `${q.panel}: ${n}`).toBe(true);
    }
  });

  it('covers throughput, latency, errors, lag, mailboxes, channels, failover, risk, settlement and webhooks', () => {
    const all = dashboardQueries(d).map((q) => q.expr).join('\n');
    for (const needed of [
      'rate(peakpay_http_requests_total', 'histogram_quantile(0.99, sum by (le) (rate(peakpay_http_request_duration_seconds_bucket',
      'peakpay_engine_decision_duration_seconds_bucket', 'status=~"5.."', 'peakpay_engine_consumer_lag_messages',
      'peakpay_engine_mailbox_commands', 'peakpay_channel_requests_total', 'peakpay_channel_circuit_state', 'peakpay_channel_failovers_total',
      'peakpay_risk_refusals_total', 'peakpay_settlement_lag_seconds', 'peakpay_settlement_batch_size_bucket', 'peakpay_webhook_deliveries_total',
      'peakpay_webhook_parked',
    ]) expect(all, needed).toContain(needed);
  });
});

describe('metric names and labels', () => {
  const metrics = exported().filter((m) => m.name.startsWith('peakpay_'));

  it('name counters _total, durations _seconds, and use only bounded labels', () => {
    expect(metrics.length).toBeGreaterThan(30);
    for (const m of metrics) {
      if (m.type === 'counter') expect(m.name, m.name).toMatch(/_total$/);
      else expect(m.name, m.name).not.toMatch(/_total$/);
      if (/duration|latency|lag_seconds/.test(m.name)) expect(m.name, m.name).toMatch(/_seconds$/);
      for (const l of m.labelNames) expect(ALLOWED_LABELS.has(l), `${m.name}{${l}}`).toBe(true);
    }
  });

  it('export every channel and webhook series at zero before the first request', async () => {
    const m = engineMetrics(new Registry());
    const text = await m.registry.metrics();
    const count = (name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`)).length;
    expect(count('peakpay_channel_requests_total')).toBe(CHANNELS.length * CHANNEL_OPERATIONS.length * CHANNEL_RESULTS.length);
    expect(count('peakpay_channel_notify_total')).toBe(CHANNELS.length * CHANNEL_NOTIFY_RESULTS.length);
    expect(count('peakpay_channel_failovers_total')).toBe(CHANNELS.length * (CHANNELS.length - 1));
    expect(count('peakpay_channel_circuit_state')).toBe(CHANNELS.length);
    expect(count('peakpay_webhook_deliveries_total')).toBe(WEBHOOK_RESULTS.length);
    expect(text).toContain('peakpay_channel_request_duration_seconds_count{channel="paypal",operation="bill"} 0');
    expect(text).toContain('peakpay_webhook_parked 0');
    expect(text).toContain('peakpay_reconciliation_differences{kind="amount_mismatch"} 0');
    expect(text).toContain('peakpay_lua_errors_total{script="paymentCreate"} 0');
    expect(text).not.toMatch(/^peakpay_\S+ [1-9]/m);
  });

  it('return the same channel metrics when their module asks the engine registry again', async () => {
    const { channelMetrics } = await import('../../engine/metrics.ts');
    const m = engineMetrics(new Registry());
    expect(channelMetrics(m.registry)).toBe(m.channels);
    channelMetrics(m.registry).requests.labels('alipay', 'create', 'ok').inc();
    expect(await m.registry.metrics()).toContain('peakpay_channel_requests_total{channel="alipay",operation="create",result="ok"} 1');
  });

  it('settlement lag is 0 with nothing pending and grows while events wait', () => {
    expect(settlementLagSeconds(0, 1_000, 0, 99_000)).toBe(0);
    expect(settlementLagSeconds(5, 1_000, 0, 61_000)).toBe(60);
    expect(settlementLagSeconds(5, null, 10_000, 40_000)).toBe(30);
    expect(settlementLagSeconds(5, 50_000, 0, 40_000)).toBe(0); // an event stamped by a clock ahead of ours
  });
});

describe('alert rules', () => {
  const rules = readFileSync(join(PROMETHEUS_DIR, 'alerts.yml'), 'utf8');
  const tests = readFileSync(join(PROMETHEUS_DIR, 'alerts.test.yml'), 'utf8');
  const alerts = [...rules.matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1] as string);

  it('name the required alerts', () => {
    for (const a of [
      'PeakpayEngineDown', 'PeakpayConsumerLagGrowing', 'PeakpayIngressErrorRate', 'PeakpayChannelCircuitOpen', 'PeakpaySettlementStalled',
      'PeakpayWebhooksParked', 'PeakpayReconciliationDifferences',
    ]) expect(alerts).toContain(a);
  });

  it('each have a promtool case where they fire and one where they do not', () => {
    const cases = [...tests.matchAll(/alertname: (\w+)\n\s+exp_alerts:( \[\])?\n/g)].map((m) => ({ alert: m[1], fires: m[2] === undefined }));
    for (const a of alerts) {
      expect(cases.some((c) => c.alert === a && c.fires), `${a} firing`).toBe(true);
      expect(cases.some((c) => c.alert === a && !c.fires), `${a} quiet`).toBe(true);
    }
    for (const c of cases) expect(alerts, `test of unknown alert ${c.alert}`).toContain(c.alert);
  });

  it('read only metrics the processes export', () => {
    const names = new Set(exported().map((m) => m.name));
    for (const [, expr] of rules.matchAll(/^\s+expr: (.+)$/gm)) {
      for (const n of metricNamesIn(expr as string)) expect(names.has(n), n).toBe(true);
    }
  });
});
