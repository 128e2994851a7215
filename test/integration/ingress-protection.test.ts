// Protection of the public API through the real server: rate limits per client address and per
// merchant (429 rate_limited + Retry-After, shared by every ingress through Redis, a refused request
// changes nothing), and HTTPS when a certificate is configured.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientKeys, merchantKeys } from '../../engine/redis/keys.ts';
import { clientAddress, RateLimiter } from '../../ingress/rate-limit.ts';
import { startIngress } from '../../ingress/service.ts';
import { authorization, randomNonce } from '../../ingress/signature.ts';
import { startHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId } from '../helpers.ts';

const BURST = 3;

describe('clientAddress: one bucket per IPv4 address and per IPv6 /64', () => {
  it.each([
    ['203.0.113.9', '203.0.113.9'],
    ['::ffff:203.0.113.9', '203.0.113.9'],
    ['2001:db8:aa:bb:1:2:3:4', '2001:db8:aa:bb::/64'],
    ['2001:0DB8:00aa:bb::ffff', '2001:db8:aa:bb::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
  ])('%s → %s', (ip, expected) => {
    expect(clientAddress(ip)).toBe(expected);
  });

  it('refuses what is not an address', () => {
    expect(() => clientAddress('localhost')).toThrow(/not an IP/);
  });
});

describe('rate limits', () => {
  let h: Harness;
  let second: Awaited<ReturnType<typeof startIngress>>;
  let merchant: { id: string; secret: string };
  let ipSeq = 0;
  /** A fresh documentation-range address per call, so that only the limit under test can trip. */
  const freshIp = () => `192.0.2.${++ipSeq}`;

  beforeAll(async () => {
    h = await startHarness({
      settlement: false,
      config: testConfig({
        PEAKPAY_RATE_LIMIT_IP_PER_S: '1', PEAKPAY_RATE_LIMIT_IP_BURST: String(BURST),
        PEAKPAY_RATE_LIMIT_MERCHANT_PER_S: '1', PEAKPAY_RATE_LIMIT_MERCHANT_BURST: String(BURST),
      }),
    });
    // A second ingress on the same config: another instance behind the same load balancer.
    second = await startIngress(h.config, { pool: h.pool, listen: false });
    merchant = await h.newMerchant();
  });
  afterAll(async () => {
    await second?.stop();
    await h?.stop();
  });

  type Sent = { url: string; nonce: string; key: string; res: Awaited<ReturnType<FastifyInstance['inject']>> };

  async function signed(app: FastifyInstance, m: { id: string; secret: string }, method: 'GET' | 'POST', remoteAddress: string): Promise<Sent> {
    const url = method === 'GET' ? '/v1/accounts/acc_none' : '/v1/payments';
    const body = method === 'POST' ? JSON.stringify({ out_trade_no: uniqueId('T'), amount: 100, currency: 'CNY', method: 'balance', account_id: 'acc_none', scene: 'pc' }) : '';
    const nonce = randomNonce();
    const key = uniqueId('idem');
    const res = await app.inject({
      method, url, remoteAddress,
      ...(body ? { payload: body } : {}),
      headers: {
        authorization: authorization(m.id, m.secret, method, url, body, { nonce }),
        ...(body ? { 'content-type': 'application/json', 'idempotency-key': key } : {}),
      },
    });
    return { url, nonce, key, res };
  }

  function expect429(res: Sent['res']): number {
    expect(res.statusCode).toBe(429);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ status: 429, code: 'rate_limited', request_id: res.headers['request-id'] });
    const retryAfter = Number(res.headers['retry-after']);
    expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
    return retryAfter;
  }

  const redis = () => h.ingress.ctx.redis;
  const nonceStored = (m: { id: string }, nonce: string) => redis().exists(merchantKeys(h.names.redisPrefix, m.id).nonce(nonce));
  const idemStored = (m: { id: string }, key: string) =>
    redis().exists(merchantKeys(h.names.redisPrefix, m.id).idempotency(createHash('sha256').update(key).digest('hex')));

  it('per address: the burst passes, the next is 429 with Retry-After on either instance, and changes nothing', async () => {
    const ip = '198.51.100.7';
    for (let i = 0; i < BURST; i++) {
      const ok = await signed(i % 2 === 0 ? h.app : second.app, await h.newMerchant(), 'GET', ip);
      expect(ok.res.json().code).toBe('account.not_found'); // authenticated and answered
    }
    const before = await h.streamMessages('cmd');
    const m = await h.newMerchant();
    const limited = await signed(second.app, m, 'POST', ip);
    expect429(limited.res);
    expect429((await signed(h.app, m, 'GET', ip)).res);
    // Refused before authentication: no nonce, no idempotency record, no command.
    expect(await nonceStored(m, limited.nonce)).toBe(0);
    expect(await idemStored(m, limited.key)).toBe(0);
    expect(await h.streamMessages('cmd')).toBe(before);
    // Another address is not affected, IPv6 too; unauthenticated floods count.
    expect((await signed(h.app, m, 'GET', freshIp())).res.statusCode).toBe(404);
    expect((await signed(h.app, m, 'GET', '2001:db8::5')).res.statusCode).toBe(404);
    const anon = await h.app.inject({ method: 'GET', url: '/v1/payments/x', remoteAddress: ip });
    expect429(anon);
    // The operational routes are never limited.
    expect((await h.app.inject({ method: 'GET', url: '/healthz', remoteAddress: ip })).statusCode).toBe(200);
  });

  it('per address: a token is back after Retry-After', async () => {
    const ip = '198.51.100.8';
    for (let i = 0; i < BURST; i++) await signed(h.app, merchant, 'GET', ip);
    const wait = expect429((await signed(h.app, merchant, 'GET', ip)).res);
    await new Promise((r) => setTimeout(r, wait * 1000));
    expect((await signed(h.app, merchant, 'GET', ip)).res.statusCode).toBe(404);
  });

  it('per merchant: the burst passes from any address and instance, then 429; the refused nonce stays unused', async () => {
    const m = await h.newMerchant();
    for (let i = 0; i < BURST; i++) expect((await signed(i % 2 === 0 ? h.app : second.app, m, 'GET', freshIp())).res.statusCode).toBe(404);
    const before = await h.streamMessages('cmd');
    const limited = await signed(second.app, m, 'POST', freshIp());
    expect429(limited.res);
    expect(await nonceStored(m, limited.nonce)).toBe(0);
    expect(await idemStored(m, limited.key)).toBe(0);
    expect(await h.streamMessages('cmd')).toBe(before);
    // Another merchant keeps its own budget.
    expect((await signed(h.app, await h.newMerchant(), 'GET', freshIp())).res.statusCode).toBe(404);
    // A forged request for this merchant is refused for its signature and spends nothing of the budget.
    const bucket = await redis().hgetall(merchantKeys(h.names.redisPrefix, m.id).rateLimit);
    const forged = await signed(h.app, { id: m.id, secret: 'sk_guess' }, 'GET', freshIp());
    expect(forged.res.json().code).toBe('auth.invalid_signature');
    expect(await redis().hgetall(merchantKeys(h.names.redisPrefix, m.id).rateLimit)).toEqual(bucket);
  });

  it('keeps the merchant bucket under its hash tag and the address bucket under its own, both expiring', async () => {
    const m = await h.newMerchant();
    await signed(h.app, m, 'GET', '198.51.100.9');
    const merchantBucket = merchantKeys(h.names.redisPrefix, m.id).rateLimit;
    const ipBucket = clientKeys(h.names.redisPrefix, '198.51.100.9').rateLimit;
    expect(merchantBucket).toContain(`{${m.id}}`);
    expect(ipBucket).toContain('{ip:198.51.100.9}');
    for (const key of [merchantBucket, ipBucket]) {
      const ttl = await redis().pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual((BURST + 1) * 1000);
    }
  });

  it('0 = off: no bucket is read or written', async () => {
    const off = new RateLimiter(redis(), h.names.redisPrefix, { merchantPerS: 0, merchantBurst: 1, ipPerS: 0, ipBurst: 1 }, 600);
    const m = await h.newMerchant();
    for (let i = 0; i < 5; i++) {
      expect(await off.ip('198.51.100.10', '198.51.100.10')).toBe(0);
      expect(await off.merchant(m.id, randomNonce())).toEqual({ kind: 'ok' });
    }
    expect(await redis().exists(clientKeys(h.names.redisPrefix, '198.51.100.10').rateLimit, merchantKeys(h.names.redisPrefix, m.id).rateLimit)).toBe(0);
  });
});

