// Merchant authentication through the real server, beyond the one-case-per-code table of
// bad-input.test.ts: every /v1 route the server registers refuses an unsigned call (so routes
// added later are covered), each code of API.md is reached on GET and POST, a forged request
// cannot burn a real client's nonce, and no failure publishes a command.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registeredRoutes } from '../../ingress/server.ts';
import { authorization, randomNonce } from '../../ingress/signature.ts';
import { startHarness, type Harness } from '../harness.ts';
import { uniqueId } from '../helpers.ts';

let h: Harness;
let merchant: { id: string; secret: string };
const nowS = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  h = await startHarness({ settlement: false });
  merchant = await h.newMerchant();
});
afterAll(async () => {
  await h?.stop();
});

type Req = { method: 'GET' | 'POST'; url: string; body: string; auth?: string };

function send(r: Req) {
  return h.app.inject({
    method: r.method,
    url: r.url,
    ...(r.body === '' ? {} : { payload: r.body }),
    headers: {
      ...(r.body === '' ? {} : { 'content-type': 'application/json' }),
      ...(r.method === 'POST' ? { 'idempotency-key': uniqueId('k') } : {}),
      ...(r.auth === undefined ? {} : { authorization: r.auth }),
    },
  });
}

async function expectProblem(res: Awaited<ReturnType<typeof send>>, status: number, code: string) {
  expect({ status: res.statusCode, code: res.json().code }).toEqual({ status, code });
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
}

const createBody = () => JSON.stringify({ out_trade_no: uniqueId('T'), amount: 100, currency: 'CNY', method: 'balance', account_id: 'acc_1', scene: 'pc' });
const post = (auth: (body: string) => string | undefined): Req => {
  const body = createBody();
  const a = auth(body);
  return { method: 'POST', url: '/v1/payments', body, ...(a === undefined ? {} : { auth: a }) };
};
const get = (auth: (url: string) => string | undefined, url = '/v1/accounts/acc_1'): Req => {
  const a = auth(url);
  return { method: 'GET', url, body: '', ...(a === undefined ? {} : { auth: a }) };
};

