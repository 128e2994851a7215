// The one catalogue of stable public error codes (API.md). Bodies are application/problem+json.
// 4xx details are shown to the caller; 5xx details are hidden and logged with the request_id.

export const ERRORS = {
  'auth.missing': { status: 401, title: 'Authorization header missing' },
  'auth.malformed': { status: 401, title: 'Authorization header malformed' },
  'auth.unknown_merchant': { status: 401, title: 'Unknown merchant' },
  'auth.invalid_signature': { status: 401, title: 'Invalid signature' },
  'auth.timestamp_out_of_window': { status: 401, title: 'Timestamp outside the allowed window' },
  'auth.nonce_reused': { status: 401, title: 'Nonce already used' },
  'auth.merchant_disabled': { status: 403, title: 'Merchant disabled' },
  'request.malformed_json': { status: 400, title: 'Body is not valid JSON' },
  'request.too_large': { status: 413, title: 'Body too large' },
  'request.unsupported_media_type': { status: 415, title: 'Body must be application/json' },
  'validation.failed': { status: 400, title: 'Validation failed' },
  'validation.amount_above_maximum': { status: 400, title: 'Amount above the merchant maximum' },
  'idempotency.key_missing': { status: 400, title: 'Idempotency-Key header required' },
  'idempotency.key_invalid': { status: 400, title: 'Idempotency-Key must be 1-255 printable ASCII characters' },
  'idempotency.key_reused': { status: 422, title: 'Idempotency-Key reused with a different request' },
  'idempotency.in_progress': { status: 409, title: 'A request with this Idempotency-Key is in progress' },
  'payment.not_found': { status: 404, title: 'Payment not found' },
  'payment.duplicate_out_trade_no': { status: 409, title: 'out_trade_no already used' },
  'payment.invalid_transition': { status: 409, title: 'Invalid payment state transition' },
  'payment.method_unavailable': { status: 422, title: 'Payment method not available' },
  'refund.not_found': { status: 404, title: 'Refund not found' },
  'account.not_found': { status: 404, title: 'Account not found' },
  'account.currency_mismatch': { status: 422, title: 'Account currency differs' },
  'account.exists': { status: 409, title: 'Account exists in another currency' },
  'route.not_found': { status: 404, title: 'No such route' },
  'method.not_allowed': { status: 405, title: 'Method not allowed' },
  rate_limited: { status: 429, title: 'Too many requests' },
  'engine.unavailable': { status: 503, title: 'Engine unavailable' },
  internal: { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;
export const isErrorCode = (s: string): s is ErrorCode => Object.hasOwn(ERRORS, s);

export type FieldError = { path: string; message: string };

export class ApiError extends Error {
  override name = 'ApiError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly errors: FieldError[];
  readonly extra: Record<string, unknown>;
  /** Response headers that belong to the error (Retry-After of a 429). */
  readonly headers: Record<string, string>;
  constructor(
    code: ErrorCode,
    detail?: string,
    opts: { errors?: FieldError[]; extra?: Record<string, unknown>; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(detail ?? ERRORS[code].title, { cause: opts.cause });
    this.code = code;
    this.status = ERRORS[code].status;
    this.errors = opts.errors ?? [];
    this.extra = opts.extra ?? {};
    this.headers = opts.headers ?? {};
  }
}
export const isApiError = (err: unknown): err is ApiError => err instanceof ApiError;

export type Problem = {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  request_id: string;
  errors: FieldError[];
  [extra: string]: unknown;
};

export function problemOf(err: ApiError, requestId: string): Problem {
  const hidden = err.status >= 500;
  return {
    type: `https://docs.peakpay.dev/errors#${err.code}`,
    title: ERRORS[err.code].title,
    status: err.status,
    code: err.code,
    detail: hidden ? 'see the server log for this request_id' : err.message,
    request_id: requestId,
    errors: hidden ? [] : err.errors,
    ...(hidden ? {} : err.extra),
  };
}
