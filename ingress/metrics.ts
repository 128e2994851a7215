// Prometheus metrics of the ingress (GET /metrics on its own HTTP port). Labels are bounded: the
// route is fastify's pattern (/v1/payments/:id, or "unmatched"), never the URL with its ids; the
// method is one Node's HTTP parser accepts; the status one fastify sends.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SendResult } from '../engine/client/index.ts';

export function ingressMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({
      name: 'peakpay_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'peakpay_http_request_duration_seconds',
      help: 'HTTP request latency by method and route',
      labelNames: ['method', 'route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers: [registry],
    }),
    eventLoopUtilization: new Gauge({
      name: 'peakpay_ingress_event_loop_utilization_ratio',
      help: 'Share of the last 100 ms the event loop was busy (what the ingress reports to the engines: engine/shards/intake.ts)',
      registers: [registry],
    }),
    acceptQueue: new Gauge({
      name: 'peakpay_ingress_accept_queue_connections',
      help: 'Connections waiting in the listening socket\'s accept queue, sampled every 100 ms (Linux)',
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'peakpay_auth_failures_total',
      help: 'Rejected merchant calls by error code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'peakpay_rate_limited_total',
      help: 'Requests refused with 429 rate_limited, by limit (merchant or ip)',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    engineTimeouts: new Counter({
      name: 'peakpay_ingress_engine_timeouts_total',
      help: 'Requests answered 202 because the engine did not decide within the deadline',
      registers: [registry],
    }),
    backlogAccepts: new Counter({
      name: 'peakpay_ingress_backlog_accepts_total',
      help: 'Requests answered 202 once JetStream stored them, because the engine lagged on their shard (PEAKPAY_INGRESS_BACKLOG_LAG_MS)',
      registers: [registry],
    }),
    frontDoorAccepts: new Counter({
      name: 'peakpay_ingress_front_door_accepts_total',
      help: 'Requests answered 202 once JetStream stored them, because this ingress was falling behind its connections (accept queue)',
      registers: [registry],
    }),
  };
}
export type IngressMetrics = ReturnType<typeof ingressMetrics>;

/** A command answered 202 without the engine's decision: counted by why (deadline, backlog or front door). */
export function countUndecided(m: IngressMetrics, sent: SendResult): void {
  if (sent.kind === 'timeout' && sent.frontDoor) m.frontDoorAccepts.inc();
  else if (sent.kind === 'timeout' && sent.backlog) m.backlogAccepts.inc();
  else m.engineTimeouts.inc();
}