describe('TLS', () => {
  let dir: string;
  let ingress: Awaited<ReturnType<typeof startIngress>>;
  let h: Harness;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'peakpay-tls-'));
    // A throwaway self-signed certificate for 127.0.0.1 (openssl is part of the base system).
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    h = await startHarness({ engine: false, settlement: false });
    const config = testConfig({
      PEAKPAY_NAMESPACE: h.config.namespace, PEAKPAY_HTTP_PORT: '0',
      PEAKPAY_TLS_CERT_FILE: join(dir, 'cert.pem'), PEAKPAY_TLS_KEY_FILE: join(dir, 'key.pem'),
    });
    ingress = await startIngress(config, { pool: h.pool });
  });
  afterAll(async () => {
    await ingress?.stop();
    await h?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const port = () => (ingress.app.server.address() as AddressInfo).port;

  function get(mod: typeof https | typeof http, path: string, headers: Record<string, string> = {}) {
    return new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      const req = mod.request(
        { host: '127.0.0.1', port: port(), path, headers, ...(mod === https ? { ca: readFileSync(join(dir, 'cert.pem')) } : {}) },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  it('serves HTTPS with the configured certificate (verified against it as the CA)', async () => {
    const health = await get(https, '/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
    const m = await h.newMerchant();
    const res = await get(https, '/v1/accounts/acc_1', { authorization: authorization(m.id, m.secret, 'GET', '/v1/accounts/acc_1', '') });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'account.not_found', request_id: res.headers['request-id'] });
  });

  it('does not answer plain HTTP on that port', async () => {
    const plain = await get(http, '/healthz').catch((err: Error) => err);
    expect(plain instanceof Error || plain.status === 400).toBe(true);
  });

  it('refuses a certificate it cannot verify', async () => {
    const err = await new Promise<Error>((resolve) => {
      https.get({ host: '127.0.0.1', port: port(), path: '/healthz' }, () => resolve(new Error('connected'))).on('error', resolve);
    });
    expect(err.message).toMatch(/self[- ]signed/i);
  });
});
