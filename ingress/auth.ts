// Merchant authentication (API.md): scheme, merchant, timestamp window, HMAC in constant time,
// and only then the nonce (so a forged request cannot burn a real client's nonce).
import type { FastifyRequest } from 'fastify';
import type { Merchant } from '../engine/merchants/index.ts';
import { ApiError, type ErrorCode } from './errors.ts';
import type { IngressContext } from './context.ts';
import { retryAfterS } from './rate-limit.ts';
import { parseAuthorization, sign, signatureMatches, timestampInWindow } from './signature.ts';

// Module level, not a closure per request: tsx (esbuild keepNames) wraps each closure it creates in
// a __name call (docs/BENCHMARKS.md).
function refuse(ctx: IngressContext, code: ErrorCode, detail?: string): never {
  ctx.metrics.authFailures.labels(code).inc();
  throw new ApiError(code, detail);
}

export async function authenticate(ctx: IngressContext, req: FastifyRequest, opts: { deferNonce: boolean } = { deferNonce: false }): Promise<Merchant> {
  const header: unknown = req.headers.authorization;
  if (!header) return refuse(ctx, 'auth.missing');
  // Node keeps the first of repeated Authorization headers, but other paths (inject) may hand an array.
  const params = typeof header === 'string' ? parseAuthorization(header) : null;
  if (!params) return refuse(ctx, 'auth.malformed', 'expected PEAKPAY-HMAC-SHA256 merchant_id="…",timestamp="…",nonce="…",signature="…"');
  const merchant = await ctx.merchants.get(params.merchant_id);
  if (!merchant) return refuse(ctx, 'auth.unknown_merchant');
  if (!timestampInWindow(params.timestamp, Date.now())) return refuse(ctx, 'auth.timestamp_out_of_window', 'timestamp must be within 300 s of the server clock');
  const expected = sign(merchant.secret, req.method, req.url, params.timestamp, params.nonce, req.rawBody);
  if (!signatureMatches(expected, params.signature)) return refuse(ctx, 'auth.invalid_signature');
  if (opts.deferNonce) {
    // Checked with the Idempotency-Key claim, in the same round-trip (idempotent() in http.ts). Until
    // then nothing is done: only validation runs, and a request refused there changes nothing either way.
    req.deferredNonce = params.nonce;
  } else {
    // The nonce and the merchant's rate limit in one round-trip; a limited request keeps its nonce unused.
    refuseUnadmitted(ctx, await ctx.rateLimiter.merchant(merchant.id, params.nonce));
  }
  if (merchant.status !== 'active') return refuse(ctx, 'auth.merchant_disabled');
  return merchant;
}

/** Throws the API error of a request refused at the door (nonce seen, merchant over its rate). */
export function refuseUnadmitted(ctx: IngressContext, admission: { kind: 'ok' | 'admitted' | 'nonce_reused' } | { kind: 'limited'; retryAfterMs: number }): void {
  if (admission.kind === 'nonce_reused') {
    ctx.metrics.authFailures.labels('auth.nonce_reused').inc();
    throw new ApiError('auth.nonce_reused');
  }
  if (admission.kind === 'limited') {
    ctx.metrics.rateLimited.labels('merchant').inc();
    const s = retryAfterS(admission.retryAfterMs);
    throw new ApiError('rate_limited', `this merchant's request rate is over its limit; retry in ${s} s`, { headers: { 'retry-after': String(s) } });
  }
}
