// What the ingress writes to its log and to /metrics, captured in memory over a session with
// successful calls, forged signatures, other 4xx and a forced 5xx:
//   - no merchant secret, master key, Authorization header value or signature appears anywhere;
//   - every line logged while serving a request carries that request's id as `request_id`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { merchantKeys } from '../../engine/redis/keys.ts';
import { creditAccount } from '../../scripts/ops.ts';
import { startIngress } from '../../ingress/service.ts';
import { authorization, randomNonce } from '../../ingress/signature.ts';
import { startHarness, type Harness } from '../harness.ts';
import { TEST_MASTER_KEY, uniqueId } from '../helpers.ts';

let h: Harness;
let ingress: Awaited<ReturnType<typeof startIngress>>;
const logged: string[] = [];
let merchant: { id: string; secret: string };
/** Every Authorization value and signature this test sent. */
const sentAuth: string[] = [];
const sentSignatures: string[] = [];
/** request-id header of every response, by status. */
const served: { id: string; status: number }[] = [];
let linesBeforeSession = 0;

beforeAll(async () => {
  h = await startHarness();
  // The ingress under test logs everything it has (trace) into memory.
  ingress = await startIngress({ ...h.config, logLevel: 'trace' }, {
    pool: h.pool, listen: false, logDestination: { write: (line: string) => void logged.push(line) },
  });
  merchant = await h.newMerchant();
  linesBeforeSession = logged.length;
});
afterAll(async () => {
  await ingress?.stop();
  await h?.stop();
});

async function call(m: { id: string; secret: string }, method: 'GET' | 'POST', url: string, body?: unknown, opts: { secretForSigning?: string; nonce?: string; headers?: Record<string, string> } = {}) {
  const raw = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const auth = authorization(m.id, opts.secretForSigning ?? m.secret, method, url, raw, { nonce: opts.nonce ?? randomNonce() });
  sentAuth.push(auth);
  sentSignatures.push(/signature="([0-9a-f]+)"/.exec(auth)?.[1] as string);
  const res = await ingress.app.inject({
    method, url,
    ...(raw ? { payload: raw } : {}),
    headers: { authorization: auth, ...(raw ? { 'content-type': 'application/json' } : {}), ...(method === 'POST' ? { 'idempotency-key': uniqueId('k') } : {}), ...opts.headers },
  });
  served.push({ id: res.headers['request-id'] as string, status: res.statusCode });
  return res;
}

describe('logs and metrics of the ingress', () => {
  it('run a session: successes, forged signatures, 4xx and a forced 5xx', async () => {
    expect((await call(merchant, 'POST', '/v1/accounts', { account_id: 'acc_1', currency: 'CNY' })).statusCode).toBe(201);
    await creditAccount(ingress.ctx.client, merchant.id, 'acc_1', 50_000, 'CNY', 'float');
    const created = await call(merchant, 'POST', '/v1/payments', { out_trade_no: uniqueId('T'), amount: 1200, currency: 'CNY', method: 'balance', account_id: 'acc_1', capture: 'manual', scene: 'pc' });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    expect((await call(merchant, 'POST', `/v1/payments/${id}/capture`, {})).statusCode).toBe(200);
    expect((await call(merchant, 'GET', `/v1/payments/${id}`)).statusCode).toBe(200);

    // Forged and broken authentication.
    expect((await call(merchant, 'GET', `/v1/payments/${id}`, undefined, { secretForSigning: 'sk_wrong_guess' })).json().code).toBe('auth.invalid_signature');
    expect((await call(merchant, 'POST', '/v1/payments', { amount: 1 }, { secretForSigning: `${merchant.secret}x` })).json().code).toBe('auth.invalid_signature');
    expect((await call({ id: 'm_nobody', secret: merchant.secret }, 'GET', '/v1/accounts/acc_1')).json().code).toBe('auth.unknown_merchant');
    const nonce = randomNonce();
    await call(merchant, 'GET', '/v1/accounts/acc_1', undefined, { nonce });
    expect((await call(merchant, 'GET', '/v1/accounts/acc_1', undefined, { nonce })).json().code).toBe('auth.nonce_reused');

    // Other 4xx.
    expect((await call(merchant, 'POST', '/v1/payments', { amount: 19.99 })).statusCode).toBe(400);
    expect((await call(merchant, 'POST', '/v1/payments', '{"amount":')).statusCode).toBe(400);
    expect((await call(merchant, 'GET', '/v1/payments/pay_none')).statusCode).toBe(404);
    expect((await call(merchant, 'POST', `/v1/payments/${id}/cancel`, {})).statusCode).toBe(409);

    // A 5xx: a payment record in Redis that no longer parses (as after a bad manual edit).
    await ingress.ctx.redis.hset(merchantKeys(h.names.redisPrefix, merchant.id).payment('pay_broken'), 'amount', 'not a number', 'secret', merchant.secret);
    const broken = await call(merchant, 'GET', '/v1/payments/pay_broken');
    expect(broken.statusCode).toBe(500);
    expect(broken.json()).toMatchObject({ code: 'internal', detail: 'see the server log for this request_id', errors: [] });
    expect(broken.body).not.toContain('not a number');
  });

  const secrets = () => [
    ['merchant secret', merchant.secret],
    ['master key (hex)', TEST_MASTER_KEY],
    ['master key (base64)', Buffer.from(TEST_MASTER_KEY, 'hex').toString('base64')],
    ...sentAuth.map((a, i) => [`Authorization #${i}`, a]),
    ...sentSignatures.map((s, i) => [`signature #${i}`, s]),
  ] as const;

  it('logs none of the secrets', () => {
    const all = logged.join('');
    // The 5xx was logged, so the check below runs over real output.
    expect(logged.length).toBeGreaterThan(linesBeforeSession);
    for (const [what, value] of secrets()) expect({ what, found: all.includes(value) }).toEqual({ what, found: false });
  });

  it('logs the 5xx with its request_id, and every line of a request carries its request_id', () => {
    const lines = logged.slice(linesBeforeSession).map((l) => JSON.parse(l) as Record<string, unknown>);
    const fiveHundred = served.find((s) => s.status === 500)?.id;
    expect(lines.some((l) => l.request_id === fiveHundred && l.level === 50)).toBe(true);
    const ids = new Set(served.map((s) => s.id));
    for (const line of lines) expect({ msg: line.msg, known: ids.has(line.request_id as string) }).toEqual({ msg: line.msg, known: true });
  });

  it('exposes none of the secrets in /metrics', async () => {
    const metrics = await ingress.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('peakpay_auth_failures_total{code="auth.invalid_signature"} 2');
    for (const [what, value] of secrets()) expect({ what, found: metrics.body.includes(value) }).toEqual({ what, found: false });
  });
});
