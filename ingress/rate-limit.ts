// Rate limits of the public API (API.md: 429 rate_limited with Retry-After), as token buckets in
// Redis so that every ingress instance shares them:
//   per client address: before anything else (no merchant is known yet), one EVALSHA;
//   per merchant: only once the signature checks out (a forger cannot spend a merchant's budget),
//   in the round-trip that records the nonce anyway (rateLimitNonce-2.lua; for a POST, admitClaim-3.lua,
//   which claims its Idempotency-Key too): no extra cost.
// So a request costs at most one Redis round-trip more than without limits. A refused request
// writes nothing: neither a token nor its nonce.
import { isIP } from 'node:net';
import type { Redis } from 'ioredis';
import { clientKeys, merchantKeys } from '../engine/redis/keys.ts';
import { registerScripts, SCRIPTS_VERSION } from '../engine/redis/scripts.ts';

export type RateLimits = { merchantPerS: number; merchantBurst: number; ipPerS: number; ipBurst: number };

/** Admitted, nonce already seen, or refused for this long. */
export type MerchantAdmission = { kind: 'ok' } | { kind: 'nonce_reused' } | { kind: 'limited'; retryAfterMs: number };

type Script = (...args: (string | number)[]) => Promise<number>;

const IPV6_GROUPS = 8;
/** The one bucket of requests whose address is unknown (no socket address: only in tests). */
const UNKNOWN_ADDRESS = '0.0.0.0';
const IPV6_PREFIX_GROUPS = 4;

/**
 * One bucket per IPv4 address and per IPv6 /64 (one subscriber's whole block: an attacker gets
 * 2^64 addresses, not 2^64 buckets). IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is the IPv4 address.
 */
export function clientAddress(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1] as string;
  const family = isIP(ip);
  if (family === 4) return ip;
  if (family !== 6) throw new Error(`assertion: not an IP address: ${JSON.stringify(ip)}`);
  const [head = '', tail = ''] = ip.toLowerCase().split('%')[0]?.split('::') ?? [];
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail (::1.2.3.4) takes two groups; it lies beyond the /64 either way.
  const rightGroups = right.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const groups = ip.includes('::') ? [...left, ...Array<string>(IPV6_GROUPS - left.length - rightGroups).fill('0'), ...right] : left;
  return `${groups.slice(0, IPV6_PREFIX_GROUPS).map((g) => Number.parseInt(g, 16).toString(16)).join(':')}::/64`;
}

export class RateLimiter {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly limits: RateLimits;
  private readonly nonceTtlS: number;

  constructor(redis: Redis, prefix: string, limits: RateLimits, nonceTtlS: number) {
    if (limits.merchantBurst < 1 || limits.ipBurst < 1) throw new Error('assertion: a bucket holds at least one token');
    this.redis = redis;
    this.prefix = prefix;
    this.limits = limits;
    this.nonceTtlS = nonceTtlS;
    registerScripts(redis);
  }

  private script(name: 'rateLimit' | 'rateLimitNonce'): Script {
    const fn = (this.redis as unknown as Record<string, Script>)[`${name}:${SCRIPTS_VERSION}`];
    if (!fn) throw new Error(`assertion: script ${name} not registered`);
    return fn.bind(this.redis);
  }

  /**
   * ms to wait before this address may send again; 0 = go on (a token was taken). `ip` is fastify's
   * req.ip, which behind a trusted proxy is whatever X-Forwarded-For said: what is not an address
   * falls back to the peer's (the proxy's) address.
   */
  async ip(ip: string, peer: string | undefined): Promise<number> {
    if (this.limits.ipPerS === 0) return 0;
    const address = isIP(ip) ? ip : peer !== undefined && isIP(peer) ? peer : UNKNOWN_ADDRESS;
    return this.script('rateLimit')(clientKeys(this.prefix, clientAddress(address)).rateLimit, this.limits.ipPerS, this.limits.ipBurst);
  }

  /** The merchant bucket and nonce settings, for scripts that admit a request with more work (admitClaim-3). */
  get admissionArgs(): { ratePerS: number; burst: number; nonceTtlS: number } {
    return { ratePerS: this.limits.merchantPerS, burst: this.limits.merchantBurst, nonceTtlS: this.nonceTtlS };
  }

  /** Records the nonce and takes a token of the merchant's bucket, both or neither. */
  async merchant(merchantId: string, nonce: string): Promise<MerchantAdmission> {
    const keys = merchantKeys(this.prefix, merchantId);
    const r = await this.script('rateLimitNonce')(keys.rateLimit, keys.nonce(nonce), this.limits.merchantPerS, this.limits.merchantBurst, this.nonceTtlS);
    if (r === -1) return { kind: 'nonce_reused' };
    if (r === 0) return { kind: 'ok' };
    if (r > 0) return { kind: 'limited', retryAfterMs: r };
    throw new Error(`assertion: unexpected rateLimitNonce result ${r}`);
  }
}

/** Retry-After is whole seconds (RFC 9110); never 0, which would invite an immediate retry. */
export const retryAfterS = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));
