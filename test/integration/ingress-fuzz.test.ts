// Hostile input through the real ingress (inject), with the engine and settlement running, so a
// request that slipped through would really be applied and show up below. fast-check builds
// 10,000 requests, each with at least one fault of its own (a bad field, a missing or unknown one,
// a body that is not an object or not JSON, invalid UTF-8, an unpaired surrogate, `__proto__`,
// a body over 16 KiB, a bad Idempotency-Key or Content-Type, a missing or wrong signature …) plus
// random noise (odd headers, addresses, X-Forwarded-For). GETs are fuzzed too: they may answer
// 200, but like the rest never 5xx.
// Asserted: no 5xx; every POST answer is a problem+json 4xx with a code given before the engine is
// asked; and afterwards nothing changed: the command and event streams hold as many messages as
// before, every Redis key of the namespace is as it was except nonces and rate-limit buckets (the
// only things a refused request may write), no idempotency record exists, and Postgres has no new row.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForSettlement } from '../../engine/rebuild/index.ts';
import { creditAccount } from '../../scripts/ops.ts';
import { ERRORS } from '../../ingress/errors.ts';
import { registeredRoutes } from '../../ingress/server.ts';
import { authorization, randomNonce } from '../../ingress/signature.ts';
import { startHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId } from '../helpers.ts';
import { namespaceKeys, startPrivateRedis, type PrivateServer } from './ingress-servers.ts';

const RUNS = 10_000;
const KIB16 = 16 * 1024;
/** Codes the ingress gives before it publishes anything: any other on a POST means the engine was asked. */
const PRE_PUBLISH = new Set([
  'auth.missing', 'auth.malformed', 'auth.unknown_merchant', 'auth.invalid_signature', 'auth.timestamp_out_of_window', 'auth.nonce_reused',
  'request.malformed_json', 'request.too_large', 'request.unsupported_media_type', 'validation.failed', 'validation.amount_above_maximum',
  'idempotency.key_missing', 'idempotency.key_invalid', 'route.not_found', 'payment.not_found', 'refund.not_found', 'account.not_found',
]);
/** The keys a refused request may leave: its nonce (once authenticated) and rate-limit buckets. */
const MAY_CHANGE = /:nonce:[A-Za-z0-9]+$|:rl$/;

let redisServer: PrivateServer;
let redis: Redis;
let h: Harness;
let merchant: { id: string; secret: string };
const real = { authorized: '', succeeded: '', refund: '', outTradeNo: '', account: 'acc_fuzz' };

// ---------------------------------------------------------------- bodies with raw parts

/** A JSON value written as given (NaN, 1e400, deep nesting) or as raw bytes (invalid UTF-8). */
class Raw {
  readonly bytes: Buffer;
  constructor(text: string | Buffer) {
    this.bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  }
}
const raw = (t: string | Buffer) => new Raw(t);

/** An object with an own, enumerable `__proto__` member, as JSON.parse would make it. */
function withProto(base: Record<string, unknown>, value: unknown): Record<string, unknown> {
  const o = { ...base };
  Object.defineProperty(o, '__proto__', { value, enumerable: true, writable: true, configurable: true });
  return o;
}

function render(value: unknown): Buffer {
  const parts: Buffer[] = [];
  const token = `@@${randomBytes(6).toString('hex')}@@`;
  const text = JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof Raw) {
      parts.push(v.bytes);
      return `${token}${parts.length - 1}`;
    }
    return v;
  });
  const out: Buffer[] = [];
  let last = 0;
  for (const m of text.matchAll(new RegExp(`"${token}(\\d+)"`, 'g'))) {
    out.push(Buffer.from(text.slice(last, m.index), 'utf8'), parts[Number(m[1])] as Buffer);
    last = (m.index as number) + m[0].length;
  }
  out.push(Buffer.from(text.slice(last), 'utf8'));
  return Buffer.concat(out);
}

// ---------------------------------------------------------------- hostile values

