// When a call is tried again, and after how long. Pure, so it is unit-tested without a server.
// Retrying is safe because a POST carries the same Idempotency-Key on every attempt (the server
// runs it at most once and replays the first answer) and a GET changes nothing.

export type RetryPolicy = {
  /** Attempts per call, the first included. */
  attemptsMax: number;
  /** Delay before the 2nd attempt; doubles each time, then jitter. */
  backoffBaseMs: number;
  /** No backoff delay grows beyond this. */
  backoffMaxMs: number;
  /** A Retry-After longer than this ends the call with the error instead of waiting. */
  retryAfterMsMax: number;
};

export const RETRY_POLICY_DEFAULT: RetryPolicy = {
  attemptsMax: 4,
  backoffBaseMs: 200,
  backoffMaxMs: 5_000,
  retryAfterMsMax: 30_000,
};

/** Gateway errors and the engine being unreachable (503 engine.unavailable, nothing done). */
const RETRYABLE_STATUSES = new Set([502, 503, 504]);

export type Outcome =
  | { kind: 'network' }
  | { kind: 'timeout' }
  | { kind: 'http'; status: number; code: string | null; retryAfter: string | null };

export type Decision = { retry: false } | { retry: true; delayMs: number };

/** Exponential backoff with "equal jitter": half the delay is fixed, half random, so clients spread out but never retry at once. */
export function backoffMs(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Retry-After as delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfterMs(value: string | null, nowMs: number = Date.now()): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

export function isRetryable(outcome: Outcome): boolean {
  if (outcome.kind !== 'http') return true;
  if (outcome.status === 429 || RETRYABLE_STATUSES.has(outcome.status)) return true;
  // The first request with this key is still running: ask again later, with the same key.
  return outcome.status === 409 && outcome.code === 'idempotency.in_progress';
}

/** `attempt` is the number of the attempt that just failed (1 = the first). */
export function decide(outcome: Outcome, attempt: number, policy: RetryPolicy, random: () => number = Math.random, nowMs: number = Date.now()): Decision {
  if (attempt >= policy.attemptsMax || !isRetryable(outcome)) return { retry: false };
  const backoff = backoffMs(attempt, policy, random);
  if (outcome.kind !== 'http') return { retry: true, delayMs: backoff };
  const retryAfterMs = parseRetryAfterMs(outcome.retryAfter, nowMs);
  if (retryAfterMs === null) return { retry: true, delayMs: backoff };
  if (retryAfterMs > policy.retryAfterMsMax) return { retry: false };
  return { retry: true, delayMs: retryAfterMs };
}
