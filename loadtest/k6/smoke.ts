// Smoke test: a few of each call a storefront makes, checked one by one. Run it first.
//   k6 run loadtest/k6/smoke.ts                                  (the demo merchant of `npm start`)
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e MERCHANT_ID=m_… -e MERCHANT_SECRET=sk_… -e ACCOUNT_IDS=acc_1 loadtest/k6/smoke.ts
// Fails (non-zero exit) unless every check passes.
import { check } from 'k6';
import http from 'k6/http';
import type { Options } from 'k6/options';
import { balancePayment, get, post, statusOf, uniqueRef } from './lib/api.ts';
import { loadTarget, tryRead } from './lib/target.ts';

const target = loadTarget(__ENV, tryRead(() => open('../../.data/demo-merchant.json')), __ENV.SEED_FILE ? open(__ENV.SEED_FILE) : null);

export const options: Options = {
  scenarios: { smoke: { executor: 'per-vu-iterations', vus: 1, iterations: Number(__ENV.ITERATIONS ?? 5), maxDuration: '60s' } },
  thresholds: { checks: ['rate==1'], 'http_req_duration{expected_response:true}': ['p(99)<1000'] },
};

export default function (): void {
  const m = target.merchants[0];
  if (!m) throw new Error('no merchant');
  check(http.get(`${target.baseUrl}/readyz`), { 'readyz 200': (r) => r.status === 200 });

  const auto = balancePayment(target, m, 'automatic');
  check(auto.res, {
    'automatic: 201': (r) => r.status === 201,
    'automatic: succeeded': () => statusOf(auto) === 'succeeded',
  });
  const id = typeof auto.json?.id === 'string' ? auto.json.id : 'missing';
  const read = get(target, m, `/v1/payments/${id}`);
  check(read.res, { 'read back: 200 succeeded': (r) => r.status === 200 && statusOf(read) === 'succeeded' });

  const held = balancePayment(target, m, 'manual');
  check(held.res, { 'manual: 201 authorized': (r) => r.status === 201 && statusOf(held) === 'authorized' });
  const heldId = typeof held.json?.id === 'string' ? held.json.id : 'missing';
  const captured = post(target, m, `/v1/payments/${heldId}/capture`, {}, { kind: 'capture' });
  check(captured.res, { 'capture: 200 succeeded': (r) => r.status === 200 && statusOf(captured) === 'succeeded' });

  // The same Idempotency-Key and body again: the first response, byte for byte, marked replayed.
  const key = uniqueRef('replay');
  const body = { out_trade_no: uniqueRef('K6R'), amount: target.amount, currency: 'CNY', method: 'balance', account_id: m.accounts[0], capture: 'automatic', scene: 'pc' };
  const first = post(target, m, '/v1/payments', body, { kind: 'replay' }, key);
  const again = post(target, m, '/v1/payments', body, { kind: 'replay' }, key);
  check(again.res, {
    'replay: same status and body': (r) => r.status === first.res.status && r.body === first.res.body,
    'replay: Idempotent-Replayed': (r) => r.headers['Idempotent-Replayed'] === 'true',
  });

  // A wrong secret is refused with the stable code.
  const forged = post(target, { ...m, secret: `${m.secret}x` }, '/v1/payments', body, { kind: 'forged' });
  check(forged.res, { 'forged signature: 401 auth.invalid_signature': (r) => r.status === 401 && forged.json?.code === 'auth.invalid_signature' });
}
