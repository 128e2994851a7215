// Stripe-style idempotency for every POST: the first completed response is stored for 24 h and
// replayed byte for byte (Idempotent-Replayed: true); the same key with another request is 422;
// while the first runs, 409. Validation failures never reach here, so they are not stored.
// The claim names the command the request sends. For a balance payment the engine completes the
// record in the script that decides it (paymentCreate-11): the response is then that command's op
// record, rendered the same way on a replay (state done_op), and nothing else is stored.
// If the engine could not be reached (503), the record is kept as "retryable": the same request
// may try again with the same key, and since the command id is derived from (key, request), the
// retry cannot apply twice.
import { hash } from 'node:crypto';
import { crockford26 } from '../engine/protocol/ids.ts';
import type { Redis } from 'ioredis';
import { IDEMPOTENCY_TTL_S, merchantKeys, type MerchantKeys } from '../engine/redis/keys.ts';
import { registerScripts, SCRIPTS_VERSION } from '../engine/redis/scripts.ts';

export { IDEMPOTENCY_TTL_S } from '../engine/redis/keys.ts';
/** A claim whose request never finishes (the ingress died) frees itself after this long. */
export const RUNNING_TTL_S = 60;

export type StoredResponse = { status: number; headers: Record<string, string>; body: string };
export type Claim =
  | { state: 'new' }
  | { state: 'in_progress' }
  | { state: 'mismatch' }
  | { state: 'done'; response: StoredResponse }
  /** Completed by the engine: the response is the op record of this command, rendered. */
  | { state: 'done_op'; cmdId: string };

// One-shot crypto.hash (Node ≥ 20.12): no Hash object per digest, ~1 µs less each, 3–4 a request.
const sha256 = (s: string | Buffer): Buffer => hash('sha256', s, 'buffer');

export function fingerprint(method: string, path: string, body: Buffer): string {
  return sha256(Buffer.concat([Buffer.from(`${method}\n${path}\n`), body])).toString('hex');
}

/** What names the record of an Idempotency-Key in Redis, and in a payment.create command (idempotency_key_sha256). */
export const idempotencyKeySha256 = (idemKey: string): string => sha256(idemKey).toString('hex');

/** Deterministic ids for a (merchant, key, request): a retried request maps to the same command. */
export function derivedId(prefix: string, merchantId: string, key: string, fp: string): string {
  return `${prefix}_${crockford26(sha256(`${prefix}\0${merchantId}\0${key}\0${fp}`))}`;
}

type BeginFn = (key: string, fp: string, ttl: number, cmdId: string) => Promise<(string | null)[]>;
type AdmitClaimFn = (...args: (string | number)[]) => Promise<(string | number | null)[]>;

/** What admitClaim-3.lua decided: the request refused at the door, or admitted with its claim. */
export type Admission = { kind: 'nonce_reused' } | { kind: 'limited'; retryAfterMs: number } | { kind: 'admitted'; claim: Claim };
/** The merchant bucket and nonce settings of the RateLimiter (rate 0 = no limit). */
export type AdmissionArgs = { ratePerS: number; burst: number; nonceTtlS: number };

function claimOf(r: readonly (string | number | null)[]): Claim {
  switch (r[0]) {
    case 'new':
      return { state: 'new' };
    case 'in_progress':
      return { state: 'in_progress' };
    case 'mismatch':
      return { state: 'mismatch' };
    case 'done_op':
      if (typeof r[1] !== 'string' || r[1] === '') throw new Error('assertion: idempotency record done_op without a command id');
      return { state: 'done_op', cmdId: r[1] };
    case 'done':
      return {
        state: 'done',
        response: { status: Number(r[2]), headers: JSON.parse(String(r[3] ?? '{}')) as Record<string, string>, body: String(r[4] ?? '') },
      };
    default:
      throw new Error(`assertion: unexpected idempotency state ${String(r[0])}`);
  }
}
type FinishFn = (key: string, status: number, headers: string, body: string, ttl: number) => Promise<number>;

/**
 * merchantKeys() builds a dozen closures per call (and tsx names each one): cached per merchant,
 * since it ran twice per request (bench:http). Cleared whole when full: it only saves work.
 */
const KEYS_CACHE_ENTRIES_MAX = 10_000;

export class IdempotencyStore {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly keysByMerchant = new Map<string, MerchantKeys>();

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
    registerScripts(redis);
  }

  private keysOf(merchantId: string): MerchantKeys {
    let keys = this.keysByMerchant.get(merchantId);
    if (!keys) {
      if (this.keysByMerchant.size >= KEYS_CACHE_ENTRIES_MAX) this.keysByMerchant.clear();
      keys = merchantKeys(this.prefix, merchantId);
      this.keysByMerchant.set(merchantId, keys);
    }
    return keys;
  }

  private key(merchantId: string, idemKey: string): string {
    return this.keysOf(merchantId).idempotency(idempotencyKeySha256(idemKey));
  }

  /** cmdId: the command the request will send (derivedId('cmd', …)): only it may complete the record in the engine. */
  async begin(merchantId: string, idemKey: string, fp: string, cmdId: string): Promise<Claim> {
    const fn = (this.redis as unknown as Record<string, BeginFn>)[`idempotencyBegin:${SCRIPTS_VERSION}`] as BeginFn;
    return claimOf(await fn.call(this.redis, this.key(merchantId, idemKey), fp, RUNNING_TTL_S, cmdId));
  }

  /**
   * The nonce, the merchant's rate limit and the claim in one EVALSHA (admitClaim-3.lua), for an
   * authenticated POST: what authentication and begin() did in two round-trips.
   */
  async admitAndBegin(merchantId: string, idemKey: string, fp: string, nonce: string, a: AdmissionArgs, cmdId: string): Promise<Admission> {
    const fn = (this.redis as unknown as Record<string, AdmitClaimFn>)[`admitClaim:${SCRIPTS_VERSION}`] as AdmitClaimFn;
    const keys = this.keysOf(merchantId);
    const r = await fn.call(this.redis, keys.rateLimit, keys.nonce(nonce), keys.idempotency(idempotencyKeySha256(idemKey)), a.ratePerS, a.burst, a.nonceTtlS, fp, RUNNING_TTL_S, cmdId);
    if (r[0] === 'nonce_reused') return { kind: 'nonce_reused' };
    if (r[0] === 'limited') return { kind: 'limited', retryAfterMs: Number(r[1]) };
    return { kind: 'admitted', claim: claimOf(r) };
  }

  /** One EVALSHA (idempotencyFinish-1.lua): atomic, and auto-pipelined with the other requests' commands. */
  async finish(merchantId: string, idemKey: string, response: StoredResponse): Promise<void> {
    const fn = (this.redis as unknown as Record<string, FinishFn>)[`idempotencyFinish:${SCRIPTS_VERSION}`] as FinishFn;
    await fn.call(this.redis, this.key(merchantId, idemKey), response.status, JSON.stringify(response.headers), response.body, IDEMPOTENCY_TTL_S);
  }

  async retryable(merchantId: string, idemKey: string): Promise<void> {
    const key = this.key(merchantId, idemKey);
    await this.redis.multi().hset(key, 'state', 'retryable').expire(key, IDEMPOTENCY_TTL_S).exec();
  }

  /** The request failed validation after claiming (should not happen) or crashed: free the key. */
  async release(merchantId: string, idemKey: string): Promise<void> {
    await this.redis.del(this.key(merchantId, idemKey));
  }
}
