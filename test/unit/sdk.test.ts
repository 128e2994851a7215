// The SDK's pure parts: request signing (checked against the server's own verifier), webhook
// verification, the retry policy, error parsing, and that the SDK stays free of engine code.
import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import type { AccountSnapshot } from '../../engine/protocol/events.ts';
import type { Payment as EnginePayment } from '../../engine/protocol/payment.ts';
import type { Refund as EngineRefund } from '../../engine/protocol/refund.ts';
import { parseAuthorization, sign, signatureMatches } from '../../ingress/signature.ts';
import { webhookSignature } from '../../engine/webhooks/signature.ts';
import type { createAccountBody, createPaymentBody, createTopupBody, refundPaymentBody } from '../../ingress/schemas.ts';
import {
  authorizationHeader, backoffMs, decide, isPeakpayApiError, newNonce, parseRetryAfterMs, PeakpayApiError, RETRY_POLICY_DEFAULT,
  signature, signWebhook, verifyWebhook,
  type Account, type CreateAccountParams, type CreatePaymentParams, type CreateRefundParams, type CreateTopupParams, type Payment, type Refund,
} from '../../ingress/sdk/index.ts';
import { errorFromResponse } from '../../ingress/sdk/errors.ts';

const SDK_DIR = join(import.meta.dirname, '../../ingress/sdk');

describe('SDK request signing', () => {
  it('produces the signature the server computes, for any method, path, body, timestamp and nonce', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('GET', 'POST'),
        fc.string({ minLength: 1, maxLength: 80 }).map((s) => `/v1/${encodeURIComponent(s)}`),
        fc.string({ maxLength: 300 }),
        fc.integer({ min: 0, max: 4_000_000_000 }),
        fc.stringMatching(/^[A-Za-z0-9]{16,64}$/),
        fc.string({ minLength: 1, maxLength: 60 }),
        (method, path, body, ts, nonce, secret) => {
          const input = { method, pathWithQuery: path, body, timestampS: ts, nonce };
          expect(signature(secret, input)).toBe(sign(secret, method, path, String(ts), nonce, body));
          expect(signature(secret, { ...input, body: Buffer.from(body) })).toBe(signature(secret, input));
        },
      ),
    );
  });

  it('signs METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n with HMAC-SHA256 (independent computation)', () => {
    const expected = createHmac('sha256', 'sk_x').update('GET\n/v1/payments?out_trade_no=T1\n1764300000\nABCDEFGHIJKLMNOP\n\n').digest('hex');
    expect(signature('sk_x', { method: 'get', pathWithQuery: '/v1/payments?out_trade_no=T1', body: '', timestampS: 1764300000, nonce: 'ABCDEFGHIJKLMNOP' }))
      .toBe(expected);
  });

  it("builds an Authorization header the server's parser accepts and verifies", () => {
    const input = { method: 'POST', pathWithQuery: '/v1/payments', body: '{"amount":1}', timestampS: 1764300000, nonce: newNonce() };
    const parsed = parseAuthorization(authorizationHeader('m_1', 'sk_live', input));
    expect(parsed).toMatchObject({ merchant_id: 'm_1', timestamp: '1764300000', nonce: input.nonce });
    expect(signatureMatches(sign('sk_live', 'POST', '/v1/payments', '1764300000', input.nonce, '{"amount":1}'), parsed?.signature ?? '')).toBe(true);
    expect(signatureMatches(sign('sk_other', 'POST', '/v1/payments', '1764300000', input.nonce, '{"amount":1}'), parsed?.signature ?? '')).toBe(false);
  });

  it('draws nonces of the allowed alphabet and length, never the same twice', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const n = newNonce();
      expect(n).toMatch(/^[A-Za-z0-9]{16,64}$/);
      seen.add(n);
    }
    expect(seen.size).toBe(2000);
  });
});

