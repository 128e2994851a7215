// Reports this ingress's event-loop utilisation to the engines every LOAD_REPORT_EVERY_MS, on core
// NATS (no stream: a report is worth nothing a second later), with the connections the kernel
// dropped meanwhile because an accept queue was full. An engine started with
// PEAKPAY_ENGINE_YIELD_ELU_PERCENT paces its pulls while an ingress reports itself saturated and
// turning connections away (engine/shards/intake.ts). Published whatever the engines' setting: ten
// small messages a second.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Gauge } from 'prom-client';
import { encodeIngressLoad, LOAD_REPORT_EVERY_MS } from '../engine/shards/intake.ts';

/**
 * Connections the kernel dropped because a server's accept queue was full (TcpExt ListenOverflows,
 * machine-wide, counted since boot); null where /proc/net/netstat cannot be read (not Linux).
 */
export function listenOverflows(): number | null {
  let text: string;
  try {
    text = readFileSync('/proc/net/netstat', 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = (lines[i] as string).split(/\s+/);
    const vals = (lines[i + 1] as string).split(/\s+/);
    const at = names.indexOf('ListenOverflows');
    if (names[0] === 'TcpExt:' && at > 0) return Number(vals[at]);
  }
  return null;
}

export function startLoadReports(nc: NatsConnection, subject: string, gauge: Gauge): { stop: () => void } {
  const ingressId = `ingress-${process.pid}-${randomBytes(4).toString('hex')}`;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let lastAtMs = performance.now();
  let lastOverflows = listenOverflows();
  const timer = setInterval(() => {
    const overflows = listenOverflows();
    const dropped = overflows === null || lastOverflows === null ? null : Math.max(0, overflows - lastOverflows);
    lastOverflows = overflows;
    const now = performance.eventLoopUtilization();
    const nowMs = performance.now();
    const elu = Math.min(1, Math.max(0, performance.eventLoopUtilization(now, last).utilization));
    const windowMs = Math.max(1, Math.round(nowMs - lastAtMs));
    last = now;
    lastAtMs = nowMs;
    gauge.set(elu);
    // A closed or reconnecting connection throws or buffers; a lost report only delays a decision by a tick.
    try {
      nc.publish(subject, encodeIngressLoad({ v: 1, ingress_id: ingressId, elu, window_ms: windowMs, ...(dropped !== null && { listen_overflows: dropped }) }));
    } catch {
      // closed: the ingress is stopping
    }
  }, LOAD_REPORT_EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
