// One merchant takes all traffic (the storefront whose card goes viral at midnight): balance
// payments with automatic capture from many of its buyers' wallets, ramped to HOT_RATE and held.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e ACCOUNT_IDS=acc_1,acc_2,… loadtest/k6/hot-merchant.ts
//   k6 run -e SEED_FILE=$PWD/.data/loadtest-seed.json loadtest/k6/hot-merchant.ts   (the seed's first merchant)
// Settings (-e): HOT_RATE (payments/s, default 1000), HOLD_S (120), RAMP_S (20), P99_MS (250), MAX_VUS (2000).
import { check } from 'k6';
import type { Options } from 'k6/options';
import { Rate } from 'k6/metrics';
import { balancePayment, statusOf } from './lib/api.ts';
import { hotMerchantStages, k6Stages } from './lib/shapes.ts';
import { loadTarget, tryRead } from './lib/target.ts';

const target = loadTarget(__ENV, tryRead(() => open('../../.data/demo-merchant.json')), __ENV.SEED_FILE ? open(__ENV.SEED_FILE) : null);
const hot = target.merchants[0];
const accepted = new Rate('payments_accepted');

export const options: Options = {
  scenarios: {
    hot_merchant: {
      executor: 'ramping-arrival-rate',
      startRate: 10,
      timeUnit: '1s',
      stages: k6Stages(hotMerchantStages(Number(__ENV.HOT_RATE ?? 1000), Number(__ENV.HOLD_S ?? 120), Number(__ENV.RAMP_S ?? 20))),
      preAllocatedVUs: 200,
      maxVUs: Number(__ENV.MAX_VUS ?? 2000),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    http_req_duration: [`p(99)<${Number(__ENV.P99_MS ?? 250)}`],
    payments_accepted: ['rate>0.999'],
    dropped_iterations: [`count<=${Number(__ENV.DROPPED_MAX ?? 0)}`],
  },
};

export default function (): void {
  if (!hot) throw new Error('no merchant');
  const c = balancePayment(target, hot, 'automatic');
  const ok = (c.res.status === 201 && statusOf(c) === 'succeeded') || (c.res.status === 202 && statusOf(c) === 'processing');
  accepted.add(ok);
  check(c.res, { 'payment accepted (201 succeeded or 202 processing)': () => ok });
}
