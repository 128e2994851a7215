// Singles' Day rehearsal: normal traffic, the midnight spike of SPIKE_FACTOR × normal, back to
// normal, as balance payments with automatic capture spread over the merchants (and wallets).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/rehearsal.ts
//   k6 run -e SEED_FILE=$PWD/.data/loadtest-seed.json -e NORMAL_RATE=300 -e SPIKE_FACTOR=10 loadtest/k6/rehearsal.ts
// Settings (-e): NORMAL_RATE (payments/s, default 200), SPIKE_FACTOR (10), WARM_S (60), RAMP_S (10),
// SPIKE_S (120), AFTER_S (120), P99_MS (p99 bound over the whole run, default 1000), MAX_VUS (3000).
// Thresholds make k6 exit non-zero when missed: p99 latency, failed requests, payments not accepted,
// and iterations k6 had to drop because every VU was busy (the server stopped keeping up).
import { check } from 'k6';
import type { Options } from 'k6/options';
import { Rate } from 'k6/metrics';
import { balancePayment, merchantFor, statusOf } from './lib/api.ts';
import { k6Stages, rehearsalStages } from './lib/shapes.ts';
import { loadTarget, tryRead } from './lib/target.ts';

const target = loadTarget(__ENV, tryRead(() => open('../../.data/demo-merchant.json')), __ENV.SEED_FILE ? open(__ENV.SEED_FILE) : null);
const normal = Number(__ENV.NORMAL_RATE ?? 200);
const stages = rehearsalStages(normal, Number(__ENV.SPIKE_FACTOR ?? 10), {
  warmS: Number(__ENV.WARM_S ?? 60), rampS: Number(__ENV.RAMP_S ?? 10), spikeS: Number(__ENV.SPIKE_S ?? 120), afterS: Number(__ENV.AFTER_S ?? 120),
});

/** Accepted = decided (201 succeeded) or durably queued (202 processing): never lost, never refused. */
const accepted = new Rate('payments_accepted');

export const options: Options = {
  scenarios: {
    rehearsal: {
      executor: 'ramping-arrival-rate',
      startRate: normal,
      timeUnit: '1s',
      stages: k6Stages(stages),
      preAllocatedVUs: Math.min(500, Number(__ENV.MAX_VUS ?? 3000)),
      maxVUs: Number(__ENV.MAX_VUS ?? 3000),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    http_req_duration: [`p(99)<${Number(__ENV.P99_MS ?? 1000)}`],
    payments_accepted: ['rate>0.999'],
    dropped_iterations: [`count<=${Number(__ENV.DROPPED_MAX ?? 0)}`],
  },
};

export default function (): void {
  const c = balancePayment(target, merchantFor(target), 'automatic');
  const ok = (c.res.status === 201 && statusOf(c) === 'succeeded') || (c.res.status === 202 && statusOf(c) === 'processing');
  accepted.add(ok);
  check(c.res, { 'payment accepted (201 succeeded or 202 processing)': () => ok });
}
