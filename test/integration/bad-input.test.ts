// Bad input in the walking skeleton: API.md's problem+json with a stable code, and nothing
// published to JetStream (the command stream's message count does not move).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorization } from '../../ingress/signature.ts';
import { startHarness, type Harness } from '../harness.ts';
import { uniqueId } from '../helpers.ts';

let h: Harness;
let merchant: { id: string; secret: string };

beforeAll(async () => {
  h = await startHarness({ settlement: false });
  merchant = await h.newMerchant({ paymentAmountMax: 10_000 });
});
afterAll(async () => {
  await h?.stop();
});

const good = () => ({ out_trade_no: uniqueId('T'), amount: 1999, currency: 'CNY', method: 'balance', account_id: 'acc_1', scene: 'pc' });

type Case = { name: string; status: number; code: string; send: () => ReturnType<Harness['call']> };

const cases: Case[] = [
  { name: 'malformed JSON', status: 400, code: 'request.malformed_json', send: () => h.call(merchant, 'POST', '/v1/payments', '{"amount": 19') },
  { name: 'a float amount', status: 400, code: 'validation.failed', send: () => h.call(merchant, 'POST', '/v1/payments', { ...good(), amount: 19.99 }) },
  { name: 'a negative amount', status: 400, code: 'validation.failed', send: () => h.call(merchant, 'POST', '/v1/payments', { ...good(), amount: -5 }) },
  { name: 'a zero amount', status: 400, code: 'validation.failed', send: () => h.call(merchant, 'POST', '/v1/payments', { ...good(), amount: 0 }) },
  { name: 'a string amount', status: 400, code: 'validation.failed', send: () => h.call(merchant, 'POST', '/v1/payments', { ...good(), amount: '1999' }) },
  { name: 'an amount above the merchant maximum', status: 400, code: 'validation.amount_above_maximum', send: () => h.call(merchant, 'POST', '/v1/payments', { ...good(), amount: 10_001 }) },
  { name: 'an unknown field', status: 400, code: 'validation.failed', send: () => h.call(merchant, 'POST', '/v1/payments', { ...good(), tip: 1 }) },
  { name: 'a lower-case currency', status: 400, code: 'validation.failed', send: () => h.call(merchant, 'POST', '/v1/payments', { ...good(), currency: 'cny' }) },
  { name: 'balance without account_id', status: 400, code: 'validation.failed', send: () => h.call(merchant, 'POST', '/v1/payments', { ...good(), account_id: undefined }) },
  { name: 'an unknown merchant', status: 401, code: 'auth.unknown_merchant', send: () => h.call({ id: 'm_nobody', secret: 'x' }, 'POST', '/v1/payments', good()) },
  { name: 'a bad signature', status: 401, code: 'auth.invalid_signature', send: () => h.call({ id: merchant.id, secret: 'sk_wrong' }, 'POST', '/v1/payments', good()) },
  {
    name: 'a body tampered after signing', status: 401, code: 'auth.invalid_signature',
    send: () => {
      const body = JSON.stringify(good());
      return h.app.inject({
        method: 'POST', url: '/v1/payments', payload: body.replace('1999', '1'),
        headers: { 'content-type': 'application/json', 'idempotency-key': uniqueId('k'), authorization: authorization(merchant.id, merchant.secret, 'POST', '/v1/payments', body) },
      });
    },
  },
  {
    name: 'a timestamp out of the window', status: 401, code: 'auth.timestamp_out_of_window',
    send: () => {
      const body = JSON.stringify(good());
      return h.app.inject({
        method: 'POST', url: '/v1/payments', payload: body,
        headers: {
          'content-type': 'application/json', 'idempotency-key': uniqueId('k'),
          authorization: authorization(merchant.id, merchant.secret, 'POST', '/v1/payments', body, { timestamp: Math.floor(Date.now() / 1000) - 301 }),
        },
      });
    },
  },
  {
    name: 'a reused nonce', status: 401, code: 'auth.nonce_reused',
    send: async () => {
      const nonce = 'N0nce' + uniqueId('x').replace(/_/g, '');
      const get = () => h.app.inject({ method: 'GET', url: '/v1/accounts/acc_1', headers: { authorization: authorization(merchant.id, merchant.secret, 'GET', '/v1/accounts/acc_1', '', { nonce }) } });
      await get();
      return get();
    },
  },
  { name: 'no Authorization header', status: 401, code: 'auth.missing', send: () => h.app.inject({ method: 'POST', url: '/v1/payments', payload: JSON.stringify(good()), headers: { 'content-type': 'application/json' } }) },
  { name: 'a malformed Authorization header', status: 401, code: 'auth.malformed', send: () => h.app.inject({ method: 'GET', url: '/v1/accounts/a', headers: { authorization: 'Bearer abc' } }) },
  { name: 'a missing Idempotency-Key', status: 400, code: 'idempotency.key_missing', send: () => h.call(merchant, 'POST', '/v1/payments', good(), { 'idempotency-key': undefined }) },
  { name: 'a body over 16 KiB', status: 413, code: 'request.too_large', send: () => h.call(merchant, 'POST', '/v1/payments', { ...good(), subject: 'x'.repeat(17_000) }) },
];

describe('bad input changes nothing and gets a stable code', () => {
  for (const c of cases) {
    it(`${c.name} → ${c.status} ${c.code}, nothing published`, async () => {
      const before = await h.streamMessages('cmd');
      const res = await c.send();
      expect(res.statusCode).toBe(c.status);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      const problem = res.json();
      expect(problem).toMatchObject({ status: c.status, code: c.code });
      expect(typeof problem.request_id).toBe('string');
      expect(Array.isArray(problem.errors)).toBe(true);
      expect(await h.streamMessages('cmd')).toBe(before);
    });
  }

  it('names the offending field of a float amount', async () => {
    const res = await h.call(merchant, 'POST', '/v1/payments', { ...good(), amount: 19.99 });
    expect(res.json().errors).toContainEqual(expect.objectContaining({ path: 'amount' }));
  });
});
