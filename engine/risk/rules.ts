// Risk rules (MISSION §3.4, "prevention before the fact"): reason codes, defaults, limits and the
// Asia/Shanghai clock they run on. The decisions themselves are taken inside paymentCreate's Lua
// call (engine/redis/lua/includes/risk.lua), atomically with the hold they guard; this module holds
// what TypeScript needs to name, validate, display and key them. See docs/RISK.md.
import { isIP } from 'node:net';

/** Refusals, in evaluation order. Each becomes `failure.code` of a payment in status failed. */
export const RISK_REFUSAL_REASONS = [
  'risk.blacklisted',
  'risk.device_multi_account',
  'risk.velocity_exceeded',
  'risk.daily_cap_exceeded',
] as const;
export type RiskRefusalReason = (typeof RISK_REFUSAL_REASONS)[number];

/** Challenges: the payment is held and answered requires_action with next_action {type: verify}. */
export const RISK_CHALLENGE_REASONS = ['risk.unusual_hours'] as const;
export type RiskChallengeReason = (typeof RISK_CHALLENGE_REASONS)[number];

export const isRiskRefusalReason = (s: string): s is RiskRefusalReason => (RISK_REFUSAL_REASONS as readonly string[]).includes(s);

/** The defaults the Lua script applies when a merchant configured nothing (kept equal to risk.lua; a test checks). */
export const RISK_DEFAULTS = {
  daily_caps: { CNY: 500_000 } as Record<string, number>,
  velocity: { max: 20, window_s: 60 },
  device_accounts_max: 3,
  unusual_hours: [] as { from: string; to: string }[],
} as const;

// Limits on what a merchant may configure (TIGER_STYLE: a limit on everything). The velocity log
// of a user holds at most velocityMax entries, a device's day set at most deviceAccountsMax + 1.
export const VELOCITY_MAX_MAX = 1_000;
export const VELOCITY_WINDOW_S_MAX = 86_400;
export const DEVICE_ACCOUNTS_MAX_MAX = 100;
export const UNUSUAL_WINDOWS_MAX = 8;
export const BLACKLIST_ENTRIES_MAX = 100_000;

/** Asia/Shanghai is UTC+8 all year (no DST): the risk day ends at local midnight = 16:00 UTC. */
export const SHANGHAI_OFFSET_MS = 8 * 3_600_000;
export const DAY_MS = 86_400_000;
/** Day counters (cap, device) live two days: long enough for the give-back of a same-day cancel. */
export const RISK_COUNTER_TTL_S = 2 * 86_400;

/** Asia/Shanghai day number: floor((nowMs + 8 h) / 1 day). Same arithmetic as localDay() in risk.lua. */
export function shanghaiDay(nowMs: number): number {
  return Math.floor((nowMs + SHANGHAI_OFFSET_MS) / DAY_MS);
}

/** Minute of the Asia/Shanghai day, 0..1439. */
export function shanghaiMinuteOfDay(nowMs: number): number {
  const local = (nowMs + SHANGHAI_OFFSET_MS) % DAY_MS;
  return Math.floor((local < 0 ? local + DAY_MS : local) / 60_000);
}

/**
 * Buyer ids are free text (user_id up to 64, device_id up to 128 characters); inside a Redis key
 * they are written as-is when they are safe ids, else as `~` + hex of their UTF-8 (`~` is not a
 * safe-id character, so the mapping is one-to-one and never lets ':' or '{' into a key).
 */
export function keyPart(id: string): string {
  return /^[A-Za-z0-9_-]{1,128}$/.test(id) ? id : `~${Buffer.from(id, 'utf8').toString('hex')}`;
}

/** One spelling per address, so `2001:DB8::1` and `2001:db8:0::1` are the same blacklist entry. */
export function canonicalIp(ip: string): string {
  const family = isIP(ip);
  if (family === 4) return ip;
  if (family === 6) return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  throw new Error(`assertion: not an IP address: ${JSON.stringify(ip)}`);
}

export type BlacklistKind = 'user' | 'device' | 'ip';

/** The member of the merchant's blacklist set: `user:u_9`, `device:d_77`, `ip:203.0.113.9`. */
export function blacklistEntry(kind: BlacklistKind, value: string): string {
  return `${kind}:${kind === 'ip' ? canonicalIp(value) : value}`;
}
