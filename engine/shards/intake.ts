// The engine yields to a saturated ingress: front-door priority on a shared machine.
//
// Where the ingress and the engine share cores (`npm start`, one small server, the benchmark), a
// midnight spike is lost at the front door, not in the queue: the engine decides ~1,450 payments a
// second while the ingress, starved of CPU by the engine and by the Redis, NATS and Postgres work
// the engine's decisions cause, answers too slowly, and storefronts' requests pile up in the
// kernel's accept queue (docs/BENCHMARKS.md, session 18). JetStream has room for the excess, and
// the ingress answers 202 `processing` as soon as JetStream holds a command when the engine lags
// (engine/client). So while an ingress is saturated, the engine takes fewer commands a second and
// leaves the cores to the front door; once the spike has passed, it takes all it can again and
// works the queue off.
//
// The signal: each ingress publishes its event-loop utilisation (ELU: the share of wall time its
// loop was busy) every LOAD_REPORT_EVERY_MS on a core NATS subject (IngressLoad below), with the
// connections waiting in its accept queue and those the kernel turned away meanwhile (accept queue
// full), where the ingress can read them. ELU near 1 for several reports in a row means requests are
// waiting for the ingress itself (a busy machine under a closed loop keeps its ingress at 0.4-0.9:
// measured); connections piling up in the accept queue mean the front door is falling behind its
// arrivals, which a spike does and a steady load the machine can carry does not.
//
// The control: a token bucket on the commands the shard runners of this process take from
// JetStream, ticked every TICK_MS:
// - an ingress saturated (its last HOT_REPORTS_MIN reports at or above yieldElu, and falling behind
//   within BEHIND_RECENT_MS: ACCEPT_QUEUE_BEHIND_MIN connections waiting or any turned away; or it
//   cannot tell): the limit falls
//   by a quarter per tick, starting from what the engine took in the last tick, down to floorPerS;
// - every ingress at or below releaseElu: the limit grows by a quarter per tick, and is lifted once
//   back at the most the engine took in half a second before it was limited;
// - in between: held (hysteresis; no flapping at the threshold);
// - limited YIELD_MS_MAX in a row: lifted, and not limited again for YIELD_COOLDOWN_MS. A spike is
//   short; an overload that lasts is not a spike, and yielding through it would only grow the
//   backlog (and the polls of its 202s, which keep the ingress saturated: BENCHMARKS session 18).
// Only the pulls are limited: a command already taken runs at once, leases and timers are never
// starved (the failure of niceness 19, BENCHMARKS session 14).
import { z } from 'zod';

/** How often an ingress reports its load, and the window its ELU covers. */
export const LOAD_REPORT_EVERY_MS = 100;
/** The governor's control period. */
export const TICK_MS = 100;
/** An ingress counts as saturated after this many consecutive reports at or above yieldElu. */
export const HOT_REPORTS_MIN = 2;
/**
 * An ingress whose accept queue held this many connections is falling behind its arrivals. A server
 * that keeps up accepts every turn of its event loop; in the benchmark's 10× spike the queue held
 * 17, 134, 1,585 and 3,641 in its first four seconds, then stayed full (4,096) with connections
 * turned away (docs/BENCHMARKS.md, session 19).
 */
export const ACCEPT_QUEUE_BEHIND_MIN = 128;
/** An ingress that fell behind this recently still counts as behind. */
export const BEHIND_RECENT_MS = 2_000;
/** A report older than this is forgotten (its ingress stopped, or reports no more). */
export const REPORT_STALE_MS = 1_000;
/** Reports of at most this many ingresses are kept (a deployment runs a handful). */
export const INGRESSES_MAX = 256;
/** Hysteresis: the limit grows only while every ingress is this far below yieldElu. */
export const RELEASE_ELU_MARGIN = 0.1;
/** The longest the engine stays limited in a row, and how long it then takes all it can. */
export const YIELD_MS_MAX = 20_000;
export const YIELD_COOLDOWN_MS = 30_000;
/** How many unlimited ticks the peak (where a limit is lifted) is taken over (10 s). */
export const PEAK_WINDOW_TICKS = 100;
/** The peak is of the average over this many consecutive ticks (500 ms). */
export const PEAK_SMOOTHING_TICKS = 5;
export const DECREASE_FACTOR = 0.75;
export const INCREASE_FACTOR = 1.25;
/** A limited runner waits at least this long, at most a tick, for its next token. */
const WAIT_MS_MIN = 5;