const deep = (n: number, leaf = '1') => raw(`${'{"a":'.repeat(n)}${leaf}${'}'.repeat(n)}`);
const deepArray = (n: number) => raw(`${'['.repeat(n)}${']'.repeat(n)}`);
const invalidUtf8 = fc.constantFrom(
  Buffer.from([0x22, 0xff, 0xfe, 0x22]), Buffer.from([0x22, 0x61, 0xc3, 0x22]), Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]),
  Buffer.from([0x22, 0xf8, 0x88, 0x80, 0x80, 0x80, 0x22]), Buffer.from([0x22, 0xc0, 0xaf, 0x22]),
).map(raw);
const loneSurrogate = fc.constantFrom('"\\ud800"', '"a\\udfff"', '"\\udc00\\ud800"').map(raw);

const notJsonNumbers = fc.constantFrom('NaN', 'Infinity', '-Infinity', '+1', '01', '.5', '1.', '0x10').map(raw);
const wrongTypes: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null), fc.boolean(), fc.constant([]), fc.array(fc.integer(), { minLength: 1, maxLength: 3 }),
  fc.constant(deep(1000)), fc.constant(deepArray(1000)), fc.constant(withProto({}, { polluted: true })),
);
const badInts: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(0, -1, -0, 0.5, 19.99, -19.99, 1e300, Number.MAX_VALUE),
  fc.constantFrom('9007199254740993', '-0', '1e400', '-1e400', '1999.5').map(raw),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
  fc.integer({ min: -1_000_000, max: 0 }),
  fc.constantFrom('1999', '', 'NaN', '1e3', ' 1'),
  notJsonNumbers, wrongTypes, invalidUtf8,
);
const badStrings: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('', 'x'.repeat(600), 'x'.repeat(KIB16 - 1000)),
  fc.integer(), fc.double({ noNaN: true }), invalidUtf8, loneSurrogate, notJsonNumbers, wrongTypes,
);
const badBuyer: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom({ user_id: '' }, { user_id: 'u'.repeat(65) }, { device_id: 'd'.repeat(129) }, { ip: '999.1.1.1' }, { ip: 'localhost' }, { ip: 1 }),
  fc.constantFrom({ extra: 1 }, { constructor: { prototype: 1 } }, withProto({ user_id: 'u_1' }, { admin: true })),
  fc.record({ user_id: loneSurrogate }), fc.record({ device_id: invalidUtf8 }),
  fc.string().map((s) => ({ [`x${s}`]: 1 })), // an unknown member
  fc.integer(), fc.string(), fc.constant(null), fc.constant([]), fc.constant(deep(1000)),
);
const badMetadata: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    { '': 'x' }, { ['k'.repeat(41)]: 'x' }, { k: 'v'.repeat(501) }, { k: 1 }, { k: null }, { k: { nested: 'x' } },
    Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 'v'])),
  ),
  fc.constant(withProto({ sku: 'card-100' }, 'x')), fc.constant(withProto({}, { isAdmin: 'true' })),
  fc.record({ k: loneSurrogate }), fc.record({ k: invalidUtf8 }), fc.record({ k: fc.constant(deep(1000, '"x"')) }),
  fc.integer(), fc.string(), fc.constant(null), fc.constant([]), fc.constant(deepArray(1000)),
);

// ---------------------------------------------------------------- routes and their valid bodies

type Field = { name: string; required: boolean; bad: fc.Arbitrary<unknown> };
type PostRoute = { path: (ids: string) => string; valid: () => Record<string, unknown>; fields: Field[]; ids: boolean };