describe('verifyWebhook', () => {
  const secret = 'whsec_test';
  const body = '{"id":"evt_1","type":"payment.succeeded","data":{"amount":1999}}';
  const t = 1_764_300_000;
  const mac = (s: string, ts: number, b: string) => createHmac('sha256', s).update(`${ts}.${b}`).digest('hex');

  it('accepts t=…,v1=HMAC(secret, t + "." + body) computed independently, for string and Buffer bodies', () => {
    const header = `t=${t},v1=${mac(secret, t, body)}`;
    expect(verifyWebhook(secret, header, body, { nowS: t })).toBe(true);
    expect(verifyWebhook(secret, header, Buffer.from(body), { nowS: t })).toBe(true);
    expect(signWebhook(secret, body, t)).toBe(header);
  });

  it("accepts what peakpay's webhook sender signs, for any body (including non-ASCII)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), fc.string({ minLength: 1, maxLength: 60 }), fc.integer({ min: 0, max: 4_000_000_000 }), (b, s, ts) => {
        const header = webhookSignature(s, b, ts);
        expect(verifyWebhook(s, header, b, { nowS: ts })).toBe(true);
        expect(verifyWebhook(s, header, Buffer.from(b, 'utf8'), { nowS: ts })).toBe(true);
        expect(verifyWebhook(s, header, `${b} `, { nowS: ts })).toBe(false);
      }),
    );
  });

  it('refuses a tampered body, another secret, or a signature over another timestamp', () => {
    const header = signWebhook(secret, body, t);
    expect(verifyWebhook(secret, header, body.replace('1999', '1998'), { nowS: t })).toBe(false);
    expect(verifyWebhook('whsec_other', header, body, { nowS: t })).toBe(false);
    expect(verifyWebhook(secret, `t=${t + 1},v1=${mac(secret, t, body)}`, body, { nowS: t })).toBe(false);
  });

  it('accepts up to toleranceS from now and refuses beyond it, both ways', () => {
    const header = signWebhook(secret, body, t);
    expect(verifyWebhook(secret, header, body, { nowS: t + 300 })).toBe(true);
    expect(verifyWebhook(secret, header, body, { nowS: t - 300 })).toBe(true);
    expect(verifyWebhook(secret, header, body, { nowS: t + 301 })).toBe(false);
    expect(verifyWebhook(secret, header, body, { nowS: t - 301 })).toBe(false);
    expect(verifyWebhook(secret, header, body, { nowS: t + 1000, toleranceS: 1000 })).toBe(true);
  });

  it('accepts any matching v1 among several (secret rotation) and ignores unknown schemes', () => {
    const header = `t=${t},v1=${mac('old', t, body)},v1=${mac(secret, t, body)},v0=zzz`;
    expect(verifyWebhook(secret, header, body, { nowS: t })).toBe(true);
    expect(verifyWebhook('neither', header, body, { nowS: t })).toBe(false);
  });

  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['no timestamp', `v1=${mac(secret, t, body)}`],
    ['no v1', `t=${t}`],
    ['two timestamps', `t=${t},t=${t},v1=${mac(secret, t, body)}`],
    ['a non-numeric timestamp', `t=abc,v1=${mac(secret, t, body)}`],
    ['a short signature', `t=${t},v1=${mac(secret, t, body).slice(0, 62)}`],
    ['a non-hex signature', `t=${t},v1=${'z'.repeat(64)}`],
    ['a part without =', `t=${t},v1`],
    ['an over-long header', `t=${t},v1=${mac(secret, t, body)},${'x=1,'.repeat(300)}`],
  ])('refuses %s', (_name, header) => {
    expect(verifyWebhook(secret, header, body, { nowS: t })).toBe(false);
  });

  it('refuses everything when the secret is empty', () => {
    expect(verifyWebhook('', signWebhook('', body, t), body, { nowS: t })).toBe(false);
  });
});

describe('retry policy', () => {
  const policy = RETRY_POLICY_DEFAULT;
  const http = (status: number, code: string | null = null, retryAfter: string | null = null) => ({ kind: 'http' as const, status, code, retryAfter });

  it.each([429, 502, 503, 504])('retries %i', (status) => {
    expect(decide(http(status), 1, policy).retry).toBe(true);
  });

  it('retries network errors, timeouts and 409 idempotency.in_progress', () => {
    expect(decide({ kind: 'network' }, 1, policy).retry).toBe(true);
    expect(decide({ kind: 'timeout' }, 1, policy).retry).toBe(true);
    expect(decide(http(409, 'idempotency.in_progress'), 1, policy).retry).toBe(true);
  });

  it('never retries other 4xx, nor 500', () => {
    fc.assert(
      fc.property(fc.integer({ min: 400, max: 499 }).filter((s) => s !== 429), fc.string(), (status, code) => {
        fc.pre(!(status === 409 && code === 'idempotency.in_progress'));
        expect(decide(http(status, code), 1, policy).retry).toBe(false);
      }),
    );
    expect(decide(http(409, 'payment.duplicate_out_trade_no'), 1, policy).retry).toBe(false);
    expect(decide(http(500, 'internal'), 1, policy).retry).toBe(false);
  });

  it('stops after attemptsMax attempts', () => {
    expect(decide({ kind: 'network' }, policy.attemptsMax - 1, policy).retry).toBe(true);
    expect(decide({ kind: 'network' }, policy.attemptsMax, policy).retry).toBe(false);
    expect(decide({ kind: 'network' }, 1, { ...policy, attemptsMax: 1 }).retry).toBe(false);
  });

  it('backs off exponentially within [ceiling/2, ceiling], the ceiling capped at backoffMaxMs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
        const ceiling = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (attempt - 1));
        const d = backoffMs(attempt, policy, () => r);
        expect(d).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
        expect(d).toBeLessThanOrEqual(ceiling);
      }),
    );
    expect(backoffMs(1, policy, () => 0)).toBe(policy.backoffBaseMs / 2);
    expect(backoffMs(3, policy, () => 0)).toBe(policy.backoffBaseMs * 2);
  });

  it('waits what Retry-After says (seconds or HTTP date), and gives up when it is beyond retryAfterMsMax', () => {
    const now = Date.parse('2026-11-28T12:00:00Z');
    expect(parseRetryAfterMs('3', now)).toBe(3000);
    expect(parseRetryAfterMs(' 0 ', now)).toBe(0);
    expect(parseRetryAfterMs('Sat, 28 Nov 2026 12:00:07 GMT', now)).toBe(7000);
    expect(parseRetryAfterMs('Sat, 28 Nov 2026 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfterMs('soon', now)).toBeNull();
    expect(parseRetryAfterMs(null, now)).toBeNull();
    expect(decide(http(429, 'rate_limited', '2'), 1, policy, () => 0, now)).toEqual({ retry: true, delayMs: 2000 });
    expect(decide(http(503, 'engine.unavailable', '1'), 2, policy, () => 0, now)).toEqual({ retry: true, delayMs: 1000 });
    expect(decide(http(429, 'rate_limited', String(policy.retryAfterMsMax / 1000 + 1)), 1, policy, () => 0, now)).toEqual({ retry: false });
    expect(decide(http(429, 'rate_limited', 'soon'), 1, policy, () => 0, now)).toEqual({ retry: true, delayMs: policy.backoffBaseMs / 2 });
  });
});

