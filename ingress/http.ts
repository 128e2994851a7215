// Small helpers shared by the routes: JSON bodies, zod validation into our error shape, and the
// idempotent POST wrapper.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { isEngineUnavailableError } from '../engine/client/index.ts';
import type { Merchant } from '../engine/merchants/index.ts';
import { ApiError, isApiError, problemOf, type ErrorCode, type FieldError } from './errors.ts';
import type { IngressContext } from './context.ts';
import { derivedId, fingerprint, idempotencyKeySha256, type Claim, type StoredResponse } from './idempotency.ts';
import { refuseUnadmitted } from './auth.ts';
import { idempotencyKeySchema } from './schemas.ts';

/**
 * completedByEngine: the engine completed the request's idempotency record (paymentCreate-11), so
 * this response is its op record rendered, and a replay renders it again (IdempotentOptions.replayOp).
 */
export type HttpResult = StoredResponse & { completedByEngine?: true };

export function jsonResult(status: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers }, body: JSON.stringify(body) };
}

export function problemResult(err: ApiError, requestId: string): HttpResult {
  return {
    status: err.status,
    headers: { 'content-type': 'application/problem+json; charset=utf-8' },
    body: JSON.stringify(problemOf(err, requestId)),
  };
}

export function errorResult(code: ErrorCode, detail: string, requestId: string, extra?: Record<string, unknown>): HttpResult {
  return problemResult(new ApiError(code, detail, extra ? { extra } : {}), requestId);
}

export function send(reply: FastifyReply, r: HttpResult, extraHeaders: Record<string, string> = {}): FastifyReply {
  return reply.code(r.status).headers({ ...r.headers, ...extraHeaders }).send(r.body);
}

// fatal: invalid UTF-8 is an error, not U+FFFD: a body the merchant signed is never altered.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * What JSON.parse lets through but must not reach a schema or the engine: a `__proto__` member
 * (zod would drop it from a record without a word, so the merchant's data would silently change)
 * and strings with unpaired surrogates (`"\ud800"`), which no UTF-8 store can keep as sent.
 * Iterative: a 16 KiB body can nest 8,000 levels deep.
 */
function hostileMember(json: unknown): FieldError | null {
  const stack: { value: unknown; path: string }[] = [{ value: json, path: '' }];
  for (let next = stack.pop(); next; next = stack.pop()) {
    const { value, path } = next;
    if (typeof value === 'string') {
      if (LONE_SURROGATE.test(value)) return { path: path || '(body)', message: 'contains an unpaired UTF-16 surrogate' };
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    for (const [key, child] of Object.entries(value)) {
      const childPath = path ? `${path}.${key}` : key;
      if (key === '__proto__') return { path: childPath, message: 'reserved name' };
      if (LONE_SURROGATE.test(key)) return { path: childPath, message: 'name contains an unpaired UTF-16 surrogate' };
      stack.push({ value: child, path: childPath });
    }
  }
  return null;
}

/** Parses the raw body as JSON (empty = {}) and validates it; errors are 400 with field paths. */
export function parseBody<S extends z.ZodType>(req: FastifyRequest, schema: S): z.infer<S> {
  let json: unknown = {};
  if (req.rawBody.length > 0) {
    try {
      json = JSON.parse(utf8.decode(req.rawBody));
    } catch {
      throw new ApiError('request.malformed_json', 'the body is not valid JSON in UTF-8');
    }
    const hostile = hostileMember(json);
    if (hostile) throw new ApiError('validation.failed', 'the request body is invalid', { errors: [hostile] });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const errors = parsed.error.issues.map((i) => ({
      path: i.path.join('.') || '(body)',
      message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
    }));
    throw new ApiError('validation.failed', 'the request body is invalid', { errors });
  }
  return parsed.data;
}

/** keySha256: what names the request's idempotency record (for idempotency_key_sha256). */
export type DerivedIds = { cmdId: string; keySha256: string; derive: (prefix: string) => string };

export type IdempotentOptions = {
  /**
   * The response again, for a key the engine completed: the op record of `cmdId` rendered as the
   * first response was; null when the op record is gone. Routes whose results can be
   * completedByEngine must give it.
   */
  replayOp?: (ctx: IngressContext, merchantId: string, cmdId: string) => Promise<HttpResult | null>;
};

/**
 * Runs a POST once per Idempotency-Key. `run` must return the complete response; it is stored
 * (24 h) and replayed byte for byte, unless the engine completed the record (then the op record is
 * the response). Call it only after validation: validation failures are not stored.
 */
export async function idempotent(
  ctx: IngressContext,
  req: FastifyRequest,
  reply: FastifyReply,
  merchant: Merchant,
  run: (ids: DerivedIds) => Promise<HttpResult>,
  opts: IdempotentOptions = {},
): Promise<FastifyReply> {
  const key = req.headers['idempotency-key'];
  if (key === undefined) throw new ApiError('idempotency.key_missing');
  if (typeof key !== 'string' || !idempotencyKeySchema.safeParse(key).success) throw new ApiError('idempotency.key_invalid');
  const fp = fingerprint(req.method, req.url, req.rawBody);
  const cmdId = derivedId('cmd', merchant.id, key, fp);
  let claim: Claim;
  const nonce = req.deferredNonce;
  if (nonce !== null) {
    req.deferredNonce = null;
    const admission = await ctx.idempotency.admitAndBegin(merchant.id, key, fp, nonce, ctx.rateLimiter.admissionArgs, cmdId);
    refuseUnadmitted(ctx, admission);
    if (admission.kind !== 'admitted') throw new Error('assertion: unadmitted request not refused');
    claim = admission.claim;
  } else {
    claim = await ctx.idempotency.begin(merchant.id, key, fp, cmdId);
  }
  if (claim.state === 'done_op') {
    if (!opts.replayOp) throw new Error('assertion: the engine completed the key of a route that cannot replay it');
    const replayed = await opts.replayOp(ctx, merchant.id, claim.cmdId);
    if (replayed) return send(reply, replayed, { 'idempotent-replayed': 'true' });
    // The op record is gone (deleted by hand, or its TTL was shorter): run again. The command id is
    // the same, so the engine cannot apply it twice; it answers the payment as it now is.
    await ctx.idempotency.retryable(merchant.id, key);
    claim = await ctx.idempotency.begin(merchant.id, key, fp, cmdId);
  }
  if (claim.state === 'mismatch') throw new ApiError('idempotency.key_reused', 'this Idempotency-Key was used with a different request');
  if (claim.state === 'in_progress') throw new ApiError('idempotency.in_progress', 'retry once the first request has finished');
  if (claim.state === 'done') return send(reply, claim.response, { 'idempotent-replayed': 'true' });
  if (claim.state === 'done_op') throw new ApiError('idempotency.in_progress', 'retry once the first request has finished');

  let result: HttpResult;
  try {
    result = await run({ cmdId, keySha256: idempotencyKeySha256(key), derive: (p) => derivedId(p, merchant.id, key, fp) });
  } catch (err) {
    // Either way the command id is derived from (key, request): a retry cannot apply it twice.
    if (isApiError(err) && err.code === 'engine.unavailable') {
      await ctx.idempotency.retryable(merchant.id, key);
      throw err;
    }
    if (isEngineUnavailableError(err)) {
      await ctx.idempotency.retryable(merchant.id, key);
      throw new ApiError('engine.unavailable', 'the engine could not be reached; nothing was done, retry with the same key', { cause: err });
    }
    await ctx.idempotency.release(merchant.id, key);
    throw err;
  }
  if (!result.completedByEngine) await ctx.idempotency.finish(merchant.id, key, result);
  return send(reply, result);
}