const validCreate = () => ({
  out_trade_no: uniqueId('F'), amount: 1 + Math.floor(Math.random() * 500), currency: 'CNY', method: 'balance', account_id: real.account,
  capture: 'manual', hold_ttl_s: 900, scene: 'pc', subject: 'Game card 100', buyer: { user_id: 'u_9', device_id: 'd_77', ip: '203.0.113.9' },
  notify_url: 'https://shop.example/notify', metadata: { sku: 'card-100' },
});
const str = (name: string, required = false): Field => ({ name, required, bad: badStrings });
const POST_ROUTES: Record<string, PostRoute> = {
  'POST /v1/payments': {
    path: () => '/v1/payments', valid: validCreate, ids: false,
    fields: [
      str('out_trade_no', true), { name: 'amount', required: true, bad: badInts }, str('currency', true), str('method', true),
      str('account_id', true), str('capture'), { name: 'hold_ttl_s', required: false, bad: badInts }, str('scene', true), str('subject'),
      { name: 'buyer', required: false, bad: badBuyer }, str('notify_url'), { name: 'metadata', required: false, bad: badMetadata },
    ],
  },
  'POST /v1/payments/:id/capture': { path: (id) => `/v1/payments/${id}/capture`, valid: () => ({ amount: 1 }), ids: true, fields: [{ name: 'amount', required: false, bad: badInts }] },
  'POST /v1/payments/:id/cancel': { path: (id) => `/v1/payments/${id}/cancel`, valid: () => ({}), ids: true, fields: [] },
  'POST /v1/payments/:id/verify': { path: (id) => `/v1/payments/${id}/verify`, valid: () => ({}), ids: true, fields: [] },
  'POST /v1/payments/:id/refunds': {
    path: (id) => `/v1/payments/${id}/refunds`, valid: () => ({ amount: 1, reason: 'requested by buyer' }), ids: true,
    fields: [{ name: 'amount', required: true, bad: badInts }, str('reason')],
  },
  'POST /v1/accounts': { path: () => '/v1/accounts', valid: () => ({ account_id: uniqueId('acc'), currency: 'CNY' }), ids: false, fields: [str('account_id', true), str('currency', true)] },
};

const pathIds = fc.oneof(
  fc.constantFrom(...['authorized', 'succeeded', 'refund'] as const).map((k) => real[k]),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
  fc.constantFrom('%00', '..%2F..%2Fadmin', '%C3%BC', '%ZZ', 'x'.repeat(65), '__proto__', 'constructor', 'pay_%0d%0aX-Injected:1', '%F0%9F%92%B3', 'a.b', '%7Bm%7D'),
);

// ---------------------------------------------------------------- one request

type Req = { method: 'GET' | 'POST'; url: string; body: Buffer | null; headers: Record<string, string | string[]>; remoteAddress: string; fault: string };

/** How the request is signed; everything but 'good' is a fault of its own. */
const signing = fc.oneof(
  { weight: 21, arbitrary: fc.constant('good') },
  { weight: 7, arbitrary: fc.constantFrom('none', 'wrong_secret', 'other_body', 'other_url', 'stale', 'malformed', 'twice') },
);
type Noise = { remoteAddress: string; forwardedFor: string | null; extra: [string, string | string[]] | null };
const noise: fc.Arbitrary<Noise> = fc.record({
  remoteAddress: fc.constantFrom('127.0.0.1', '::1', '::ffff:10.0.0.1', '2001:db8::5', '203.0.113.7'),
  forwardedFor: fc.option(fc.constantFrom('203.0.113.50', 'garbage', '::1, 10.0.0.1', '', '2001:db8::1%eth0', '1.2.3.4:5678', 'x'.repeat(2000))),
  extra: fc.option(fc.constantFrom<[string, string | string[]]>(
    ['x-noise', 'n'.repeat(8000)], ['user-agent', 'Ünïcødé 🚀'], ['accept', '*/*;q=NaN'], ['x-dup', ['a', 'b']], ['cookie', '__proto__=1'],
  )),
});

function sign(r: { method: string; url: string; body: Buffer }, how: string): string | string[] | undefined {
  const good = () => authorization(merchant.id, merchant.secret, r.method, r.url, r.body, { nonce: randomNonce() });
  switch (how) {
    case 'good': return good();
    case 'none': return undefined;
    case 'wrong_secret': return authorization(merchant.id, `${merchant.secret}0`, r.method, r.url, r.body);
    case 'other_body': return authorization(merchant.id, merchant.secret, r.method, r.url, Buffer.concat([r.body, Buffer.from(' ')]));
    case 'other_url': return authorization(merchant.id, merchant.secret, r.method, `${r.url}x`, r.body);
    case 'stale': return authorization(merchant.id, merchant.secret, r.method, r.url, r.body, { timestamp: Math.floor(Date.now() / 1000) - 3600 });
    case 'malformed': return good().replace('merchant_id=', 'merchant=');
    // Node keeps the first of repeated Authorization headers (as it does for a real socket).
    case 'twice': return ['PEAKPAY-HMAC-SHA256 merchant_id="x"', good()];
    default: throw new Error(`assertion: signing ${how}`);
  }
}

