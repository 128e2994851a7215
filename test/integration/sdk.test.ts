// The SDK (ingress/sdk) over real HTTP: against the real ingress on a port (signing accepted,
// every endpoint, one payment despite a dropped response, 4xx not retried, a real 202 waited
// out), and against a tiny scripted node:http server for the answers the ingress cannot be made
// to give on demand (429 with Retry-After, 502/503/504, a hanging answer).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type RunningEngine } from '../../engine/service.ts';
import { isPeakpayApiError, PeakpayApiError, PeakpayClient, type Payment, type PeakpayClientOptions } from '../../ingress/sdk/index.ts';
import { creditAccount } from '../../scripts/ops.ts';
import { startHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId } from '../helpers.ts';

type Sent = { method: string; url: string; headers: Record<string, string>; body: string };
type FetchFn = NonNullable<PeakpayClientOptions['fetch']>;

/** A fetch that records what it sends; `drop(n)` makes the n-th call reach the server but lose its answer. */
function recordingFetch() {
  const sent: Sent[] = [];
  const dropped = new Set<number>();
  const fn: FetchFn = async (input, init) => {
    const n = sent.push({
      method: String(init.method), url: input, headers: { ...(init.headers as Record<string, string>) }, body: typeof init.body === 'string' ? init.body : '',
    });
    const res = await fetch(input, init);
    if (!dropped.has(n)) return res;
    await res.arrayBuffer(); // the server did the work; the client never sees the answer
    throw new TypeError('fetch failed', { cause: new Error('ECONNRESET (simulated)') });
  };
  return {
    fn, sent,
    drop: (n: number) => dropped.add(n),
    reset: () => {
      sent.splice(0);
      dropped.clear();
    },
  };
}

const nonceOf = (s: Sent) => /nonce="([A-Za-z0-9]+)"/.exec(s.headers.authorization ?? '')?.[1];

async function expectApiError(p: Promise<unknown>): Promise<PeakpayApiError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(isPeakpayApiError(err), String(err)).toBe(true);
  return err as PeakpayApiError;
}

const paymentBody = (accountId: string, amount = 1999) => ({
  out_trade_no: uniqueId('T'), amount, currency: 'CNY' as const, method: 'balance' as const, account_id: accountId,
  capture: 'manual' as const, hold_ttl_s: 900, scene: 'pc' as const, subject: 'Game card 100',
  buyer: { user_id: 'u_9', device_id: 'd_77', ip: '203.0.113.9' }, metadata: { sku: 'card-100' },
});

