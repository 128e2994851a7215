// Stripe-style idempotency for every POST: the first completed response is stored for 24 h and
// replayed byte for byte (Idempotent-Replayed: true); the same key with another request is 422;
// while the first runs, 409. Validation failures never reach here, so they are not stored.
// If the engine could not be reached (503), the record is kept as "retryable": the same request
// may try again with the same key, and since the command id is derived from (key, request), the
// retry cannot apply twice.
import { createHash } from 'node:crypto';
import { crockford26 } from '../engine/protocol/ids.ts';
import type { Redis } from 'ioredis';
import { merchantKeys, type MerchantKeys } from '../engine/redis/keys.ts';
import { registerScripts, SCRIPTS_VERSION } from '../engine/redis/scripts.ts';

export const IDEMPOTENCY_TTL_S = 24 * 3600;
/** A claim whose request never finishes (the ingress died) frees itself after this long. */
export const RUNNING_TTL_S = 60;

export type StoredResponse = { status: number; headers: Record<string, string>; body: string };
export type Claim =
  | { state: 'new' }
  | { state: 'in_progress' }
  | { state: 'mismatch' }
  | { state: 'done'; response: StoredResponse };

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest();

export function fingerprint(method: string, path: string, body: Buffer): string {
  return sha256(Buffer.concat([Buffer.from(`${method}\n${path}\n`), body])).toString('hex');
}

/** Deterministic ids for a (merchant, key, request): a retried request maps to the same command. */
export function derivedId(prefix: string, merchantId: string, key: string, fp: string): string {
  return `${prefix}_${crockford26(sha256(`${prefix}\0${merchantId}\0${key}\0${fp}`))}`;
}

type BeginFn = (key: string, fp: string, ttl: number) => Promise<(string | null)[]>;

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

  private key(merchantId: string, idemKey: string): string {
    let keys = this.keysByMerchant.get(merchantId);
    if (!keys) {
      if (this.keysByMerchant.size >= KEYS_CACHE_ENTRIES_MAX) this.keysByMerchant.clear();
      keys = merchantKeys(this.prefix, merchantId);
      this.keysByMerchant.set(merchantId, keys);
    }
    return keys.idempotency(sha256(idemKey).toString('hex'));
  }

  async begin(merchantId: string, idemKey: string, fp: string): Promise<Claim> {
    const fn = (this.redis as unknown as Record<string, BeginFn>)[`idempotencyBegin:${SCRIPTS_VERSION}`] as BeginFn;
    const r = await fn.call(this.redis, this.key(merchantId, idemKey), fp, RUNNING_TTL_S);
    switch (r[0]) {
      case 'new':
        return { state: 'new' };
      case 'in_progress':
        return { state: 'in_progress' };
      case 'mismatch':
        return { state: 'mismatch' };
      case 'done':
        return {
          state: 'done',
          response: { status: Number(r[2]), headers: JSON.parse(r[3] ?? '{}') as Record<string, string>, body: r[4] ?? '' },
        };
      default:
        throw new Error(`assertion: unexpected idempotency state ${String(r[0])}`);
    }
  }

  /**
   * Two auto-pipelined commands rather than MULTI/EXEC: a transaction is its own pipeline and
   * socket write per request, which cost the ingress as much as all its other Redis traffic
   * (bench:http profile). Should EXPIRE be lost, the record keeps begin's RUNNING_TTL_S and a
   * later retry re-runs with the same derived command id, which the engine replays: no second effect.
   */
  async finish(merchantId: string, idemKey: string, response: StoredResponse): Promise<void> {
    const key = this.key(merchantId, idemKey);
    await Promise.all([
      this.redis.hset(key, 'state', 'done', 'status', response.status, 'headers', JSON.stringify(response.headers), 'body', response.body),
      this.redis.expire(key, IDEMPOTENCY_TTL_S),
    ]);
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