/** A POST to a route whose body we know: exactly one body or header fault, or a signing fault. */
function knownPost(name: string, route: PostRoute): fc.Arbitrary<Draft> {
  const bodyFaults: fc.Arbitrary<[string, Buffer]>[] = [
    fc.constantFrom('[]', '1', '"x"', 'null', 'true', '{"a":1,}', "{'a':1}", '{"a":1} x', '{"amount": NaN}', '{"amount":Infinity}', '\uFEFF{}', '{', '/*c*/{}')
      .map((t) => ['not_json_object', Buffer.from(t, 'utf8')]),
    fc.constant(['deep_array', render(deepArray(1000))]),
    fc.string({ minLength: 1, maxLength: 20 }).filter((k) => !route.fields.some((f) => f.name === k)).map((k) => ['unknown_field', render({ ...route.valid(), [k]: 1 })]),
    fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString').map((k) => ['pollution_key', render(k === '__proto__' ? withProto(route.valid(), { polluted: 1 }) : { ...route.valid(), [k]: { polluted: 1 } })]),
    fc.integer({ min: KIB16 + 1, max: KIB16 * 2 }).map((n) => ['too_large', render({ ...route.valid(), pad: 'p'.repeat(n) })]),
  ];
  for (const f of route.fields) {
    bodyFaults.push(f.bad.map((v) => [`bad_${f.name}`, render({ ...route.valid(), [f.name]: v })]));
    if (f.required) bodyFaults.push(fc.constant(null).map(() => {
      const b = route.valid();
      delete b[f.name];
      return [`missing_${f.name}`, render(b)] as [string, Buffer];
    }));
  }
  const headerFault = fc.oneof(
    fc.constantFrom('text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', 'application/json; charset=utf-16', null)
      .map((ct) => ({ fault: `content_type:${ct}`, contentType: ct, idemKey: uniqueId('k') as string | string[] | null })),
    fc.constantFrom<string | string[] | null>(null, '', ' ', 'a b', 'k'.repeat(256), 'ключ', 'tab\tkey', ['k1', 'k2'])
      .map((k) => ({ fault: `idempotency_key:${JSON.stringify(k)?.slice(0, 20)}`, contentType: 'application/json', idemKey: k })),
  );
  const valid = (): Pick<Draft, 'contentType' | 'idemKey'> => ({ contentType: 'application/json', idemKey: uniqueId('k') });
  return fc.record({ id: pathIds, sign: signing }).chain(({ id, sign: how }): fc.Arbitrary<Draft> => {
    const url = route.path(id);
    if (how !== 'good') return fc.constant({ method: 'POST', url, body: render(route.valid()), fault: `${name} sign:${how}`, sign: how, ...valid() });
    return fc.oneof(
      fc.oneof(...bodyFaults).map(([fault, body]): Draft => ({ method: 'POST', url, body, fault: `${name} ${fault}`, sign: how, ...valid() })),
      headerFault.map((hf): Draft => ({ method: 'POST', url, body: render(route.valid()), sign: how, ...hf, fault: `${name} ${hf.fault}` })),
    );
  });
}

