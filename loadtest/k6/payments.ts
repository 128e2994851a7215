// k6 ≥ 1.0 runs this TypeScript directly:
//   k6 run loadtest/k6/payments.ts            (reads .data/demo-merchant.json written by `npm start`)
//   K6_RATE=2000 K6_DURATION=60s k6 run loadtest/k6/payments.ts
// Each iteration creates a balance payment with automatic capture, signed as API.md requires.
import http from 'k6/http';
import crypto from 'k6/crypto';
import { check } from 'k6';
import type { Options } from 'k6/options';

type Demo = { base_url: string; merchant_id: string; secret: string; account_id: string };
const demo = JSON.parse(open('../../.data/demo-merchant.json')) as Demo;

export const options: Options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.K6_RATE ?? 200),
      timeUnit: '1s',
      duration: __ENV.K6_DURATION ?? '30s',
      preAllocatedVUs: 50,
      maxVUs: 500,
    },
  },
  thresholds: { http_req_failed: ['rate<0.01'], http_req_duration: ['p(99)<250'] },
};

function nonce(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 24; i++) s += alphabet.charAt(Math.floor(Math.random() * alphabet.length));
  return s;
}

export function signedHeaders(method: string, path: string, body: string): Record<string, string> {
  const ts = String(Math.floor(Date.now() / 1000));
  const n = nonce();
  const sig = crypto.hmac('sha256', demo.secret, `${method}\n${path}\n${ts}\n${n}\n${body}\n`, 'hex');
  return {
    'content-type': 'application/json',
    authorization: `PEAKPAY-HMAC-SHA256 merchant_id="${demo.merchant_id}",timestamp="${ts}",nonce="${n}",signature="${sig}"`,
  };
}

export default function (): void {
  const otn = `K6${__VU}x${__ITER}x${Date.now()}`;
  const body = JSON.stringify({
    out_trade_no: otn, amount: 100, currency: 'CNY', method: 'balance', account_id: demo.account_id, capture: 'automatic', scene: 'pc',
  });
  const res = http.post(`${demo.base_url}/v1/payments`, body, {
    headers: { ...signedHeaders('POST', '/v1/payments', body), 'idempotency-key': otn },
  });
  check(res, { 'created': (r) => r.status === 201 || r.status === 202 });
}
