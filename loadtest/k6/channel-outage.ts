// Channel outage and failover: payments with method "auto" while an operator takes the primary
// channel's sandbox down and brings it back. Payments must keep being routed (to another channel
// while the primary is out) and none may fail.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e SANDBOX_URL=http://127.0.0.1:<port of the primary's sandbox> \
//          -e PRIMARY_CHANNEL=wechat_pay loadtest/k6/channel-outage.ts
// Settings (-e): RATE (payments/s, default 50), DURATION_S (180), OUTAGE_AT_S (60), OUTAGE_S (60),
// SCENE (pc: QR code), P99_MS (1000).
//
// Written against the sandbox control contract (engine/channels/sandbox-kit.ts, one sandbox per
// channel in engine/channels/<name>/sandbox.ts): POST <sandbox>/__sandbox/faults with JSON
// {outage: true|false, latencyMs, errorRate}. The channel sandboxes and the merchant's channel
// configuration were being built while this script was written; it has not run against them yet.
import { check, sleep } from 'k6';
import http from 'k6/http';
import type { Options } from 'k6/options';
import { Counter, Rate } from 'k6/metrics';
import { merchantFor, post, statusOf, uniqueRef } from './lib/api.ts';
import { loadTarget, tryRead } from './lib/target.ts';

const target = loadTarget(__ENV, tryRead(() => open('../../.data/demo-merchant.json')), __ENV.SEED_FILE ? open(__ENV.SEED_FILE) : null);
const sandboxUrl = (__ENV.SANDBOX_URL ?? '').replace(/\/$/, '');
const primary = __ENV.PRIMARY_CHANNEL ?? 'wechat_pay';
const durationS = Number(__ENV.DURATION_S ?? 180);
const outageAtS = Number(__ENV.OUTAGE_AT_S ?? 60);
const outageS = Number(__ENV.OUTAGE_S ?? 60);

/** Routed = the engine chose a channel and the buyer has something to pay (QR code, redirect …). */
const routed = new Rate('payments_routed');
const byChannel = new Counter('payments_by_channel');
const duringOutageOnPrimary = new Counter('payments_on_primary_during_outage');

export const options: Options = {
  scenarios: {
    payments: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE ?? 50), timeUnit: '1s', duration: `${durationS}s`, preAllocatedVUs: 50, maxVUs: 500 },
    operator: { executor: 'per-vu-iterations', exec: 'operator', vus: 1, iterations: 1, startTime: `${outageAtS}s`, maxDuration: `${outageS + 30}s` },
  },
  thresholds: {
    'http_req_failed{scenario:payments}': ['rate<0.001'],
    'http_req_duration{scenario:payments}': [`p(99)<${Number(__ENV.P99_MS ?? 1000)}`],
    payments_routed: ['rate>0.999'],
    // Failover: while the primary is down, no payment may be routed to it.
    payments_on_primary_during_outage: ['count==0'],
    'checks{scenario:operator}': ['rate==1'],
  },
};

export function setup(): { startMs: number } {
  if (!sandboxUrl) throw new Error('set SANDBOX_URL to the control address of the primary channel sandbox');
  const r = http.post(`${sandboxUrl}/__sandbox/faults`, JSON.stringify({ outage: false, latencyMs: 0, errorRate: 0 }), { headers: { 'content-type': 'application/json' } });
  if (r.status !== 200) throw new Error(`sandbox control answered ${r.status}`);
  return { startMs: Date.now() };
}

export default function (data: { startMs: number }): void {
  const m = merchantFor(target);
  const c = post(target, m, '/v1/payments', {
    out_trade_no: uniqueRef('K6C'), amount: target.amount, currency: 'CNY', method: 'auto', capture: 'automatic',
    scene: __ENV.SCENE ?? 'pc', subject: 'Game card 100',
  }, { kind: 'create_auto_channel' });
  const channel = typeof c.json?.channel === 'string' ? c.json.channel : 'none';
  const ok = c.res.status === 201 && ['requires_action', 'pending'].includes(statusOf(c) ?? '') && channel !== 'none';
  routed.add(ok);
  byChannel.add(1, { channel });
  const t = (Date.now() - data.startMs) / 1000;
  // A margin of 2 s at each edge: the circuit needs a few failures to open and a probe to close.
  if (t > outageAtS + 2 && t < outageAtS + outageS - 2 && channel === primary) duringOutageOnPrimary.add(1);
  check(c.res, { 'payment routed to a channel': () => ok });
}

/** The operator: primary down at OUTAGE_AT_S, back up OUTAGE_S later. */
export function operator(): void {
  const faults = (outage: boolean) =>
    http.post(`${sandboxUrl}/__sandbox/faults`, JSON.stringify({ outage, latencyMs: 0, errorRate: 0 }), { headers: { 'content-type': 'application/json' }, tags: { name: 'sandbox_faults' } });
  check(faults(true), { 'primary channel down': (r) => r.status === 200 });
  sleep(outageS);
  check(faults(false), { 'primary channel back': (r) => r.status === 200 });
}