/** A POST to a route without a known body (added later): only faults that break any strict schema. */
function otherPost(url: string) {
  return fc.record({
    body: fc.oneof(
      fc.constantFrom('[]', '1', 'null', '{"a":1,}', '{', '\uFEFF{}').map((t) => Buffer.from(t)),
      fc.string({ minLength: 1, maxLength: 10 }).map((k) => render({ [`zz_${k}`]: 1 })),
      fc.constant(render(withProto({}, { polluted: 1 }))),
      invalidUtf8.map((r) => r.bytes),
      fc.constant(Buffer.alloc(KIB16 + 10, 0x20)),
    ),
    sign: signing,
  }).map((r) => ({ method: 'POST' as const, url, body: r.body, fault: `POST ${url} generic`, sign: r.sign, contentType: 'application/json', idemKey: uniqueId('k') as string | string[] | null }));
}

const getRequest = fc.oneof(
  pathIds.map((id) => `/v1/payments/${id}`), pathIds.map((id) => `/v1/refunds/${id}`),
  fc.oneof(fc.constant(real.account), pathIds).map((id) => `/v1/accounts/${id}`),
  fc.oneof(
    fc.constant(() => `out_trade_no=${real.outTradeNo}`), fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/).map((s) => () => `out_trade_no=${s}`),
    fc.constantFrom('', 'out_trade_no=', 'out_trade_no=a&out_trade_no=b', 'out_trade_no=a&x=1', '__proto__=1', 'out_trade_no[]=a', 'out_trade_no=%ZZ', 'out_trade_no=%00', `out_trade_no=${'a'.repeat(65)}`, 'constructor=1&out_trade_no=a').map((q) => () => q),
  ).map((q) => `/v1/payments?${q()}`),
).chain((url) => signing.map((how) => ({ method: 'GET' as const, url, body: Buffer.alloc(0), fault: `GET ${url.split(/[/?]/)[2]} sign:${how}`, sign: how, contentType: null, idemKey: null })));

type Draft = { method: 'GET' | 'POST'; url: string; body: Buffer; fault: string; sign: string; contentType: string | null; idemKey: string | string[] | null };

function toRequest(r: Draft, n: Noise): Req {
  const headers: Record<string, string | string[]> = {};
  const auth = sign(r, r.sign);
  if (auth !== undefined) headers.authorization = auth;
  if (r.body.length > 0 && r.contentType !== null) headers['content-type'] = r.contentType;
  if (r.method === 'POST' && r.idemKey !== null) headers['idempotency-key'] = r.idemKey;
  if (n.forwardedFor !== null) headers['x-forwarded-for'] = n.forwardedFor;
  if (n.extra !== null) headers[n.extra[0]] = n.extra[1];
  return { method: r.method, url: r.url, body: r.body.length > 0 ? r.body : null, headers, remoteAddress: n.remoteAddress, fault: r.fault };
}

// ---------------------------------------------------------------- the world before and after

async function snapshot() {
  const keys = await namespaceKeys(redis, h.names.redisPrefix);
  const values: Record<string, unknown> = {};
  for (const key of keys.filter((k) => !MAY_CHANGE.test(k))) {
    const type = await redis.type(key);
    values[key] =
      type === 'hash' ? await redis.hgetall(key)
      : type === 'string' ? (await redis.getBuffer(key))?.toString('base64')
      : type === 'zset' ? await redis.zrange(key, '0', '-1', 'WITHSCORES')
      : type === 'set' ? (await redis.smembers(key)).sort()
      : type;
  }
  // This merchant's rows only: other test files write to the same database meanwhile.
  const pg = await h.pool.query(
    `SELECT (SELECT count(*) FROM events WHERE merchant_id = $1) AS events, (SELECT count(*) FROM payments WHERE merchant_id = $1) AS payments,
            (SELECT count(*) FROM postings WHERE merchant_id = $1) AS postings, (SELECT count(*) FROM refunds WHERE merchant_id = $1) AS refunds,
            (SELECT count(*) FROM accounts WHERE merchant_id = $1) AS accounts`,
    [merchant.id],
  );
  return { values, pg: pg.rows[0], cmd: await h.streamMessages('cmd'), evt: await h.streamMessages('evt') };
}

