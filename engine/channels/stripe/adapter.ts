// The Stripe adapter: HTTP plumbing around transformers.ts. Requests are form-encoded with
// `Authorization: Bearer <secret key>`, a pinned Stripe-Version, and on every POST an
// Idempotency-Key derived from our ids, so a retried create never opens a second Checkout
// Session and a retried refund never refunds twice. Stripe answers over TLS and does not sign
// responses, so there is no response signature to verify.
//
// Finding an order from out_trade_no alone (query, close, refund), without state of our own:
//   1. this process remembers the session id it created (bounded map; a fast path only);
//   2. else PaymentIntent search on metadata['out_trade_no'] (Stripe copies it from
//      payment_intent_data; search lags writes by up to a minute, and a session has no
//      PaymentIntent before the buyer confirms);
//   3. else a bounded scan of the last day's Checkout Sessions (lists are read-after-write
//      consistent; a session lives at most 24 h) for client_reference_id.
import { z } from 'zod';
import {
  CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT,
  ChannelError,
  isChannelError,
  type BillLine,
  type ChannelAdapter,
  type ChannelCrypto,
  type ChannelErrorCode,
  type ChannelOrder,
  type ChannelOrderRequest,
  type ChannelOrderState,
  type ChannelRefundRequest,
  type ChannelRefundState,
} from '../types.ts';
import { stripeNotifyAnswer, verifyStripeNotify } from './notify.ts';
import {
  BILL_PAYMENT_TYPES,
  BILL_REFUND_TYPES,
  OUT_TRADE_NO_RE,
  billLineOf,
  channelErrorCodeOf,
  dayRangeS,
  fromStripeAmount,
  fromStripeCurrency,
  formEncode,
  idempotencyKeys,
  isStripeMappingError,
  orderStateOf,
  outTradeNoOfSession,
  paymentIntentSearchQuery,
  redactSecrets,
  refundStatusOf,
  refundStatusOfStripe,
  sessionCreateOf,
  toStripeAmount,
  toStripeCurrency,
  type FormValue,
} from './transformers.ts';
import {
  STRIPE_API_VERSION,
  stripeBalanceTransactionSchema,
  stripeCheckoutSessionSchema,
  stripeErrorSchema,
  stripeListSchema,
  stripePaymentIntentSchema,
  stripeRefundSchema,
  stripeSearchResultSchema,
  type StripeCheckoutSession,
  type StripePaymentIntent,
} from './wire.ts';

export const stripeConfigSchema = z.strictObject({
  /** https://api.stripe.com in production; the sandbox's URL locally. */
  base_url: z.url().default('https://api.stripe.com'),
  /** Secret (sk_…) or restricted (rk_…) key. */
  secret_key: z.string().regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/, 'must be an sk_/rk_ key'),
  /** The webhook endpoint's signing secret (whsec_…). */
  webhook_secret: z.string().regex(/^whsec_[A-Za-z0-9+/=_-]+$/, 'must be a whsec_ secret'),
  api_version: z.string().min(1).default(STRIPE_API_VERSION),
  /** Where Checkout sends the buyer after paying when the payment has no return_url. */
  success_url: z.url(),
  cancel_url: z.url().optional(),
  /** e.g. ["card", "alipay", "wechat_pay"]; omitted = the methods enabled in the Dashboard. */
  payment_method_types: z.array(z.string().regex(/^[a-z_]+$/)).max(20).optional(),
  /** The bill day's offset from UTC in minutes: 0 = Stripe's own reporting day (UTC), 480 = Asia/Shanghai. */
  bill_utc_offset_minutes: z.number().int().min(-720).max(840).default(0),
});
export type StripeConfig = z.input<typeof stripeConfigSchema>;
type ParsedConfig = z.output<typeof stripeConfigSchema>;

