// The Node load generator: undici connection pools driving an iteration function either
//   closed — `connections` workers, each sending its next iteration as soon as the last is done
//            (saturation: the server's own pace), started over CLOSED_RAMP_MS, or
//   open   — iterations started on a schedule (k6's ramping-arrival-rate: the rate ramps linearly
//            between stages), whatever the server's pace; at most `inFlightMax` at once, beyond
//            that an arrival is dropped and counted (k6's dropped_iterations).
// Every response is read (payment ids, statuses); latency is from send to the last body byte.
import { Client } from 'undici';
import { arrivalsBy, totalS, type Stage } from '../k6/lib/shapes.ts';

export type HttpRequest = { method: 'GET' | 'POST'; path: string; body?: string; headers: Record<string, string>; tag: string };
/** retryAfterS: the answer's Retry-After in whole seconds, when it had one. */
export type HttpResponse = { status: number; body: string; ms: number; retryAfterS?: number };
export type Send = (req: HttpRequest) => Promise<HttpResponse>;
/** One iteration (a payment: one or more requests); resolves true when it was acknowledged. */
export type Iteration = (send: Send) => Promise<boolean>;

export type Load =
  | { kind: 'closed'; connections: number; durationS: number }
  | { kind: 'open'; startRate: number; stages: Stage[]; inFlightMax: number };

export const REQUEST_TIMEOUT_MS = 30_000;
/** The open-loop scheduler wakes this often; arrivals due in between start together. */
const TICK_MS = 2;
const ERROR_SAMPLES_MAX = 5;
/**
 * A closed load's workers start spread over this long, each opening its connection then. All at
 * once, 256 new connections land in the ingress's accept queue in one burst, which is what a spike
 * looks like to its front door: it answered 202 for 2 s and the engine yielded ~3 s of a 20-s
 * uniform run (docs/BENCHMARKS.md, session 20). Counted in the run's time: it costs the figure
 * ~1% (half the load for half a second), never flatters it.
 */
export const CLOSED_RAMP_MS = 500;

export type LatencySummary = { count: number; p50: number; p90: number; p99: number; max: number };
export type SecondSample = { t: number; started: number; acknowledged: number; failed: number; p99: number };

export type RunResult = {
  seconds: number;
  iterations: number;
  acknowledged: number;
  dropped: number;
  requests: number;
  /** Responses ≥ 400 and requests with no response (connection error, timeout). */
  errors: number;
  statuses: Record<string, number>;
  errorSamples: string[];
  /** Of requests sent from `measureFromS` on (all of them without it). */
  latency: Record<string, LatencySummary>;
  /** Of requests sent before `measureFromS` (the ramp up to the rate): null without one. */
  warmupLatency: LatencySummary | null;
  perSecond: SecondSample[];
};