beforeAll(async () => {
  redisServer = await startPrivateRedis();
  redis = new Redis(redisServer.url);
  // Trusting the loopback proxy lets X-Forwarded-For noise reach req.ip (and the per-address limit).
  h = await startHarness({ config: testConfig({ REDIS_URL: redisServer.url, PEAKPAY_TRUST_PROXY: '127.0.0.1', PEAKPAY_LOG_LEVEL: 'fatal' }) });
  merchant = await h.newMerchant();
  expect((await h.call(merchant, 'POST', '/v1/accounts', { account_id: real.account, currency: 'CNY' })).statusCode).toBe(201);
  await creditAccount(h.ingress.ctx.client, merchant.id, real.account, 1_000_000, 'CNY', 'float');
  const authorized = await h.call(merchant, 'POST', '/v1/payments', { ...validCreate(), capture: 'manual' });
  const succeeded = await h.call(merchant, 'POST', '/v1/payments', { ...validCreate(), capture: 'automatic' });
  expect([authorized.json().status, succeeded.json().status]).toEqual(['authorized', 'succeeded']);
  real.authorized = authorized.json().id;
  real.succeeded = succeeded.json().id;
  real.outTradeNo = succeeded.json().out_trade_no;
  const refund = await h.call(merchant, 'POST', `/v1/payments/${real.succeeded}/refunds`, { amount: 1 });
  expect(refund.statusCode).toBe(201);
  real.refund = refund.json().id;
  await waitForSettlement(h.ingress.ctx.jsm, h.names, 30_000);
});
afterAll(async () => {
  await h?.stop();
  redis?.disconnect();
  await redisServer?.close();
});

describe('fuzzing the ingress', () => {
  it(`${RUNS} hostile requests: no 5xx, POSTs refused before publishing, nothing changed`, async () => {
    const before = await snapshot();
    const knownRoutes = new Set(Object.keys(POST_ROUTES));
    const laterPosts = registeredRoutes(h.app).filter((r) => r.method === 'POST' && !knownRoutes.has(`POST ${r.url}`)).map((r) => r.url.replace(/:([A-Za-z0-9_]+)/g, 'x1'));
    const request = fc.oneof(
      { weight: 6, arbitrary: fc.oneof(...Object.entries(POST_ROUTES).map(([name, route]) => knownPost(name, route))) },
      ...(laterPosts.length ? [{ weight: 1, arbitrary: fc.oneof(...laterPosts.map(otherPost)) }] : []),
      { weight: 2, arbitrary: getRequest },
    );
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(request, noise, async (r0, n) => {
        const r = toRequest(r0, n);
        const res = await h.app.inject({ method: r.method, url: r.url, headers: r.headers, remoteAddress: r.remoteAddress, ...(r.body ? { payload: r.body } : {}) });
        const key = `${r.method} ${res.statusCode}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        expect(res.statusCode, r.fault).toBeLessThan(500);
        if (r.url.startsWith('/v1/notify/')) return;
        if (r.method === 'GET' && res.statusCode === 200) return;
        expect(res.statusCode, r.fault).toBeGreaterThanOrEqual(400);
        expect(res.headers['content-type'], r.fault).toMatch(/^application\/problem\+json/);
        const problem = res.json();
        expect(Object.hasOwn(ERRORS, problem.code), `${r.fault}: ${problem.code}`).toBe(true);
        expect(PRE_PUBLISH.has(problem.code), `${r.fault}: ${problem.code} ${problem.detail}`).toBe(true);
        expect(problem.request_id).toBe(res.headers['request-id']);
      }),
      { numRuns: RUNS },
    );
    console.log(`fuzz answers: ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);

    // A command that slipped through would be applied by the engine: give it time to show.
    await new Promise((r) => setTimeout(r, 500));
    await waitForSettlement(h.ingress.ctx.jsm, h.names, 30_000);
    const after = await snapshot();
    expect({ cmd: after.cmd, evt: after.evt }).toEqual({ cmd: before.cmd, evt: before.evt });
    expect(after.pg).toEqual(before.pg);
    expect(Object.keys(after.values).filter((k) => !(k in before.values))).toEqual([]);
    // Includes: no new idempotency record (validation failures are not stored), no op, no payment.
    expect(after.values).toEqual(before.values);
  });
});
