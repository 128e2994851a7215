// When a failed webhook delivery is tried again. Pure: the deliverer passes the attempt number
// (JetStream's delivery count of the job) and the clock.

/**
 * Delay before attempt n+1 after attempt n failed (index n-1). 10 delays = 11 attempts spread over
 * 23 h 21 min, inside the 24 h window of API.md ("retry with backoff for 24 hours, at least 8
 * attempts"). PEAKPAY_WEBHOOK_RETRY_SCHEDULE_MS replaces it (tests use a few hundred ms).
 */
export const WEBHOOK_RETRY_SCHEDULE_MS: readonly number[] = [
  10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000, 28_800_000,
];

/** No attempt is made later than this after the job was queued (or resent by an operator). */
export const WEBHOOK_RETRY_WINDOW_MS = 86_400_000;

/** A schedule longer than this is refused by the configuration: every retry loop is bounded. */
export const WEBHOOK_RETRY_STEPS_MAX = 100;

/** The longest single delay a schedule may hold (JetStream keeps the waiting job meanwhile). */
export const WEBHOOK_RETRY_DELAY_MS_MAX = WEBHOOK_RETRY_WINDOW_MS;

/**
 * After attempt `attempt` (1-based) failed at `nowMs`: the delay before the next attempt, or null
 * when the delivery is to be parked (schedule used up, or the window is over). The last delay is
 * shortened so that the final attempt still falls inside the window.
 */
export function nextRetryDelayMs(
  schedule: readonly number[],
  attempt: number,
  queuedAtMs: number,
  nowMs: number,
  windowMs: number = WEBHOOK_RETRY_WINDOW_MS,
): number | null {
  if (!Number.isInteger(attempt) || attempt < 1) throw new Error(`assertion: attempt must be a positive integer, got ${attempt}`);
  const delay = schedule[attempt - 1];
  if (delay === undefined) return null;
  const leftMs = queuedAtMs + windowMs - nowMs;
  if (leftMs <= 0) return null;
  return Math.min(delay, leftMs);
}

/** How many attempts a schedule makes at most (the first one plus one per delay). */
export const attemptsOf = (schedule: readonly number[]) => schedule.length + 1;

/** "100,200,300" → [100, 200, 300]; null when the text is not such a list. */
export function parseSchedule(text: string): number[] | null {
  if (!/^\d{1,9}(,\d{1,9})*$/.test(text)) return null;
  const delays = text.split(',').map(Number);
  if (delays.length > WEBHOOK_RETRY_STEPS_MAX || delays.some((d) => d < 1 || d > WEBHOOK_RETRY_DELAY_MS_MAX)) return null;
  return delays;
}
