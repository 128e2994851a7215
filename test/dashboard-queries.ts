// The Grafana dashboard and the Prometheus files under monitoring/, read the way the dashboard and
// alert tests need them: the dashboard's queries with Grafana's variables replaced by durations.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MONITORING_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'monitoring');
export const DASHBOARD_PATH = join(MONITORING_DIR, 'grafana', 'peakpay.json');
export const PROMETHEUS_DIR = join(MONITORING_DIR, 'prometheus');

export type Target = { refId?: string; expr?: string; datasource?: { type?: string; uid?: string } };
export type Panel = {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h?: number; w?: number; x?: number; y?: number };
  targets?: Target[];
  panels?: Panel[];
};
export type Dashboard = {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: { name?: string; type?: string; query?: string }[] };
};

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;
}

/** Every panel, including those nested in collapsed rows. */
export function allPanels(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

export function dashboardQueries(d: Dashboard): { panel: string; refId: string; expr: string }[] {
  return allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', refId: t.refId ?? '?', expr: t.expr ?? '' })));
}

/** Grafana's built-in interval variables, as Grafana would fill them for a short time range. */
export function toPromQL(expr: string, rateInterval: string): string {
  return expr
    .replace(/\$\{?__rate_interval\}?/g, rateInterval)
    .replace(/\$\{?__interval\}?/g, rateInterval)
    .replace(/\$\{?__range\}?/g, rateInterval);
}