/** Latencies in ms, kept whole (a few hundred thousand numbers): exact percentiles. */
export class LatencyLog {
  private values = new Float64Array(1024);
  private n = 0;
  push(ms: number): void {
    if (this.n === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = ms;
  }
  get count(): number {
    return this.n;
  }
  summary(): LatencySummary {
    const sorted = this.values.slice(0, this.n).sort();
    const at = (q: number) => (this.n === 0 ? 0 : round1(sorted[Math.min(this.n - 1, Math.floor(q * this.n))] as number));
    return { count: this.n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
  }
}

/**
 * Connections as k6 has them, one per virtual user: a request takes an idle connection (the most
 * recently used: LIFO keeps the set small) or opens one, and gives it back when answered. undici's
 * Pool looks for an idle client by scanning all of them, which at 2,000 open connections (an open
 * load the server falls behind) made the generator's own cost per request double and take the CPU
 * from the servers it measures (docs/BENCHMARKS.md). At most `max` at once: the callers bound their
 * requests in flight (workers of a closed load, inFlightMax of an open one).
 */
class Connections {
  private readonly idle: Client[] = [];
  private readonly all: Client[] = [];
  private readonly url: string;
  private readonly max: number;
  private readonly options: Client.Options;

  constructor(url: string, max: number, options: Client.Options) {
    this.url = url;
    this.max = max;
    this.options = options;
  }

  acquire(): Client {
    const idle = this.idle.pop();
    if (idle) return idle;
    if (this.all.length >= this.max) throw new Error('assertion: more requests in flight than connections');
    const client = new Client(this.url, this.options);
    this.all.push(client);
    return client;
  }

  release(client: Client): void {
    this.idle.push(client);
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((c) => c.close()));
  }
}

/**
 * One request through undici's dispatch() with a handler that keeps the body's bytes: what
 * request() does, without a Readable stream per response (the generator's own CPU is taken from
 * the servers it measures: 36 → 28 µs a request against the ceiling, docs/BENCHMARKS.md).
 */
function exchange(connections: Connections, req: HttpRequest): Promise<{ statusCode: number; body: string; retryAfterS?: number }> {
  const client = connections.acquire();
  return new Promise((resolve, reject) => {
    let statusCode = 0;
    let retryAfterS: number | undefined;
    const chunks: Buffer[] = [];
    const done = (err: Error | null) => {
      connections.release(client);
      if (err) reject(err);
      else {
        const body = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8');
        resolve(retryAfterS === undefined ? { statusCode, body } : { statusCode, body, retryAfterS });
      }
    };
    client.dispatch({ method: req.method, path: req.path, body: req.body ?? null, headers: req.headers }, {
      onRequestStart() {},
      onResponseStart(_controller, status, headers) {
        statusCode = status;
        const ra = headers['retry-after'];
        if (typeof ra === 'string' && /^\d{1,6}$/.test(ra)) retryAfterS = Number(ra);
      },
      onResponseData(_controller, chunk) {
        chunks.push(chunk);
      },
      onResponseEnd() {
        done(null);
      },
      onResponseError(_controller, err) {
        done(err);
      },
    });
  });
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * measureFromS: latencies of requests sent before this second of the run go to `warmupLatency`,
 * not to `latency` (a fixed rate is measured once it is reached, after a ramp that opens the
 * connections, as k6's ramping-arrival-rate would). Errors, statuses and drops count whenever.
 */
export async function runLoad(baseUrl: string, load: Load, iteration: Iteration, opts: { timeoutMs?: number; measureFromS?: number } = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const measureFromMs = (opts.measureFromS ?? 0) * 1000;
  const warmLog = new LatencyLog();
  const pool = new Connections(baseUrl, load.kind === 'closed' ? load.connections : load.inFlightMax, {
    pipelining: 1,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connectTimeout: timeoutMs,
  });
  const logs = new Map<string, LatencyLog>();
  const statuses: Record<string, number> = {};
  const errorSamples: string[] = [];
  const seconds: { started: number; acknowledged: number; failed: number; log: LatencyLog }[] = [];
  let requests = 0;
  let errors = 0;
  const t0 = performance.now();
  const second = () => {
    const i = Math.floor((performance.now() - t0) / 1000);
    while (seconds.length <= i) seconds.push({ started: 0, acknowledged: 0, failed: 0, log: new LatencyLog() });
    return seconds[i] as (typeof seconds)[number];
  };

  const send: Send = async (req) => {
    requests++;
    const start = performance.now();
    try {
      const res = await exchange(pool, req);
      const body = res.body;
      const ms = performance.now() - start;
      if (start - t0 < measureFromMs) {
        warmLog.push(ms);
      } else {
        let log = logs.get(req.tag);
        if (!log) logs.set(req.tag, (log = new LatencyLog()));
        log.push(ms);
      }
      second().log.push(ms);
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (res.statusCode >= 400) {
        errors++;
        if (errorSamples.length < ERROR_SAMPLES_MAX) errorSamples.push(`${req.tag} ${res.statusCode} ${body.slice(0, 200)}`);
      }
      return res.retryAfterS === undefined ? { status: res.statusCode, body, ms } : { status: res.statusCode, body, ms, retryAfterS: res.retryAfterS };
    } catch (err) {
      errors++;
      const code = (err as { code?: string }).code ?? (err as Error).name;
      statuses[code] = (statuses[code] ?? 0) + 1;
      if (errorSamples.length < ERROR_SAMPLES_MAX) errorSamples.push(`${req.tag} ${code} ${(err as Error).message}`);
      return { status: 0, body: '', ms: performance.now() - start };
    }
  };

  let iterations = 0;
  let acknowledged = 0;
  let dropped = 0;
  const runOne = async () => {
    iterations++;
    second().started++;
    const ok = await iteration(send).catch(() => false);
    if (ok) {
      acknowledged++;
      second().acknowledged++;
    } else {
      second().failed++;
    }
  };

  if (load.kind === 'closed') {
    const endMs = t0 + load.durationS * 1000;
    await Promise.all(Array.from({ length: load.connections }, async (_, i) => {
      await sleep((i * CLOSED_RAMP_MS) / load.connections);
      while (performance.now() < endMs) await runOne();
    }));
  } else {
    const endS = totalS(load.stages);
    const inFlight = new Set<Promise<void>>();
    let launched = 0;
    for (;;) {
      const tS = (performance.now() - t0) / 1000;
      if (tS >= endS) break;
      const due = Math.floor(arrivalsBy(load.stages, load.startRate, tS));
      for (; launched < due; launched++) {
        if (inFlight.size >= load.inFlightMax) {
          dropped++;
          continue;
        }
        const p: Promise<void> = runOne().finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await sleep(TICK_MS);
    }
    await Promise.all(inFlight);
  }
  const elapsedS = (performance.now() - t0) / 1000;
  await pool.close();
  return {
    seconds: Math.round(elapsedS * 100) / 100,
    iterations,
    acknowledged,
    dropped,
    requests,
    errors,
    statuses,
    errorSamples,
    latency: Object.fromEntries([...logs].map(([tag, log]) => [tag, log.summary()])),
    warmupLatency: measureFromMs > 0 ? warmLog.summary() : null,
    perSecond: seconds.map((s, t) => ({ t, started: s.started, acknowledged: s.acknowledged, failed: s.failed, p99: s.log.summary().p99 })),
  };
}