export function parseStripeConfig(json: unknown): ParsedConfig {
  const r = stripeConfigSchema.safeParse(json);
  // The issue list names fields, never the secret values.
  if (!r.success) throw new Error(`stripe config: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** Session ids this process created, remembered for query/close/refund (oldest dropped first). */
export const SESSION_IDS_CACHED_MAX = 10_000;
/** Pages of 100 Checkout Sessions scanned when neither the cache nor search finds an order. */
export const SESSION_SCAN_PAGES_MAX = 5;
export const STRIPE_PAGE_SIZE = 100;
/** Pages of 100 balance transactions per type in one bill; a larger day fails rather than truncates. */
export const BILL_PAGES_MAX = 200;
/** How far back the session scan looks: a session's 24 h life plus slack for clocks. */
export const SESSION_SCAN_WINDOW_MS = 25 * 3600_000;
/** PaymentIntents one search may return for one out_trade_no (normally exactly one). */
export const SEARCH_RESULTS_MAX = 10;
export const ANSWER_BYTES_MAX = 4 * 1024 * 1024;

const STRIPE_ID_RE = /^[A-Za-z0-9_]{1,255}$/;

type Deps = { crypto: ChannelCrypto; fetch?: typeof fetch; timeoutMs?: number; nowMs?: () => number };
type Located = { session: StripeCheckoutSession | null; pi: StripePaymentIntent | null };
type Schema<T> = { safeParse(v: unknown): { success: true; data: T } | { success: false; error: unknown } };

export function createStripeAdapter(config: StripeConfig, deps: Deps): ChannelAdapter {
  const cfg = parseStripeConfig(config);
  const doFetch = deps.fetch ?? fetch;
  const timeoutMs = deps.timeoutMs ?? CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT;
  const now = deps.nowMs ?? Date.now;
  const sessionIds = new Map<string, string>();
  const base = cfg.base_url.replace(/\/+$/, '');

  const fail = (code: ChannelErrorCode, message: string, opts: { cause?: unknown; channelCode?: string | null } = {}) =>
    new ChannelError('stripe', code, redactSecrets(message), opts);

  async function call<T>(schema: Schema<T>, method: 'GET' | 'POST', path: string, params: Record<string, FormValue> | null, idempotencyKey?: string): Promise<T> {
    const form = params ? formEncode(params) : '';
    const url = method === 'GET' && form ? `${base}${path}?${form}` : `${base}${path}`;
    const headers: Record<string, string> = {
      authorization: `Bearer ${cfg.secret_key}`,
      'stripe-version': cfg.api_version,
      accept: 'application/json',
      'user-agent': 'peakpay/stripe-adapter',
    };
    if (method === 'POST') {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      if (idempotencyKey === undefined) throw new Error('assertion: every Stripe POST carries an Idempotency-Key');
      headers['idempotency-key'] = idempotencyKey;
    }
    const what = `stripe ${method} ${path}`;
    let status: number;
    let text: string;
    try {
      const res = await doFetch(url, { method, headers, body: method === 'POST' ? form : undefined, signal: AbortSignal.timeout(timeoutMs) });
      status = res.status;
      text = await res.text();
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'TimeoutError' || name === 'AbortError') throw fail('timeout', `${what}: no answer within ${timeoutMs} ms`, { cause: err });
      throw fail('unavailable', `${what}: ${(err as Error).message}`, { cause: err });
    }
    if (text.length > ANSWER_BYTES_MAX) throw fail('bad_response', `${what}: answer larger than ${ANSWER_BYTES_MAX} bytes`);
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    if (status < 200 || status >= 300) {
      const e = stripeErrorSchema.safeParse(json);
      const body = e.success ? e.data : null;
      const code = channelErrorCodeOf(status, body);
      const channelCode = body ? (body.error.code ?? body.error.type) : null;
      throw fail(code, `${what}: HTTP ${status} ${body ? `${body.error.type}${body.error.code ? `/${body.error.code}` : ''}: ${body.error.message ?? ''}` : ''}`.trim(), { channelCode });
    }
    const r = schema.safeParse(json);
    if (!r.success) throw fail('bad_response', `${what}: unexpected answer`, { cause: r.error });
    return r.data;
  }

  /** Runs a mapping step; a Stripe value we cannot map becomes bad_response. */
  const mapped = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (err) {
      if (isStripeMappingError(err)) throw fail('bad_response', `${what}: ${err.message}`, { cause: err });
      throw err;
    }
  };

  const idPath = (id: string): string => {
    if (!STRIPE_ID_RE.test(id)) throw fail('bad_response', `unexpected Stripe id ${JSON.stringify(id.slice(0, 40))}`);
    return encodeURIComponent(id);
  };

  function remember(outTradeNo: string, sessionId: string): void {
    sessionIds.delete(outTradeNo);
    sessionIds.set(outTradeNo, sessionId);
    if (sessionIds.size > SESSION_IDS_CACHED_MAX) {
      const oldest = sessionIds.keys().next().value;
      if (oldest !== undefined) sessionIds.delete(oldest);
    }
  }

  const getSession = (id: string) =>
    call(stripeCheckoutSessionSchema, 'GET', `/v1/checkout/sessions/${idPath(id)}`, { expand: ['payment_intent', 'payment_intent.latest_charge'] });

  const piOfSession = (s: StripeCheckoutSession): StripePaymentIntent | null => (s.payment_intent && typeof s.payment_intent === 'object' ? s.payment_intent : null);

  async function sessionOfPaymentIntent(piId: string): Promise<StripeCheckoutSession | null> {
    const list = await call(stripeListSchema(stripeCheckoutSessionSchema), 'GET', '/v1/checkout/sessions', { payment_intent: piId, limit: 1 });
    return list.data[0] ?? null;
  }

  async function searchPaymentIntent(outTradeNo: string): Promise<StripePaymentIntent | null> {
    const query = mapped('search', () => paymentIntentSearchQuery(outTradeNo));
    const res = await call(stripeSearchResultSchema(stripePaymentIntentSchema), 'GET', '/v1/payment_intents/search', {
      query,
      limit: SEARCH_RESULTS_MAX,
      expand: ['data.latest_charge'],
    });
    const ours = res.data.filter((pi) => pi.metadata?.out_trade_no === outTradeNo);
    // One session per out_trade_no has one PaymentIntent; should there be more (a session
    // re-opened after Stripe forgot the Idempotency-Key), a succeeded one wins, else the newest.
    return ours.find((pi) => pi.status === 'succeeded') ?? ours.sort((a, b) => b.created - a.created)[0] ?? null;
  }

  async function scanSessions(outTradeNo: string): Promise<StripeCheckoutSession | null> {
    const since = Math.floor((now() - SESSION_SCAN_WINDOW_MS) / 1000);
    let after: string | undefined;
    for (let page = 0; page < SESSION_SCAN_PAGES_MAX; page++) {
      const list = await call(stripeListSchema(stripeCheckoutSessionSchema), 'GET', '/v1/checkout/sessions', {
        created: { gte: since },
        limit: STRIPE_PAGE_SIZE,
        starting_after: after,
      });
      const hit = list.data.find((s) => s.client_reference_id === outTradeNo);
      if (hit) return hit;
      const last = list.data.at(-1);
      if (!list.has_more || !last) return null;
      after = last.id;
    }
    return null;
  }

  /** The order's session and/or PaymentIntent, or null when Stripe knows neither. */
  async function locate(outTradeNo: string, wantSession: boolean): Promise<Located | null> {
    if (!OUT_TRADE_NO_RE.test(outTradeNo)) throw fail('rejected', 'out_trade_no must be 1-64 of [A-Za-z0-9_-]');
    const cached = sessionIds.get(outTradeNo);
    if (cached !== undefined) {
      const s = await getSession(cached);
      return { session: s, pi: piOfSession(s) };
    }
    const pi = await searchPaymentIntent(outTradeNo);
    if (pi) {
      if (pi.status === 'succeeded' && !wantSession) return { session: null, pi };
      const s = await sessionOfPaymentIntent(pi.id);
      if (s) remember(outTradeNo, s.id);
      return { session: s, pi };
    }
    const found = await scanSessions(outTradeNo);
    if (!found) return null;
    remember(outTradeNo, found.id);
    const s = await getSession(found.id);
    return { session: s, pi: piOfSession(s) };
  }

  function checkOwner(outTradeNo: string, l: Located): void {
    const fromSession = l.session ? mapped('session', () => outTradeNoOfSession(l.session as StripeCheckoutSession)) : null;
    const fromPi = l.pi?.metadata?.out_trade_no ?? null;
    if ((fromSession !== null && fromSession !== outTradeNo) || (fromPi !== null && fromPi !== outTradeNo)) {
      throw fail('bad_response', `Stripe returned an order that is not ${outTradeNo}`);
    }
  }

  return {
    name: 'stripe',

    async createOrder(req: ChannelOrderRequest): Promise<ChannelOrder> {
      let body;
      try {
        body = sessionCreateOf(req, { success_url: cfg.success_url, cancel_url: cfg.cancel_url, payment_method_types: cfg.payment_method_types }, now());
      } catch (err) {
        if (isStripeMappingError(err)) throw fail('rejected', err.message, { cause: err });
        throw err;
      }
      const s = await call(stripeCheckoutSessionSchema, 'POST', '/v1/checkout/sessions', body as unknown as Record<string, FormValue>, idempotencyKeys.createSession(req.out_trade_no));
      if (!s.url) throw fail('bad_response', 'Checkout Session without url');
      if (s.client_reference_id !== req.out_trade_no) throw fail('bad_response', 'Checkout Session for another out_trade_no');
      remember(req.out_trade_no, s.id);
      return { channel_order_id: s.id, next_action: { type: 'redirect', url: s.url } };
    },

    async queryOrder(outTradeNo: string): Promise<ChannelOrderState> {
      const l = await locate(outTradeNo, false);
      if (!l) throw fail('not_found', `Stripe knows no order ${outTradeNo}`, { channelCode: 'resource_missing' });
      checkOwner(outTradeNo, l);
      return mapped('query', () => orderStateOf(outTradeNo, l.session, l.pi));
    },

    async closeOrder(outTradeNo: string): Promise<void> {
      const l = await locate(outTradeNo, true);
      if (!l) return;
      checkOwner(outTradeNo, l);
      const state = mapped('close', () => orderStateOf(outTradeNo, l.session, l.pi));
      if (state.status === 'succeeded') throw fail('order_paid', `${outTradeNo} is paid`, { channelCode: 'payment_intent_succeeded' });
      if (state.status === 'closed' || state.status === 'failed') return;
      const s = l.session;
      if (!s) {
        // A PaymentIntent whose session we cannot find: cancel the intent itself.
        const pi = l.pi as StripePaymentIntent;
        if (pi.status === 'processing') throw fail('rejected', `${outTradeNo}: a payment is processing and cannot be cancelled`, { channelCode: 'processing' });
        await call(stripePaymentIntentSchema, 'POST', `/v1/payment_intents/${idPath(pi.id)}/cancel`, {}, idempotencyKeys.cancelPaymentIntent(pi.id));
        return;
      }
      if (s.status !== 'open') {
        // complete + unpaid: an asynchronous method is settling; Stripe cannot stop it.
        throw fail('rejected', `${outTradeNo}: the buyer completed checkout and the payment is processing`, { channelCode: 'session_complete' });
      }
      try {
        await call(stripeCheckoutSessionSchema, 'POST', `/v1/checkout/sessions/${idPath(s.id)}/expire`, {}, idempotencyKeys.expireSession(s.id));
      } catch (err) {
        // Lost a race with the buyer (or with Stripe's own expiry): the session's state decides.
        if (!isChannelError(err) || err.code !== 'rejected') throw err;
        const again = await getSession(s.id);
        const st = mapped('close', () => orderStateOf(outTradeNo, again, piOfSession(again)));
        if (st.status === 'succeeded') throw fail('order_paid', `${outTradeNo} is paid`, { channelCode: 'payment_intent_succeeded', cause: err });
        if (st.status === 'closed' || st.status === 'failed') return;
        throw err;
      }
    },

    async refund(req: ChannelRefundRequest): Promise<ChannelRefundState> {
      if (!OUT_TRADE_NO_RE.test(req.out_refund_no)) throw fail('rejected', 'out_refund_no must be 1-64 of [A-Za-z0-9_-]');
      let amount: number;
      try {
        amount = toStripeAmount(req.amount, req.currency);
        toStripeCurrency(req.currency);
      } catch (err) {
        if (isStripeMappingError(err)) throw fail('rejected', err.message, { cause: err });
        throw err;
      }
      const l = await locate(req.out_trade_no, false);
      if (!l) throw fail('not_found', `Stripe knows no order ${req.out_trade_no}`, { channelCode: 'resource_missing' });
      checkOwner(req.out_trade_no, l);
      const pi = l.pi;
      if (!pi || pi.status !== 'succeeded') throw fail('rejected', `${req.out_trade_no} is not paid`, { channelCode: 'charge_not_refundable' });
      if (pi.currency !== req.currency.toLowerCase()) throw fail('rejected', `${req.out_trade_no} was paid in ${pi.currency.toUpperCase()}, not ${req.currency}`);
      const metadata: Record<string, string> = { out_trade_no: req.out_trade_no, out_refund_no: req.out_refund_no };
      if (req.reason) metadata.reason = [...req.reason].slice(0, 500).join(''); // Stripe's metadata value limit
      const r = await call(stripeRefundSchema, 'POST', '/v1/refunds', { payment_intent: pi.id, amount, metadata }, idempotencyKeys.refund(req.out_refund_no));
      return mapped('refund', () => ({
        out_refund_no: req.out_refund_no,
        status: refundStatusOfStripe(refundStatusOf(r.status)),
        channel_refund_id: r.id,
        amount: fromStripeAmount(r.amount, fromStripeCurrency(r.currency)),
      }));
    },

    async verifyNotify(raw, headers, nowMs) {
      return verifyStripeNotify(raw, headers, cfg.webhook_secret, nowMs);
    },

    notifyAnswer: stripeNotifyAnswer,

    async downloadBill(day: string): Promise<BillLine[]> {
      const range = mapped('bill', () => dayRangeS(day, cfg.bill_utc_offset_minutes));
      const lines: BillLine[] = [];
      for (const type of [...BILL_PAYMENT_TYPES, ...BILL_REFUND_TYPES]) {
        let after: string | undefined;
        for (let page = 0; ; page++) {
          if (page >= BILL_PAGES_MAX) throw fail('rejected', `bill of ${day} has more than ${BILL_PAGES_MAX} pages of ${type} (BILL_PAGES_MAX)`);
          const list = await call(stripeListSchema(stripeBalanceTransactionSchema), 'GET', '/v1/balance_transactions', {
            created: { gte: range.gte, lt: range.lt },
            type,
            limit: STRIPE_PAGE_SIZE,
            starting_after: after,
            expand: ['data.source', 'data.source.payment_intent'],
          });
          for (const bt of list.data) {
            const line = mapped('bill', () => billLineOf(bt));
            if (line) lines.push(line);
          }
          const last = list.data.at(-1);
          if (!list.has_more || !last) break;
          after = last.id;
        }
      }
      return lines.sort((a, b) => a.at_ms - b.at_ms);
    },
  };
}

/** Registers a webhook endpoint for the events we handle (tooling: real Stripe or the sandbox). Returns its id and signing secret. */
export async function registerStripeWebhookEndpoint(config: StripeConfig, url: string, events: readonly string[], f: typeof fetch = fetch): Promise<{ id: string; secret: string }> {
  const cfg = parseStripeConfig(config);
  const res = await f(`${cfg.base_url.replace(/\/+$/, '')}/v1/webhook_endpoints`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${cfg.secret_key}`,
      'stripe-version': cfg.api_version,
      'content-type': 'application/x-www-form-urlencoded',
      'idempotency-key': `peakpay-webhook-${url}`.slice(0, 255),
    },
    body: formEncode({ url, enabled_events: [...events] }),
    signal: AbortSignal.timeout(CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT),
  });
  const json = (await res.json()) as { id?: unknown; secret?: unknown };
  if (!res.ok || typeof json.id !== 'string' || typeof json.secret !== 'string') throw new Error(`stripe: webhook endpoint registration failed with HTTP ${res.status}`);
  return { id: json.id, secret: json.secret };
}
