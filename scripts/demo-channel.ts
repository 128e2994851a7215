// A channel payment against the running `npm start`: method auto (routed WeChat Pay ~80% /
// Alipay ~20%), the QR code the buyer would scan, the buyer paying in the channel's sandbox, the
// sandbox's signed callback coming back, and the payment succeeded.
//   npm run demo:channel [-- <amount in fen>]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isPeakpayApiError, PeakpayClient } from '../ingress/sdk/index.ts';
import { DATA_DIR } from './local-env.ts';

const demo = JSON.parse(readFileSync(join(DATA_DIR, 'demo-merchant.json'), 'utf8')) as { base_url: string; merchant_id: string; secret: string };
const sandboxes = JSON.parse(readFileSync(join(DATA_DIR, 'sandboxes.json'), 'utf8')) as Record<string, string>;
const amount = Number(process.argv[2] ?? 3000);
const pp = new PeakpayClient({ baseUrl: demo.base_url, merchantId: demo.merchant_id, secret: demo.secret });
try {
  let p = await pp.payments.create({
    out_trade_no: `CH${Date.now()}`, amount, currency: 'CNY', method: 'auto', scene: 'pc', subject: 'Game card 30',
    buyer: { user_id: 'u_9', ip: '203.0.113.9' },
  });
  if (p.status === 'processing') p = await pp.waitForPayment(p.id, { until: ['pending', 'failed'] });
  console.log(`created ${p.id}: ${p.status} on ${p.channel}, next_action ${JSON.stringify(p.next_action)}`);
  if (p.status !== 'pending' || !p.channel) throw new Error(`expected a pending channel payment, got ${p.status}`);
  const sandbox = sandboxes[p.channel];
  const paid = await fetch(`${sandbox}/__sandbox/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ out_trade_no: p.id }) });
  console.log(`the buyer pays in the ${p.channel} sandbox: HTTP ${paid.status}; its signed callback goes to ${demo.base_url}/v1/notify/${p.channel}`);
  p = await pp.waitForPayment(p.id, { until: ['succeeded', 'failed'] });
  console.log(`GET /v1/payments/${p.id}: ${p.status}, amount_captured ${p.amount_captured}`);
} catch (err) {
  if (!isPeakpayApiError(err)) throw err;
  console.error(`failed: HTTP ${err.status} ${err.code}: ${err.message}`);
  process.exitCode = 1;
}
