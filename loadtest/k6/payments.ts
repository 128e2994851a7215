// Steady load: balance payments with automatic capture at a constant arrival rate.
//   k6 run loadtest/k6/payments.ts                          (the demo merchant of `npm start`)
//   k6 run -e RATE=2000 -e DURATION_S=60 -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/payments.ts
// Settings (-e): RATE (payments/s, default 200), DURATION_S (30), P99_MS (250), MAX_VUS (500).
import { check } from 'k6';
import type { Options } from 'k6/options';
import { balancePayment, merchantFor, statusOf } from './lib/api.ts';
import { loadTarget, tryRead } from './lib/target.ts';

const target = loadTarget(__ENV, tryRead(() => open('../../.data/demo-merchant.json')), __ENV.SEED_FILE ? open(__ENV.SEED_FILE) : null);

export const options: Options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE ?? __ENV.K6_RATE ?? 200),
      timeUnit: '1s',
      duration: `${Number(__ENV.DURATION_S ?? 30)}s`,
      preAllocatedVUs: 50,
      maxVUs: Number(__ENV.MAX_VUS ?? 500),
    },
  },
  thresholds: { http_req_failed: ['rate<0.001'], http_req_duration: [`p(99)<${Number(__ENV.P99_MS ?? 250)}`] },
};

export default function (): void {
  const c = balancePayment(target, merchantFor(target), 'automatic');
  check(c.res, { 'payment succeeded': (r) => r.status === 201 && statusOf(c) === 'succeeded' });
}