describe('PeakpayApiError', () => {
  it('carries status, code, request id and field errors of a problem+json answer', () => {
    const body = JSON.stringify({
      type: 'x', title: 'Validation failed', status: 400, code: 'validation.failed', detail: 'the request body is invalid', request_id: 'req_1',
      errors: [{ path: 'amount', message: 'must be an integer' }, { bogus: true }],
    });
    const err = errorFromResponse(400, body, 'req_header', 1);
    expect(isPeakpayApiError(err)).toBe(true);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('PeakpayApiError');
    expect(err).toMatchObject({ status: 400, code: 'validation.failed', requestId: 'req_1', attempts: 1 });
    expect(err.errors).toEqual([{ path: 'amount', message: 'must be an integer' }]);
    expect(err.message).toContain('the request body is invalid');
  });

  it('still gives status and the request-id header when the body is not JSON', () => {
    const err = errorFromResponse(502, '<html>Bad Gateway</html>', 'req_h', 3);
    expect(err).toMatchObject({ status: 502, code: 'http.502', requestId: 'req_h', attempts: 3, problem: null, errors: [] });
  });

  it('keeps its cause', () => {
    const cause = new TypeError('fetch failed');
    const err = new PeakpayApiError('network error', { status: 0, code: 'client.network_error', cause });
    expect(err.cause).toBe(cause);
    expect(isPeakpayApiError(cause)).toBe(false);
  });
});

describe('SDK packaging', () => {
  it('imports nothing at run time but node:crypto and its own files, so it can be copied out', () => {
    const files = readdirSync(SDK_DIR).filter((f) => f.endsWith('.ts'));
    expect(files).toContain('index.ts');
    const seen = new Set<string>();
    for (const f of files) {
      const src = readFileSync(join(SDK_DIR, f), 'utf8');
      expect(src, `${f} must not require()`).not.toMatch(/\brequire\(|\bimport\(/);
      for (const m of src.matchAll(/^\s*(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)) {
        const spec = m[3] as string;
        seen.add(spec);
        if (m[2]) expect(spec, `${f}: type import ${spec}`).toMatch(/^\.\/[a-z-]+\.ts$/);
        else expect(spec === 'node:crypto' || /^\.\/[a-z-]+\.ts$/.test(spec), `${f} imports ${spec}`).toBe(true);
      }
    }
    expect(seen).toContain('node:crypto');
    expect(seen).toContain('./client.ts');
  });

  it("declares the server's wire types (checked by tsc)", () => {
    // These fail `npm run typecheck` when the server's schemas and the SDK's types drift apart.
    expectTypeOf<Payment>().toEqualTypeOf<EnginePayment>();
    expectTypeOf<Refund>().toEqualTypeOf<EngineRefund>();
    expectTypeOf<Account>().toEqualTypeOf<AccountSnapshot>();
    expectTypeOf<CreatePaymentParams>().toEqualTypeOf<z.input<typeof createPaymentBody>>();
    expectTypeOf<CreateRefundParams>().toEqualTypeOf<z.input<typeof refundPaymentBody>>();
    expectTypeOf<CreateAccountParams>().toEqualTypeOf<z.input<typeof createAccountBody>>();
    expectTypeOf<CreateTopupParams>().toEqualTypeOf<z.input<typeof createTopupBody>>();
  });
});
