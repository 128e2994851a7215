// Reports this ingress's event-loop utilisation to the engines every LOAD_REPORT_EVERY_MS, on core
// NATS (no stream: a report is worth nothing a second later). An engine started with
// PEAKPAY_ENGINE_YIELD_ELU_PERCENT paces its pulls while an ingress reports itself saturated
// (engine/shards/intake.ts). Published whatever the engines' setting: ten small messages a second.
import { randomBytes } from 'node:crypto';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Gauge } from 'prom-client';
import { encodeIngressLoad, LOAD_REPORT_EVERY_MS } from '../engine/shards/intake.ts';

export function startLoadReports(nc: NatsConnection, subject: string, gauge: Gauge): { stop: () => void } {
  const ingressId = `ingress-${process.pid}-${randomBytes(4).toString('hex')}`;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let lastAtMs = performance.now();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const nowMs = performance.now();
    const elu = Math.min(1, Math.max(0, performance.eventLoopUtilization(now, last).utilization));
    const windowMs = Math.max(1, Math.round(nowMs - lastAtMs));
    last = now;
    lastAtMs = nowMs;
    gauge.set(elu);
    // A closed or reconnecting connection throws or buffers; a lost report only delays a decision by a tick.
    try {
      nc.publish(subject, encodeIngressLoad({ v: 1, ingress_id: ingressId, elu, window_ms: windowMs }));
    } catch {
      // closed: the ingress is stopping
    }
  }, LOAD_REPORT_EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
