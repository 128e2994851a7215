// Sends one signed payment to the running `npm start` using .data/demo-merchant.json, captures
// it, and prints each response: the shortest way to see the whole flow work.
//   npm run demo:pay [-- <amount in fen>]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { authorization } from '../ingress/signature.ts';
import { DATA_DIR } from './local-env.ts';

const demo = JSON.parse(readFileSync(join(DATA_DIR, 'demo-merchant.json'), 'utf8')) as {
  base_url: string; merchant_id: string; secret: string; account_id: string;
};
const amount = Number(process.argv[2] ?? 1999);

async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const raw = body === undefined ? '' : JSON.stringify(body);
  const res = await fetch(`${demo.base_url}${path}`, {
    method,
    headers: {
      authorization: authorization(demo.merchant_id, demo.secret, method, path, raw),
      ...(raw ? { 'content-type': 'application/json' } : {}),
      ...(method === 'POST' ? { 'idempotency-key': `demo-${Date.now()}-${Math.random().toString(36).slice(2)}` } : {}),
    },
    ...(raw ? { body: raw } : {}),
  });
  const json = (await res.json()) as unknown;
  console.log(`${method} ${path} → ${res.status}\n${JSON.stringify(json, null, 2)}\n`);
  return json;
}

const p = (await call('POST', '/v1/payments', {
  out_trade_no: `DEMO${Date.now()}`, amount, currency: 'CNY', method: 'balance', account_id: demo.account_id,
  capture: 'manual', hold_ttl_s: 900, scene: 'pc', subject: 'Game card 100', buyer: { user_id: 'u_9', device_id: 'd_77', ip: '203.0.113.9' },
})) as { id?: string };
if (p.id) {
  await call('POST', `/v1/payments/${p.id}/capture`, {});
  await new Promise((r) => setTimeout(r, 300));
  await call('GET', `/v1/payments/${p.id}`);
  await call('GET', `/v1/accounts/${demo.account_id}`);
}
