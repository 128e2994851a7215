// PeakpayClient: signed calls to the peakpay API (API.md) with safe retries. Runs on Node ≥ 20
// with nothing but node:crypto and the global fetch, so a storefront can copy ingress/sdk/ as is.
//
// One logical call = one Idempotency-Key (generated here unless the caller passes its own) and
// one raw body, reused on every attempt; each attempt gets a fresh nonce and timestamp, because the
// server refuses a nonce it has seen. Retried: network errors, attempt timeouts, 409
// idempotency.in_progress, 429 (after Retry-After) and 502/503/504. Never retried: other 4xx.
import { randomUUID } from 'node:crypto';
import { CLIENT_ERROR_CODES, errorFromResponse, isPeakpayApiError, PeakpayApiError } from './errors.ts';
import { decide, RETRY_POLICY_DEFAULT, type Outcome, type RetryPolicy } from './retry.ts';
import { authorizationHeader, newNonce } from './signing.ts';
import type {
  Account, CapturePaymentParams, CreateAccountParams, CreatePaymentParams, CreateRefundParams, CreateTopupParams, Payment, PaymentStatus, Refund,
} from './types.ts';

export const SDK_VERSION = '0.1.0';
/** One attempt (request and whole response body) may take this long before it is abandoned and retried. */
export const ATTEMPT_TIMEOUT_MS_DEFAULT = 10_000;
/** waitForPayment gives up after this long unless told otherwise. */
export const WAIT_TIMEOUT_MS_DEFAULT = 30_000;
/** waitForPayment polls first after POLL_INTERVAL_MS_MIN, then 1.5× slower each time up to POLL_INTERVAL_MS_MAX. */
export const POLL_INTERVAL_MS_MIN = 250;
export const POLL_INTERVAL_MS_MAX = 2_000;

type FetchFn = (input: string, init: RequestInit) => Promise<Response>;

export type PeakpayClientOptions = {
  /** e.g. `https://api.peakpay.example` or `http://127.0.0.1:8080`. */
  baseUrl: string;
  merchantId: string;
  /** The merchant's API secret; never sent, only used to sign. */
  secret: string;
  /** Per attempt, covering the response body too. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** A fetch to use instead of the global one (a proxy agent, or a test double). */
  fetch?: FetchFn;
  userAgent?: string;
};

export type CallOptions = {
  /** For POSTs: reuse a key you stored, e.g. to resume a call after your process restarted. */
  idempotencyKey?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
};

export type RequestOptions = CallOptions & {
  /** Serialised once with JSON.stringify; a POST without a body sends `{}`. */
  body?: unknown;
  query?: Record<string, string | number | undefined>;
};

export type PeakpayResponse<T> = {
  status: number;
  body: T;
  headers: Headers;
  requestId: string | null;
  /** The server replayed the stored answer of an earlier attempt with the same Idempotency-Key. */
  replayed: boolean;
  attempts: number;
  idempotencyKey: string | null;
};

export type WaitOptions = {
  /** Resolve when the payment reaches one of these; default: any status but `processing`. */
  until?: readonly PaymentStatus[];
  timeoutMs?: number;
  signal?: AbortSignal;
};

const seg = (s: string) => encodeURIComponent(s);

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError(signal.reason, 0));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(signal?.reason, 0));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortedError(cause: unknown, attempts: number): PeakpayApiError {
  return new PeakpayApiError('the call was aborted by the caller', { status: 0, code: CLIENT_ERROR_CODES.aborted, attempts, cause });
}

export class PeakpayClient {
  private readonly base: URL;
  private readonly merchantId: string;
  private readonly secret: string;
  private readonly timeoutMs: number;
  private readonly policy: RetryPolicy;
  private readonly fetchFn: FetchFn;
  private readonly userAgent: string;

