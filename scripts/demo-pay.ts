// Sends one signed payment to the running `npm start` with the SDK (ingress/sdk), using
// .data/demo-merchant.json, captures it, and prints each step: the shortest way to see the whole
// flow work, and the code a storefront would write.
//   npm run demo:pay [-- <amount in fen>]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isPeakpayApiError, PeakpayClient } from '../ingress/sdk/index.ts';
import { DATA_DIR } from './local-env.ts';

const demo = JSON.parse(readFileSync(join(DATA_DIR, 'demo-merchant.json'), 'utf8')) as {
  base_url: string; merchant_id: string; secret: string; account_id: string;
};
const amount = Number(process.argv[2] ?? 1999);
const show = (what: string, value: unknown) => console.log(`${what}\n${JSON.stringify(value, null, 2)}\n`);

const pp = new PeakpayClient({ baseUrl: demo.base_url, merchantId: demo.merchant_id, secret: demo.secret });
try {
  let payment = await pp.payments.create({
    out_trade_no: `DEMO${Date.now()}`, amount, currency: 'CNY', method: 'balance', account_id: demo.account_id,
    capture: 'manual', hold_ttl_s: 900, scene: 'pc', subject: 'Game card 100',
    buyer: { user_id: 'u_9', device_id: 'd_77', ip: '203.0.113.9' },
  });
  show('POST /v1/payments', payment);
  // 202 processing: the engine did not decide within the ingress deadline; wait for its decision.
  if (payment.status === 'processing') payment = await pp.waitForPayment(payment.id);
  if (payment.status === 'authorized') {
    show(`POST /v1/payments/${payment.id}/capture`, await pp.payments.capture(payment.id));
    show(`GET /v1/payments/${payment.id}`, await pp.payments.get(payment.id));
  }
  show(`GET /v1/accounts/${demo.account_id}`, await pp.accounts.get(demo.account_id));
} catch (err) {
  if (!isPeakpayApiError(err)) throw err;
  console.error(`failed: HTTP ${err.status} ${err.code} (request ${err.requestId ?? '-'}, ${err.attempts} attempt(s)): ${err.message}`);
  process.exitCode = 1;
}
