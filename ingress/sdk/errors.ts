// The one error the SDK throws for a failed call. An HTTP answer carries the server's problem
// (status, stable code, request_id, field errors); a call that never got an answer has status 0
// and one of the client codes below, with the underlying error as `cause`.

export type FieldError = { path: string; message: string };

/** Codes for calls that ended without an HTTP answer the caller can use (status 0). */
export const CLIENT_ERROR_CODES = {
  network: 'client.network_error',
  timeout: 'client.timeout',
  aborted: 'client.aborted',
  invalidResponse: 'client.invalid_response',
  waitTimeout: 'client.wait_timeout',
} as const;

export type PeakpayApiErrorInit = {
  status: number;
  code: string;
  requestId?: string | null;
  errors?: FieldError[];
  /** The whole problem+json body when there was one (e.g. `payment_id` of a duplicate out_trade_no). */
  problem?: Record<string, unknown> | null;
  /** How many HTTP attempts the call made before giving up. */
  attempts?: number;
  cause?: unknown;
};

export class PeakpayApiError extends Error {
  override name = 'PeakpayApiError';
  readonly status: number;
  readonly code: string;
  readonly requestId: string | null;
  readonly errors: FieldError[];
  readonly problem: Record<string, unknown> | null;
  readonly attempts: number;

  constructor(message: string, init: PeakpayApiErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId ?? null;
    this.errors = init.errors ?? [];
    this.problem = init.problem ?? null;
    this.attempts = init.attempts ?? 1;
  }
}

export const isPeakpayApiError = (err: unknown): err is PeakpayApiError => err instanceof PeakpayApiError;

/** Builds the error from a non-2xx answer; a body that is not problem+json still yields status and request id. */
export function errorFromResponse(status: number, bodyText: string, requestIdHeader: string | null, attempts: number): PeakpayApiError {
  let problem: Record<string, unknown> | null = null;
  try {
    const parsed: unknown = JSON.parse(bodyText);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) problem = parsed as Record<string, unknown>;
  } catch {
    // Not JSON (a proxy's HTML error page, say): keep status and request id.
  }
  const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);
  const code = str(problem?.code) ?? `http.${status}`;
  const message = str(problem?.detail) ?? str(problem?.title) ?? `HTTP ${status}`;
  const errors = Array.isArray(problem?.errors)
    ? (problem.errors as unknown[]).filter((e): e is FieldError =>
        e !== null && typeof e === 'object' && typeof (e as FieldError).path === 'string' && typeof (e as FieldError).message === 'string')
    : [];
  return new PeakpayApiError(`${code}: ${message}`, {
    status, code, requestId: str(problem?.request_id) ?? requestIdHeader, errors, problem, attempts,
  });
}