  readonly payments: {
    create: (params: CreatePaymentParams, opts?: CallOptions) => Promise<Payment>;
    get: (id: string, opts?: CallOptions) => Promise<Payment>;
    getByOutTradeNo: (outTradeNo: string, opts?: CallOptions) => Promise<Payment>;
    capture: (id: string, params?: CapturePaymentParams, opts?: CallOptions) => Promise<Payment>;
    cancel: (id: string, opts?: CallOptions) => Promise<Payment>;
    verify: (id: string, opts?: CallOptions) => Promise<Payment>;
  };
  readonly refunds: {
    create: (paymentId: string, params: CreateRefundParams, opts?: CallOptions) => Promise<Refund>;
    get: (id: string, opts?: CallOptions) => Promise<Refund>;
  };
  readonly accounts: {
    create: (params: CreateAccountParams, opts?: CallOptions) => Promise<Account>;
    get: (accountId: string, opts?: CallOptions) => Promise<Account>;
  };
  /** Top-ups are channel payments: the answer is the Payment (usually `requires_action` with a QR code or redirect). */
  readonly topups: {
    create: (params: CreateTopupParams, opts?: CallOptions) => Promise<Payment>;
  };

  constructor(opts: PeakpayClientOptions) {
    if (!opts.merchantId || !opts.secret) throw new TypeError('PeakpayClient needs merchantId and secret');
    this.base = new URL(opts.baseUrl);
    this.merchantId = opts.merchantId;
    this.secret = opts.secret;
    this.timeoutMs = opts.timeoutMs ?? ATTEMPT_TIMEOUT_MS_DEFAULT;
    this.policy = { ...RETRY_POLICY_DEFAULT, ...opts.retry };
    if (!(this.policy.attemptsMax >= 1)) throw new TypeError('retry.attemptsMax must be at least 1');
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.userAgent = opts.userAgent ?? `peakpay-node/${SDK_VERSION}`;

    const body = <T>(p: Promise<PeakpayResponse<T>>) => p.then((r) => r.body);
    this.payments = {
      create: (params, o) => body(this.request<Payment>('POST', '/v1/payments', { ...o, body: params })),
      get: (id, o) => body(this.request<Payment>('GET', `/v1/payments/${seg(id)}`, o)),
      getByOutTradeNo: (otn, o) => body(this.request<Payment>('GET', '/v1/payments', { ...o, query: { out_trade_no: otn } })),
      capture: (id, params, o) => body(this.request<Payment>('POST', `/v1/payments/${seg(id)}/capture`, { ...o, body: params ?? {} })),
      cancel: (id, o) => body(this.request<Payment>('POST', `/v1/payments/${seg(id)}/cancel`, { ...o, body: {} })),
      verify: (id, o) => body(this.request<Payment>('POST', `/v1/payments/${seg(id)}/verify`, { ...o, body: {} })),
    };
    this.refunds = {
      create: (paymentId, params, o) => body(this.request<Refund>('POST', `/v1/payments/${seg(paymentId)}/refunds`, { ...o, body: params })),
      get: (id, o) => body(this.request<Refund>('GET', `/v1/refunds/${seg(id)}`, o)),
    };
    this.accounts = {
      create: (params, o) => body(this.request<Account>('POST', '/v1/accounts', { ...o, body: params })),
      get: (accountId, o) => body(this.request<Account>('GET', `/v1/accounts/${seg(accountId)}`, o)),
    };
    this.topups = {
      create: (params, o) => body(this.request<Payment>('POST', '/v1/topups', { ...o, body: params })),
    };
  }