/** The wire message on Names.ingressLoad: snake_case, as it travels. */
export const ingressLoadSchema = z.object({
  v: z.literal(1),
  ingress_id: z.string().min(1).max(128),
  /** Event-loop utilisation over the last window_ms, 0-1. */
  elu: z.number().min(0).max(1),
  window_ms: z.number().int().positive().max(60_000),
  /** Connections the kernel turned away in the window (accept queue full); absent where unknown. */
  listen_overflows: z.number().int().min(0).optional(),
  /** Connections waiting in the ingress's accept queue at the end of the window; absent where unknown. */
  accept_queue: z.number().int().min(0).optional(),
});
export type IngressLoad = z.infer<typeof ingressLoadSchema>;

export type IntakeSettings = {
  /** An ingress at or above this ELU (0-1, exclusive of 0) is saturated. */
  yieldElu: number;
  /** The least commands a second the engine process takes while limited, whatever its peak. */
  floorPerS: number;
};

export type IntakeState = { limited: boolean; limitPerS: number };

/** behindAtMs: when the ingress last reported itself falling behind its connections; null: it cannot tell. */
type Seen = { elu: number; atMs: number; hot: number; behindAtMs: number | null };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class IntakeGovernor {
  private readonly yieldElu: number;
  private readonly releaseElu: number;
  private readonly floorPerS: number;
  private readonly now: () => number;
  private readonly seen = new Map<string, Seen>();
  /** null: not limited. */
  private limitPerS: number | null = null;
  private tokens = 0;
  private tokensAtMs: number;
  private takenInTick = 0;
  private tickAtMs: number;
  /** Commands a second taken in each of the last PEAK_WINDOW_TICKS unlimited ticks (a ring). */
  private readonly recentPerS: number[] = [];
  private recentNext = 0;
  /** While limited: the most taken per second before (where the limit is lifted). */
  private peakPerS = 0;
  private limitedSinceMs = 0;
  private cooldownUntilMs = 0;

  constructor(settings: IntakeSettings, now: () => number = Date.now) {
    if (!(settings.yieldElu > 0 && settings.yieldElu <= 1)) throw new Error('assertion: yieldElu in (0, 1]');
    if (!(Number.isInteger(settings.floorPerS) && settings.floorPerS >= 1)) throw new Error('assertion: floorPerS is a positive integer');
    this.yieldElu = settings.yieldElu;
    this.releaseElu = Math.max(0, settings.yieldElu - RELEASE_ELU_MARGIN);
    this.floorPerS = settings.floorPerS;
    this.now = now;
    this.tokensAtMs = now();
    this.tickAtMs = this.tokensAtMs;
  }

  /** A load report of an ingress (already validated). */
  observe(report: IngressLoad): void {
    const prev = this.seen.get(report.ingress_id);
    if (!prev && this.seen.size >= INGRESSES_MAX) return; // bounded; a real deployment never gets here
    const nowMs = this.now();
    const hot = report.elu >= this.yieldElu ? (prev?.hot ?? 0) + 1 : 0;
    const knows = report.listen_overflows !== undefined || report.accept_queue !== undefined;
    const behind = (report.listen_overflows ?? 0) > 0 || (report.accept_queue ?? 0) >= ACCEPT_QUEUE_BEHIND_MIN;
    const behindAtMs = !knows ? null : behind ? nowMs : (prev?.behindAtMs ?? Number.NEGATIVE_INFINITY);
    this.seen.set(report.ingress_id, { elu: report.elu, atMs: nowMs, hot, behindAtMs });
  }

  /** One control step; call every TICK_MS. */
  tick(): IntakeState {
    const nowMs = this.now();
    let saturated = false;
    let relaxed = true;
    for (const [id, s] of this.seen) {
      if (nowMs - s.atMs > REPORT_STALE_MS) {
        this.seen.delete(id);
        continue;
      }
      // Busy is not enough: at a steady load near the machine's capacity the ingress is busy too,
      // and yielding then only turns decisions into 202s (BENCHMARKS session 18). Falling behind its
      // connections is what a spike does, seconds before the kernel turns them away.
      const behind = s.behindAtMs === null || nowMs - s.behindAtMs <= BEHIND_RECENT_MS;
      if (s.hot >= HOT_REPORTS_MIN && behind) saturated = true;
      if (s.elu > this.releaseElu) relaxed = false;
    }
    const takenPerS = (this.takenInTick * 1000) / Math.max(1, nowMs - this.tickAtMs);
    this.takenInTick = 0;
    this.tickAtMs = nowMs;
    if (this.limitPerS === null) {
      this.recentPerS[this.recentNext] = takenPerS;
      this.recentNext = (this.recentNext + 1) % PEAK_WINDOW_TICKS;
    }
    if (this.limitPerS !== null && nowMs - this.limitedSinceMs >= YIELD_MS_MAX) {
      this.limitPerS = null;
      this.cooldownUntilMs = nowMs + YIELD_COOLDOWN_MS;
    } else if (saturated && nowMs >= this.cooldownUntilMs) {
      if (this.limitPerS === null) {
        this.peakPerS = Math.max(this.floorPerS, this.recentPeakPerS());
        this.limitedSinceMs = nowMs;
      }
      const from = this.limitPerS ?? Math.max(takenPerS, this.floorPerS);
      this.setLimit(Math.max(this.floorPerS, Math.floor(from * DECREASE_FACTOR)), nowMs);
    } else if (relaxed && this.limitPerS !== null) {
      const grown = Math.ceil(this.limitPerS * INCREASE_FACTOR);
      if (grown >= this.peakPerS) this.limitPerS = null;
      else this.setLimit(grown, nowMs);
    }
    return this.state;
  }

  /** The most taken a second over PEAK_SMOOTHING_TICKS consecutive ticks of the ring: one big batch is not a rate. */
  private recentPeakPerS(): number {
    const n = this.recentPerS.length;
    const ordered = n < PEAK_WINDOW_TICKS ? this.recentPerS : [...this.recentPerS.slice(this.recentNext), ...this.recentPerS.slice(0, this.recentNext)];
    const w = Math.min(PEAK_SMOOTHING_TICKS, n);
    let sum = 0;
    let peak = 0;
    for (let i = 0; i < n; i++) {
      sum += ordered[i] as number;
      if (i >= w) sum -= ordered[i - w] as number;
      if (i >= w - 1) peak = Math.max(peak, sum / w);
    }
    return peak;
  }

  get state(): IntakeState {
    return { limited: this.limitPerS !== null, limitPerS: this.limitPerS ?? 0 };
  }

  /**
   * How many messages a runner may pull now, at most `max`: all of them while not limited, else
   * what the bucket holds (reserved, so runners asking together do not each get the same tokens),
   * 0 when it holds less than one.
   */
  tryTake(max: number): number {
    if (!(Number.isInteger(max) && max >= 1)) throw new Error('assertion: take a positive whole number');
    if (this.limitPerS === null) return max;
    this.refill(this.now());
    if (this.tokens < 1) return 0;
    const n = Math.min(max, Math.floor(this.tokens));
    this.tokens -= n;
    return n;
  }

  /** tryTake, waiting for a token while limited; 0 once `cancelled` says so (the runner stops). */
  async take(max: number, cancelled: () => boolean = () => false): Promise<number> {
    for (;;) {
      if (cancelled()) return 0;
      const n = this.tryTake(max);
      if (n > 0) return n;
      const waitMs = this.limitPerS === null ? 0 : ((1 - this.tokens) * 1000) / this.limitPerS;
      await sleep(Math.min(TICK_MS, Math.max(WAIT_MS_MIN, waitMs)));
    }
  }

  /**
   * A message of `commands` commands was taken. Its first command was paid for by take(); the rest
   * (an ingress batch) are paid now, so the bucket may go below zero and the next takes wait longer.
   */
  received(commands: number): void {
    this.takenInTick += commands;
    if (this.limitPerS !== null && commands > 1) this.tokens -= commands - 1;
  }

  private refill(nowMs: number): void {
    if (this.limitPerS === null) return;
    // At most one tick's worth banked: a limit is a rate, not an allowance saved up while idle.
    const cap = Math.max(1, (this.limitPerS * TICK_MS) / 1000);
    this.tokens = Math.min(cap, this.tokens + ((nowMs - this.tokensAtMs) * this.limitPerS) / 1000);
    this.tokensAtMs = nowMs;
  }

  private setLimit(perS: number, nowMs: number): void {
    this.refill(nowMs);
    this.limitPerS = perS;
    this.tokensAtMs = nowMs;
  }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** JSON: ten tiny messages a second per ingress, read by people with `nats sub` too. */
export const encodeIngressLoad = (report: IngressLoad): Uint8Array => textEncoder.encode(JSON.stringify(report));

/** null when the bytes are not a load report (a stranger on the subject, or another version). */
export function decodeIngressLoad(data: Uint8Array): IngressLoad | null {
  let json: unknown;
  try {
    json = JSON.parse(textDecoder.decode(data));
  } catch {
    return null;
  }
  const parsed = ingressLoadSchema.safeParse(json);
  return parsed.success ? parsed.data : null;
}