describe('merchant authentication', () => {
  it('refuses an unsigned call on every /v1 route the server registers', async () => {
    const merchantRoutes = registeredRoutes(h.app).filter((r) => r.url.startsWith('/v1/') && !r.url.startsWith('/v1/notify/'));
    expect(merchantRoutes.length).toBeGreaterThanOrEqual(9);
    const before = await h.streamMessages('cmd');
    for (const r of merchantRoutes) {
      const url = r.url.replace(/:([A-Za-z0-9_]+)/g, 'x1');
      const res = await send({ method: r.method as 'GET' | 'POST', url: r.method === 'GET' && url === '/v1/payments' ? `${url}?out_trade_no=T1` : url, body: r.method === 'POST' ? createBody() : '' });
      await expectProblem(res, 401, 'auth.missing');
    }
    expect(await h.streamMessages('cmd')).toBe(before);
  });

  const failures: { name: string; code: string; req: () => Req }[] = [
    { name: 'no header (GET)', code: 'auth.missing', req: () => get(() => undefined) },
    { name: 'another scheme', code: 'auth.malformed', req: () => post(() => 'Basic bTox') },
    { name: 'a field missing', code: 'auth.malformed', req: () => post((b) => authorization(merchant.id, merchant.secret, 'POST', '/v1/payments', b).replace(/,signature="[0-9a-f]+"/, '')) },
    { name: 'upper-case hex signature', code: 'auth.malformed', req: () => get((u) => authorization(merchant.id, merchant.secret, 'GET', u, '').replace(/signature="([0-9a-f]+)"/, (_m, s: string) => `signature="${s.toUpperCase()}"`)) },
    { name: 'a header over 1 KiB', code: 'auth.malformed', req: () => post((b) => `${authorization(merchant.id, merchant.secret, 'POST', '/v1/payments', b)}${' '.repeat(1100)}`) },
    { name: 'a nonce of 15 characters', code: 'auth.malformed', req: () => get((u) => authorization(merchant.id, merchant.secret, 'GET', u, '', { nonce: 'A'.repeat(15) })) },
    { name: 'an unknown merchant', code: 'auth.unknown_merchant', req: () => get((u) => authorization('m_nobody_here', merchant.secret, 'GET', u, '')) },
    { name: 'signed for another path', code: 'auth.invalid_signature', req: () => get(() => authorization(merchant.id, merchant.secret, 'GET', '/v1/accounts/acc_2', '')) },
    { name: 'signed without the query', code: 'auth.invalid_signature', req: () => get(() => authorization(merchant.id, merchant.secret, 'GET', '/v1/payments', ''), '/v1/payments?out_trade_no=T1') },
    { name: 'signed for another method', code: 'auth.invalid_signature', req: () => post((b) => authorization(merchant.id, merchant.secret, 'PUT', '/v1/payments', b)) },
    { name: 'a timestamp 301 s ahead', code: 'auth.timestamp_out_of_window', req: () => post((b) => authorization(merchant.id, merchant.secret, 'POST', '/v1/payments', b, { timestamp: nowS() + 301 })) },
    { name: 'a timestamp 301 s behind (GET)', code: 'auth.timestamp_out_of_window', req: () => get((u) => authorization(merchant.id, merchant.secret, 'GET', u, '', { timestamp: nowS() - 301 })) },
  ];
  for (const f of failures) {
    it(`${f.name} → 401 ${f.code}, nothing published`, async () => {
      const before = await h.streamMessages('cmd');
      await expectProblem(await send(f.req()), 401, f.code);
      expect(await h.streamMessages('cmd')).toBe(before);
    });
  }

  it('accepts a timestamp 250 s off, and refuses its nonce a second time, also on another route', async () => {
    const nonce = randomNonce();
    const first = await send(get((u) => authorization(merchant.id, merchant.secret, 'GET', u, '', { nonce, timestamp: nowS() - 250 })));
    await expectProblem(first, 404, 'account.not_found'); // authenticated: the account does not exist
    const before = await h.streamMessages('cmd');
    await expectProblem(await send(post((b) => authorization(merchant.id, merchant.secret, 'POST', '/v1/payments', b, { nonce }))), 401, 'auth.nonce_reused');
    expect(await h.streamMessages('cmd')).toBe(before);
  });

  it('does not let a forged request burn the nonce of a real one', async () => {
    const nonce = randomNonce();
    const forged = await send(get((u) => authorization(merchant.id, 'sk_guess', 'GET', u, '', { nonce })));
    await expectProblem(forged, 401, 'auth.invalid_signature');
    const real = await send(get((u) => authorization(merchant.id, merchant.secret, 'GET', u, '', { nonce })));
    await expectProblem(real, 404, 'account.not_found');
  });

  it("keeps nonces per merchant: another merchant's nonce is not reused", async () => {
    const other = await h.newMerchant();
    const nonce = randomNonce();
    await expectProblem(await send(get((u) => authorization(merchant.id, merchant.secret, 'GET', u, '', { nonce }))), 404, 'account.not_found');
    await expectProblem(await send(get((u) => authorization(other.id, other.secret, 'GET', u, '', { nonce }))), 404, 'account.not_found');
  });

  it('refuses a disabled merchant with 403 auth.merchant_disabled', async () => {
    const m = await h.newMerchant();
    await h.pool.query(`UPDATE merchants SET status = 'disabled' WHERE id = $1`, [m.id]);
    const before = await h.streamMessages('cmd');
    await expectProblem(await send(post((b) => authorization(m.id, m.secret, 'POST', '/v1/payments', b))), 403, 'auth.merchant_disabled');
    expect(await h.streamMessages('cmd')).toBe(before);
  });
});