describe('SDK against the real ingress', () => {
  let h: Harness;
  let merchant: { id: string; secret: string };
  let baseUrl: string;
  const rec = recordingFetch();
  let pp: PeakpayClient;
  const accountId = 'acc_sdk';

  beforeAll(async () => {
    h = await startHarness();
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
    merchant = await h.newMerchant();
    pp = new PeakpayClient({ baseUrl, merchantId: merchant.id, secret: merchant.secret, fetch: rec.fn, retry: { backoffBaseMs: 20 } });
    const account = await pp.accounts.create({ account_id: accountId, currency: 'CNY' });
    expect(account).toEqual({ account_id: accountId, currency: 'CNY', available: 0, held: 0 });
    await creditAccount(h.ingress.ctx.client, merchant.id, accountId, 100_000, 'CNY', 'sdk test float');
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('makes a first payment end to end: create, read, capture, refund, cancel', async () => {
    const body = paymentBody(accountId);
    const created = await pp.payments.create(body);
    expect(created).toMatchObject({ status: 'authorized', amount: 1999, currency: 'CNY', merchant_id: merchant.id, out_trade_no: body.out_trade_no });
    expect(await pp.accounts.get(accountId)).toMatchObject({ available: 100_000 - 1999, held: 1999 });

    const captured = await pp.payments.capture(created.id, { amount: 1500 });
    expect(captured).toMatchObject({ id: created.id, status: 'succeeded', amount_captured: 1500 });
    expect(await pp.payments.get(created.id)).toMatchObject({ id: created.id, status: 'succeeded' });
    // The query string is part of what is signed.
    expect((await pp.payments.getByOutTradeNo(body.out_trade_no)).id).toBe(created.id);

    const refund = await pp.refunds.create(created.id, { amount: 500, reason: 'card not delivered' });
    expect(refund).toMatchObject({ payment_id: created.id, amount: 500, currency: 'CNY', status: 'succeeded' });
    expect(await pp.refunds.get(refund.id)).toMatchObject({ id: refund.id, amount: 500 });
    expect(await pp.accounts.get(accountId)).toMatchObject({ available: 100_000 - 1500 + 500, held: 0 });

    const other = await pp.payments.create(paymentBody(accountId, 300));
    expect(await pp.payments.cancel(other.id)).toMatchObject({ id: other.id, status: 'canceled' });

    // Every POST carried its own Idempotency-Key; every request its own nonce.
    const posts = rec.sent.filter((s) => s.method === 'POST');
    expect(new Set(posts.map((s) => s.headers['idempotency-key'])).size).toBe(posts.length);
    expect(new Set(rec.sent.map(nonceOf)).size).toBe(rec.sent.length);
  });

  it('retries a POST whose answer was lost with the same key: one payment, the stored answer replayed', async () => {
    rec.reset();
    rec.drop(1);
    const before = await h.streamMessages('cmd');
    const body = paymentBody(accountId, 700);
    const res = await pp.request<Payment>('POST', '/v1/payments', { body });
    expect(res.status).toBe(201);
    expect(res.attempts).toBe(2);
    expect(res.replayed).toBe(true);
    expect(res.body).toMatchObject({ status: 'authorized', amount: 700 });

    expect(rec.sent).toHaveLength(2);
    const [first, second] = rec.sent as [Sent, Sent];
    expect(second.headers['idempotency-key']).toBe(first.headers['idempotency-key']);
    expect(second.body).toBe(first.body);
    expect(nonceOf(second)).not.toBe(nonceOf(first));
    expect(await h.streamMessages('cmd')).toBe(before + 1);
    expect((await pp.payments.getByOutTradeNo(body.out_trade_no)).id).toBe(res.body.id);
  });

  it('uses the caller’s Idempotency-Key, so a call repeated after a restart is the same payment', async () => {
    const key = uniqueId('order-42');
    const body = paymentBody(accountId, 100);
    const a = await pp.request<Payment>('POST', '/v1/payments', { body, idempotencyKey: key });
    const b = await pp.request<Payment>('POST', '/v1/payments', { body, idempotencyKey: key });
    expect(b.body.id).toBe(a.body.id);
    expect([a.replayed, b.replayed]).toEqual([false, true]);
    expect(b.idempotencyKey).toBe(key);
  });

  it('does not retry 4xx and reports status, code, request id and field errors', async () => {
    rec.reset();
    const invalid = await expectApiError(pp.payments.create({ ...paymentBody(accountId), amount: 19.99 }));
    expect(invalid).toMatchObject({ status: 400, code: 'validation.failed', attempts: 1 });
    expect(invalid.errors.map((e) => e.path)).toContain('amount');
    expect(invalid.requestId).toMatch(/^req_/);
    expect(rec.sent).toHaveLength(1);

    const missing = await expectApiError(pp.payments.get('pay_doesnotexist'));
    expect(missing).toMatchObject({ status: 404, code: 'payment.not_found', attempts: 1 });

    const body = paymentBody(accountId, 100);
    const first = await pp.payments.create(body);
    const dup = await expectApiError(pp.payments.create(body));
    expect(dup).toMatchObject({ status: 409, code: 'payment.duplicate_out_trade_no', attempts: 1 });
    expect(dup.problem?.payment_id).toBe(first.id);

    await pp.payments.cancel(first.id);
    const illegal = await expectApiError(pp.payments.verify(first.id));
    expect(illegal).toMatchObject({ status: 409, code: 'payment.invalid_transition', attempts: 1 });

    // The harness configures no payment channel, so a top-up reaches its route, signed, and is refused there.
    const topup = await expectApiError(pp.topups.create({
      out_trade_no: uniqueId('TU'), account_id: accountId, amount: 5000, currency: 'CNY', method: 'wechat_pay', scene: 'pc',
    }));
    expect(topup).toMatchObject({ status: 422, code: 'payment.method_unavailable', attempts: 1 });

    const wrongSecret = new PeakpayClient({ baseUrl, merchantId: merchant.id, secret: 'sk_wrong', fetch: rec.fn });
    rec.reset();
    const unauth = await expectApiError(wrongSecret.accounts.get(accountId));
    expect(unauth).toMatchObject({ status: 401, code: 'auth.invalid_signature', attempts: 1 });
    expect(rec.sent).toHaveLength(1);
  });
});

describe('SDK waitForPayment on a real 202', () => {
  let h: Harness;
  let engine: RunningEngine | null = null;

  beforeAll(async () => {
    // No engine at first, and a short deadline: the ingress answers 202 processing.
    h = await startHarness({ engine: false, config: testConfig({ PEAKPAY_INGRESS_DEADLINE_MS: '100' }) });
    await h.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await engine?.stop();
    await h?.stop();
  });

  it('polls until the engine has decided', async () => {
    const m = await h.newMerchant();
    const pp = new PeakpayClient({ baseUrl: `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`, merchantId: m.id, secret: m.secret });
    engine = await startEngine(h.config);
    await pp.accounts.create({ account_id: 'acc_w', currency: 'CNY' });
    await creditAccount(h.ingress.ctx.client, m.id, 'acc_w', 10_000, 'CNY', 'float');
    await engine.stop();
    engine = null;

    const res = await pp.request<Payment>('POST', '/v1/payments', { body: paymentBody('acc_w', 1234) });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('processing');
    expect(res.headers.get('location')).toBe(`/v1/payments/${res.body.id}`);

    const early = await expectApiError(pp.waitForPayment(res.body.id, { timeoutMs: 300 }));
    expect(early.code).toBe('client.wait_timeout');

    const waiting = pp.waitForPayment(res.body.id, { timeoutMs: 30_000 });
    engine = await startEngine(h.config);
    expect(await waiting).toMatchObject({ id: res.body.id, status: 'authorized', amount: 1234 });
    expect(await pp.waitForPayment(res.body.id, { until: ['authorized'] })).toMatchObject({ status: 'authorized' });
  });
});

describe('SDK retries against a scripted server', () => {
  type Scripted = { status: number; headers?: Record<string, string>; body?: unknown } | 'hang';
  let server: Server;
  let baseUrl: string;
  let script: Scripted[] = [];
  const seen: { atMs: number; method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];
  const problem = (status: number, code: string) => ({ status, code, title: code, detail: code, request_id: `req_${status}`, errors: [] });
  const payment = { id: 'pay_1', status: 'authorized', amount: 1999 };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ atMs: Date.now(), method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
        const next = script.shift() ?? { status: 500, body: problem(500, 'internal') };
        if (next === 'hang') return; // never answers; the client's attempt timeout must fire
        res.writeHead(next.status, { 'content-type': 'application/json', ...next.headers }).end(JSON.stringify(next.body ?? {}));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const client = (opts: Partial<PeakpayClientOptions> = {}) =>
    new PeakpayClient({ baseUrl, merchantId: 'm_1', secret: 'sk_1', retry: { backoffBaseMs: 10, backoffMaxMs: 50 }, ...opts });
  const run = (s: Scripted[]) => {
    script = s;
    seen.splice(0);
  };
  const keysOf = () => new Set(seen.map((s) => s.headers['idempotency-key']));
  const noncesOf = () => new Set(seen.map((s) => /nonce="([^"]+)"/.exec(String(s.headers.authorization))?.[1]));

  it('honours Retry-After on 429, retries 503, with the same key and body and a fresh nonce each time', async () => {
    run([
      { status: 429, headers: { 'retry-after': '1' }, body: problem(429, 'rate_limited') },
      { status: 503, body: problem(503, 'engine.unavailable') },
      { status: 201, body: payment },
    ]);
    const res = await client().request('POST', '/v1/payments', { body: { amount: 1999 } });
    expect(res).toMatchObject({ status: 201, attempts: 3, body: payment });
    expect(seen).toHaveLength(3);
    expect(keysOf().size).toBe(1);
    expect([...keysOf()][0]).toBe(res.idempotencyKey);
    expect(noncesOf().size).toBe(3);
    expect(new Set(seen.map((s) => s.body))).toEqual(new Set(['{"amount":1999}']));
    expect((seen[1]?.atMs ?? 0) - (seen[0]?.atMs ?? 0)).toBeGreaterThanOrEqual(950); // Retry-After: 1 was honoured
  });

  it('retries 502, 504 and 409 idempotency.in_progress', async () => {
    run([
      { status: 502, body: 'bad gateway' },
      { status: 504 },
      { status: 409, body: problem(409, 'idempotency.in_progress') },
      { status: 200, body: payment },
    ]);
    const res = await client({ retry: { attemptsMax: 4, backoffBaseMs: 10 } }).request('POST', '/v1/payments/pay_1/capture', { body: {} });
    expect(res.attempts).toBe(4);
    expect(keysOf().size).toBe(1);
    expect(noncesOf().size).toBe(4);
  });

  it('gives up after attemptsMax with the last answer as the error', async () => {
    run(Array.from({ length: 5 }, () => ({ status: 503, body: problem(503, 'engine.unavailable') })));
    const err = await expectApiError(client({ retry: { attemptsMax: 3, backoffBaseMs: 10 } }).payments.create(paymentBody('acc_1')));
    expect(err).toMatchObject({ status: 503, code: 'engine.unavailable', requestId: 'req_503', attempts: 3 });
    expect(seen).toHaveLength(3);
  });

  it('does not retry 500, 409 other than in_progress, or a Retry-After beyond retryAfterMsMax', async () => {
    run([{ status: 500, body: problem(500, 'internal') }]);
    expect(await expectApiError(client().payments.get('pay_1'))).toMatchObject({ status: 500, attempts: 1 });
    run([{ status: 409, body: problem(409, 'payment.invalid_transition') }]);
    expect(await expectApiError(client().payments.cancel('pay_1'))).toMatchObject({ code: 'payment.invalid_transition', attempts: 1 });
    run([{ status: 429, headers: { 'retry-after': '3600' }, body: problem(429, 'rate_limited') }]);
    expect(await expectApiError(client().payments.cancel('pay_1'))).toMatchObject({ code: 'rate_limited', attempts: 1 });
    expect(seen).toHaveLength(1);
  });

  it('abandons an attempt that takes longer than timeoutMs and retries it with the same key', async () => {
    run(['hang', { status: 201, body: payment }]);
    const res = await client({ timeoutMs: 300 }).request('POST', '/v1/payments', { body: { amount: 1 } });
    expect(res.attempts).toBe(2);
    expect(keysOf().size).toBe(1);

    run(['hang', 'hang']);
    const err = await expectApiError(client({ timeoutMs: 200, retry: { attemptsMax: 2, backoffBaseMs: 10 } }).payments.get('pay_1'));
    expect(err).toMatchObject({ status: 0, code: 'client.timeout', attempts: 2 });
  });

  it('retries a GET without an Idempotency-Key, and stops at once when the caller aborts', async () => {
    run([{ status: 503, body: problem(503, 'engine.unavailable') }, { status: 200, body: payment }]);
    expect(await client().payments.get('pay_1')).toEqual(payment);
    expect(seen.map((s) => s.headers['idempotency-key'])).toEqual([undefined, undefined]);
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['GET /v1/payments/pay_1', 'GET /v1/payments/pay_1']);

    run([{ status: 429, headers: { 'retry-after': '20' }, body: problem(429, 'rate_limited') }]);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const err = await expectApiError(client().payments.create(paymentBody('acc_1'), { signal: ac.signal }));
    expect(err).toMatchObject({ status: 0, code: 'client.aborted' });
    expect(seen).toHaveLength(1);
  });

  it('reports a refused connection as client.network_error after retrying', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const err = await expectApiError(client({ baseUrl: `http://127.0.0.1:${port}`, retry: { attemptsMax: 2, backoffBaseMs: 10 } }).payments.get('pay_1'));
    expect(err).toMatchObject({ status: 0, code: 'client.network_error', attempts: 2 });
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('waitForPayment treats 404 as not yet and returns once the status is decided', async () => {
    run([
      { status: 404, body: problem(404, 'payment.not_found') },
      { status: 200, body: { ...payment, status: 'processing' } },
      { status: 200, body: payment },
    ]);
    expect(await client().waitForPayment('pay_1', { timeoutMs: 10_000 })).toEqual(payment);
    expect(seen).toHaveLength(3);
  });
});