  /**
   * Any endpoint, signed and retried like the named methods: for endpoints this SDK version has no
   * method for yet (e.g. `client.request('POST', '/v1/<new endpoint>', { body })`). Resolves on 2xx; throws
   * PeakpayApiError otherwise.
   */
  async request<T = unknown>(method: 'GET' | 'POST', path: string, opts: RequestOptions = {}): Promise<PeakpayResponse<T>> {
    if (!path.startsWith('/')) throw new TypeError(`path must start with '/': ${path}`);
    const url = new URL(`${this.base.pathname.replace(/\/$/, '')}${path}`, this.base);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.append(k, String(v));
    // Signed exactly as it goes on the wire (the URL class has normalised and percent-encoded it).
    const pathWithQuery = `${url.pathname}${url.search}`;
    const rawBody = method === 'GET' ? '' : JSON.stringify(opts.body ?? {});
    const idempotencyKey = method === 'GET' ? null : (opts.idempotencyKey ?? randomUUID());
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;

    for (let attempt = 1; ; attempt++) {
      if (opts.signal?.aborted) throw abortedError(opts.signal.reason, attempt - 1);
      const headers: Record<string, string> = {
        accept: 'application/json',
        'user-agent': this.userAgent,
        authorization: authorizationHeader(this.merchantId, this.secret, {
          method, pathWithQuery, body: rawBody, timestampS: Math.floor(Date.now() / 1000), nonce: newNonce(),
        }),
      };
      if (idempotencyKey !== null) headers['idempotency-key'] = idempotencyKey;
      if (rawBody !== '') headers['content-type'] = 'application/json';

      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
      let outcome: Outcome;
      let failure: PeakpayApiError;
      try {
        // No redirects: a POST must not silently turn into a GET; a 3xx means a wrong baseUrl.
        const res = await this.fetchFn(url.href, { method, headers, body: rawBody === '' ? null : rawBody, signal, redirect: 'manual' });
        const text = await res.text();
        const requestId = res.headers.get('request-id');
        if (res.status >= 200 && res.status < 300) {
          return { status: res.status, body: parseJson<T>(text, res.status, requestId, attempt), headers: res.headers, requestId,
            replayed: res.headers.get('idempotent-replayed') === 'true', attempts: attempt, idempotencyKey };
        }
        failure = errorFromResponse(res.status, text, requestId, attempt);
        outcome = { kind: 'http', status: res.status, code: failure.code, retryAfter: res.headers.get('retry-after') };
      } catch (err) {
        if (isPeakpayApiError(err)) throw err;
        if (opts.signal?.aborted) throw abortedError(opts.signal.reason, attempt);
        const timedOut = timeout.aborted;
        outcome = { kind: timedOut ? 'timeout' : 'network' };
        failure = new PeakpayApiError(
          timedOut ? `no complete answer within ${timeoutMs} ms` : `network error: ${err instanceof Error ? err.message : String(err)}`,
          { status: 0, code: timedOut ? CLIENT_ERROR_CODES.timeout : CLIENT_ERROR_CODES.network, attempts: attempt, cause: err },
        );
      }
      const decision = decide(outcome, attempt, this.policy);
      if (!decision.retry) throw failure;
      await sleep(decision.delayMs, opts.signal);
    }
  }

  /**
   * Polls GET /v1/payments/{id} until the payment reaches one of `until` (default: decided, i.e. not
   * `processing`): for the 202 answers given when the engine did not decide within the deadline
   * (or lagged). The ingress shows such a payment `processing` until the engine decides; a 404
   * still counts as "not yet" until the timeout (an ingress older than that, or its record lost
   * with a Redis rebuild), though after a 202 it usually means the engine refused the create.
   */
  async waitForPayment(id: string, opts: WaitOptions = {}): Promise<Payment> {
    const until = opts.until ?? (['requires_action', 'pending', 'authorized', 'succeeded', 'failed', 'canceled', 'expired'] as const);
    const deadlineMs = Date.now() + (opts.timeoutMs ?? WAIT_TIMEOUT_MS_DEFAULT);
    let intervalMs = POLL_INTERVAL_MS_MIN;
    let last: Payment | PeakpayApiError | null = null;
    for (;;) {
      try {
        const p = await this.payments.get(id, opts.signal ? { signal: opts.signal } : {});
        if (until.includes(p.status)) return p;
        last = p;
      } catch (err) {
        if (!isPeakpayApiError(err) || err.code !== 'payment.not_found') throw err;
        last = err;
      }
      const leftMs = deadlineMs - Date.now();
      if (leftMs <= 0) {
        const seen = last instanceof PeakpayApiError ? last.code : `status ${last?.status}`;
        throw new PeakpayApiError(`payment ${id} did not reach ${until.join('|')} in time (last seen: ${seen})`, {
          status: 0, code: CLIENT_ERROR_CODES.waitTimeout, ...(last instanceof PeakpayApiError && { cause: last }),
        });
      }
      await sleep(Math.min(intervalMs, leftMs), opts.signal);
      intervalMs = Math.min(POLL_INTERVAL_MS_MAX, Math.round(intervalMs * 1.5));
    }
  }
}

function parseJson<T>(text: string, status: number, requestId: string | null, attempts: number): T {
  try {
    return JSON.parse(text) as T;
  } catch (cause) {
    throw new PeakpayApiError(`HTTP ${status} with a body that is not JSON`, {
      status, code: CLIENT_ERROR_CODES.invalidResponse, requestId, attempts, cause,
    });
  }
}
