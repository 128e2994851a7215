// A local Stripe: the part of the v1 API the adapter uses, on the shared sandbox kit. It checks
// the Bearer secret key like Stripe (401 invalid_request_error otherwise), keeps Stripe's
// idempotency semantics (same Idempotency-Key + same parameters → the stored answer replayed with
// Idempotent-Replayed: true; other parameters → 400 idempotency_error), answers in Stripe's JSON
// shapes, and signs webhook events with Stripe-Signature (t=,v1=) over the exact pretty-printed
// body Stripe sends. The official stripe-node client can talk to it (host/port/protocol).
//
// Routes: POST/GET /v1/checkout/sessions, GET /v1/checkout/sessions/{id},
// POST /v1/checkout/sessions/{id}/expire, GET /v1/payment_intents/search (metadata['k']:'v'
// queries), GET /v1/payment_intents/{id}, POST /v1/payment_intents/{id}/cancel, POST /v1/refunds,
// GET /v1/balance_transactions, POST/GET /v1/webhook_endpoints; the buyer's page GET/POST
// /c/pay/{session id}. Simplifications: the PaymentIntent appears when the buyer pays (Stripe
// creates it at confirmation, as here); search is immediately consistent; all webhook endpoints
// share the sandbox's one signing secret; balances settle in the charge's own currency.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { SandboxKit, randomId, type OrderBook, type OutgoingCallback, type SandboxOrder, type SandboxRefund, type SandboxRequest, type SandboxResponse, type SandboxSpec } from '../sandbox-kit.ts';
import { divRoundHalfUp } from '../fx.ts';
import type { StripeConfig } from './adapter.ts';
import { stripeSignatureHeader } from './notify.ts';
import { formDecode, fromStripeCurrency, isStripeMappingError } from './transformers.ts';
import { STRIPE_API_VERSION, STRIPE_HANDLED_EVENTS } from './wire.ts';

/** Stored idempotent answers (oldest dropped first) and registered webhook endpoints. */
export const SANDBOX_IDEMPOTENCY_KEYS_MAX = 100_000;
export const SANDBOX_WEBHOOK_ENDPOINTS_MAX = 16;
/** The sandbox's card fee: 3.4 % of the amount, rounded half-up (Stripe HK's card rate, without the fixed part). */
export const SANDBOX_FEE_PER_MILLE = 34;

type Json = Record<string, unknown>;
type Endpoint = { id: string; url: string; enabled_events: string[]; created: number };
type Extra = {
  pi_id: string;
  created_s: number;
  expires_s: number;
  success_url: string;
  cancel_url: string | null;
  metadata: Record<string, string>;
  pi_metadata: Record<string, string>;
  payment_method_types: string[];
  refund_metadata: Record<string, Record<string, string>>;
  canceled: boolean;
};

const S = (ms: number) => Math.floor(ms / 1000);
const json = (status: number, v: unknown, headers: Record<string, string> = {}): SandboxResponse => ({
  status,
  headers: { 'content-type': 'application/json', 'request-id': randomId('req_'), 'stripe-version': STRIPE_API_VERSION, ...headers },
  body: JSON.stringify(v, null, 2),
});
const stripeError = (status: number, type: string, message: string, code?: string, param?: string): SandboxResponse =>
  json(status, { error: { type, message, ...(code ? { code } : {}), ...(param ? { param } : {}) } });
const invalid = (message: string, param?: string, code?: string) => stripeError(400, 'invalid_request_error', message, code ?? (param ? 'parameter_missing' : undefined), param);
const missing = (kind: string, id: string) => stripeError(404, 'invalid_request_error', `No such ${kind}: '${id}'`, 'resource_missing', 'id');

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const rec = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const strRecord = (v: unknown): Record<string, string> => Object.fromEntries(Object.entries(rec(v)).filter((e): e is [string, string] => typeof e[1] === 'string'));
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : v !== null && typeof v === 'object' ? Object.values(v) : []);
const intOf = (v: unknown): number | null => (typeof v === 'string' && /^-?\d{1,15}$/.test(v) ? Number(v) : null);

export async function startStripeSandbox(opts: { port?: number; host?: string; webhookUrl?: string } = {}): Promise<{
  kit: SandboxKit;
  url: string;
  config: StripeConfig;
  /** Where events go when no endpoint was registered through POST /v1/webhook_endpoints. */
  setWebhookUrl(url: string | null): void;
}> {
  const secretKey = `sk_test_${randomBytes(24).toString('hex')}`;
  const webhookSecret = `whsec_${randomBytes(24).toString('base64url').replace(/[-_]/g, 'x')}`;
  const idempotency = new Map<string, { fingerprint: string; res: SandboxResponse }>();
  const endpoints: Endpoint[] = [];
  let defaultWebhookUrl: string | null = opts.webhookUrl ?? null;
  let baseUrl = '';

  const extraOf = (o: SandboxOrder): Extra => o.extra as unknown as Extra;
  const chargeId = (o: SandboxOrder) => `ch_${(o.trade_no ?? '').replace(/^txn/, '')}`;
  const refundId = (r: SandboxRefund) => `re_${r.refund_id.replace(/^rfd/, '')}`;
  const txnId = (sourceId: string) => `txn_${createHash('sha256').update(sourceId).digest('hex').slice(0, 24)}`;

  function byPaymentIntent(book: OrderBook, piId: string): SandboxOrder | undefined {
    for (const o of book.orders.values()) if (o.status === 'succeeded' && extraOf(o).pi_id === piId) return o;
    return undefined;
  }
  function bySession(book: OrderBook, id: string): SandboxOrder | undefined {
    for (const o of book.orders.values()) if (o.order_id === id) return o;
    return undefined;
  }

  /** An open session past expires_at expires, as at Stripe. */
  function settleExpiry(book: OrderBook, o: SandboxOrder): void {
    if (o.status === 'pending' && S(Date.now()) >= extraOf(o).expires_s) book.close(o.out_trade_no);
  }

  function chargeJson(o: SandboxOrder, expandPi: boolean): Json {
    const paid = o.paid_amount ?? o.amount;
    const refunded = o.refunds.reduce((s, r) => s + r.amount, 0);
    return {
      id: chargeId(o),
      object: 'charge',
      amount: paid,
      amount_captured: paid,
      amount_refunded: refunded,
      balance_transaction: txnId(chargeId(o)),
      captured: true,
      created: S(o.paid_ms ?? Date.now()),
      currency: o.currency,
      livemode: false,
      metadata: {},
      paid: true,
      payment_intent: expandPi ? piJson(o, false) : extraOf(o).pi_id,
      refunded: refunded >= paid,
      status: 'succeeded',
    };
  }

  function piJson(o: SandboxOrder, expandCharge: boolean): Json {
    const x = extraOf(o);
    const paid = o.paid_amount ?? o.amount;
    return {
      id: x.pi_id,
      object: 'payment_intent',
      amount: paid,
      amount_received: o.status === 'succeeded' ? paid : 0,
      capture_method: 'automatic_async',
      client_secret: `${x.pi_id}_secret_sandbox`,
      created: S(o.paid_ms ?? Date.now()),
      currency: o.currency,
      latest_charge: o.status !== 'succeeded' ? null : expandCharge ? chargeJson(o, false) : chargeId(o),
      livemode: false,
      metadata: x.pi_metadata,
      payment_method_types: x.payment_method_types,
      status: o.status === 'succeeded' ? 'succeeded' : x.canceled ? 'canceled' : 'requires_payment_method',
    };
  }

  function sessionJson(o: SandboxOrder, expand: Set<string>): Json {
    const x = extraOf(o);
    const paid = o.status === 'succeeded';
    const amount = paid ? (o.paid_amount ?? o.amount) : o.amount;
    return {
      id: o.order_id,
      object: 'checkout.session',
      amount_subtotal: amount,
      amount_total: amount,
      cancel_url: x.cancel_url,
      client_reference_id: o.out_trade_no,
      created: x.created_s,
      currency: o.currency,
      expires_at: x.expires_s,
      livemode: false,
      metadata: x.metadata,
      mode: 'payment',
      payment_intent: !paid ? null : expand.has('payment_intent') ? piJson(o, expand.has('payment_intent.latest_charge')) : x.pi_id,
      payment_method_types: x.payment_method_types,
      payment_status: paid ? 'paid' : 'unpaid',
      status: paid ? 'complete' : o.status === 'closed' ? 'expired' : 'open',
      success_url: x.success_url,
      url: o.status === 'pending' ? `${baseUrl}/c/pay/${o.order_id}` : null,
    };
  }

  function refundJson(o: SandboxOrder, r: SandboxRefund): Json {
    return {
      id: refundId(r),
      object: 'refund',
      amount: r.amount,
      balance_transaction: txnId(refundId(r)),
      charge: chargeId(o),
      created: S(r.at_ms),
      currency: o.currency,
      metadata: extraOf(o).refund_metadata[r.out_refund_no] ?? {},
      payment_intent: extraOf(o).pi_id,
      reason: null,
      status: r.status,
    };
  }

  const fee = (amount: number) => Number(divRoundHalfUp(BigInt(amount) * BigInt(SANDBOX_FEE_PER_MILLE), 1000n));

  function balanceTransactions(book: OrderBook): Array<{ bt: Json; source: () => Json; sourceWithPi: () => Json }> {
    const out: Array<{ bt: Json; source: () => Json; sourceWithPi: () => Json }> = [];
    for (const o of book.orders.values()) {
      if (o.status !== 'succeeded' || o.paid_ms === null) continue;
      const paid = o.paid_amount ?? o.amount;
      const f = fee(paid);
      out.push({
        bt: { id: txnId(chargeId(o)), object: 'balance_transaction', amount: paid, currency: o.currency, created: S(o.paid_ms), fee: f, net: paid - f, type: 'charge', reporting_category: 'charge', status: 'pending', source: chargeId(o) },
        source: () => chargeJson(o, false),
        sourceWithPi: () => chargeJson(o, true),
      });
      for (const r of o.refunds) {
        out.push({
          bt: { id: txnId(refundId(r)), object: 'balance_transaction', amount: -r.amount, currency: o.currency, created: S(r.at_ms), fee: 0, net: -r.amount, type: 'refund', reporting_category: 'refund', status: 'pending', source: refundId(r) },
          source: () => refundJson(o, r),
          sourceWithPi: () => ({ ...refundJson(o, r), payment_intent: piJson(o, false) }),
        });
      }
    }
    // Stripe lists newest first.
    return out.sort((a, b) => (b.bt.created as number) - (a.bt.created as number) || String(b.bt.id).localeCompare(String(a.bt.id)));
  }

  function paginate<T extends { id: string }>(all: T[], q: Json, url: string): SandboxResponse {
    const limit = Math.min(Math.max(intOf(q.limit) ?? 10, 1), 100);
    const after = str(q.starting_after);
    const at = after === undefined ? -1 : all.findIndex((x) => x.id === after);
    if (after !== undefined && at < 0) return missing('object', after);
    const data = all.slice(at + 1, at + 1 + limit);
    return json(200, { object: 'list', url, has_more: at + 1 + limit < all.length, data });
  }

  function inCreatedRange(created: number, q: Json): boolean {
    const c = q.created;
    if (typeof c === 'string') return created === intOf(c);
    const r = rec(c);
    const bound = (k: string) => intOf(r[k]);
    const gte = bound('gte'), gt = bound('gt'), lte = bound('lte'), lt = bound('lt');
    return (gte === null || created >= gte) && (gt === null || created > gt) && (lte === null || created <= lte) && (lt === null || created < lt);
  }

  function createSession(book: OrderBook, p: Json): SandboxResponse {
    if (str(p.mode) !== 'payment') return invalid('This sandbox supports mode=payment only.', 'mode');
    const items = list(p.line_items);
    if (items.length !== 1) return invalid('Exactly one line item is supported by the sandbox.', 'line_items');
    const item = rec(items[0]);
    const pd = rec(item.price_data);
    const currency = str(pd.currency);
    const unit = intOf(pd.unit_amount);
    const qty = intOf(item.quantity) ?? 1;
    const name = str(rec(pd.product_data).name);
    if (!currency || !/^[a-z]{3}$/.test(currency)) return invalid('Invalid currency.', 'line_items[0][price_data][currency]');
    if (unit === null || unit < 1) return invalid('Invalid integer: unit_amount must be a positive integer.', 'line_items[0][price_data][unit_amount]', 'parameter_invalid_integer');
    if (qty < 1) return invalid('Invalid quantity.', 'line_items[0][quantity]');
    if (!name) return invalid('Missing required param: line_items[0][price_data][product_data][name].', 'line_items[0][price_data][product_data][name]');
    try {
      fromStripeCurrency(currency);
    } catch (err) {
      if (isStripeMappingError(err)) return invalid(`Invalid currency: ${currency}.`, 'line_items[0][price_data][currency]', 'parameter_invalid');
      throw err;
    }
    const successUrl = str(p.success_url);
    if (!successUrl) return invalid('Missing required param: success_url.', 'success_url');
    const ref = str(p.client_reference_id) ?? randomId('ref_');
    const nowS = S(Date.now());
    const expiresS = intOf(p.expires_at) ?? nowS + 86_400;
    if (expiresS < nowS + 1800 || expiresS > nowS + 86_400) {
      return invalid('The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.', 'expires_at', 'parameter_invalid');
    }
    const extra: Extra = {
      pi_id: randomId('pi_'),
      created_s: nowS,
      expires_s: expiresS,
      success_url: successUrl,
      cancel_url: str(p.cancel_url) ?? null,
      metadata: strRecord(p.metadata),
      pi_metadata: strRecord(rec(p.payment_intent_data).metadata),
      payment_method_types: list(p.payment_method_types).filter((x): x is string => typeof x === 'string'),
      refund_metadata: {},
      canceled: false,
    };
    if (extra.payment_method_types.length === 0) extra.payment_method_types = ['card'];
    const o = book.open({
      out_trade_no: ref,
      amount: unit * qty,
      currency,
      subject: name,
      notify_url: webhookUrlFor('checkout.session.completed') ?? '',
      expires_ms: expiresS * 1000,
      extra: extra as unknown as Record<string, unknown>,
      order_id: randomId('cs_test_'),
    });
    return json(200, sessionJson(o, new Set()));
  }

  function webhookUrlFor(type: string): string | null {
    const ep = endpoints.find((e) => e.enabled_events.includes('*') || e.enabled_events.includes(type));
    return ep?.url ?? defaultWebhookUrl;
  }

  function refund(book: OrderBook, p: Json): SandboxResponse {
    const piId = str(p.payment_intent) ?? '';
    let o = byPaymentIntent(book, piId);
    if (!o) {
      for (const x of book.orders.values()) if (extraOf(x).pi_id === piId) o = x;
      if (!o) return missing('payment_intent', piId);
      return invalid(`This PaymentIntent (${piId}) does not have a successful charge to refund.`, 'payment_intent', 'charge_not_refundable');
    }
    const md = strRecord(p.metadata);
    const outRefundNo = md.out_refund_no ?? randomId('rf_');
    const refunded = o.refunds.reduce((s, r) => s + r.amount, 0);
    const amount = p.amount === undefined ? (o.paid_amount ?? o.amount) - refunded : intOf(p.amount);
    if (amount === null || amount < 1) return invalid('Invalid positive integer', 'amount', 'parameter_invalid_integer');
    extraOf(o).refund_metadata[outRefundNo] ??= md;
    const r = book.refund(o.out_trade_no, outRefundNo, amount);
    if (r === 'too_much') {
      return invalid(`Refund amount (${amount}) is greater than unrefunded amount on charge (${(o.paid_amount ?? o.amount) - refunded}).`, 'amount', 'amount_too_large');
    }
    if (r === 'not_paid' || r === 'unknown') return invalid('This PaymentIntent does not have a successful charge to refund.', 'payment_intent', 'charge_not_refundable');
    return json(200, refundJson(o, r));
  }

  function searchPaymentIntents(book: OrderBook, q: Json): SandboxResponse {
    const query = str(q.query) ?? '';
    const m = /^metadata\['([A-Za-z0-9_]+)'\]:'((?:[^'\\]|\\.)*)'$/.exec(query.trim());
    if (!m) return invalid('The sandbox understands metadata[\'key\']:\'value\' search queries only.', 'query', 'parameter_invalid');
    const [, key = '', raw = ''] = m;
    const value = raw.replace(/\\(.)/g, '$1');
    const expandCharge = list(q.expand).includes('data.latest_charge');
    const data = [...book.orders.values()]
      .filter((o) => o.status === 'succeeded' || extraOf(o).canceled)
      .filter((o) => extraOf(o).pi_metadata[key] === value)
      .map((o) => piJson(o, expandCharge));
    return json(200, { object: 'search_result', url: '/v1/payment_intents/search', has_more: false, next_page: null, data: data.slice(0, Math.min(intOf(q.limit) ?? 10, 100)) });
  }

  function authorized(req: SandboxRequest): boolean {
    const h = req.headers.authorization;
    if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false;
    const given = Buffer.from(h.slice(7));
    const want = Buffer.from(secretKey);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  async function buyerPage(req: SandboxRequest, book: OrderBook, id: string): Promise<SandboxResponse> {
    const o = bySession(book, id);
    if (!o) return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'no such checkout session' };
    settleExpiry(book, o);
    if (req.method === 'POST' && o.status === 'pending') {
      await book.pay(o.out_trade_no);
      return { status: 303, headers: { location: extraOf(o).success_url.replace('{CHECKOUT_SESSION_ID}', o.order_id) }, body: '' };
    }
    const amount = `${o.amount} ${o.currency.toUpperCase()} (Stripe units)`;
    const state = o.status === 'pending' ? `<form method="post"><button>Pay ${amount}</button></form>` : `<p>This session is ${o.status}.</p>`;
    return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: `<!doctype html><title>Stripe sandbox checkout</title><h1>${o.subject.replace(/[<>&"]/g, '')}</h1>${state}` };
  }

  async function route(req: SandboxRequest, book: OrderBook, p: Json): Promise<SandboxResponse | null> {
    const key = `${req.method} ${req.path}`;
    let m: RegExpExecArray | null;
    if (key === 'POST /v1/checkout/sessions') return createSession(book, p);
    if (key === 'GET /v1/checkout/sessions') {
      const all = [...book.orders.values()]
        .filter((o) => {
          settleExpiry(book, o);
          const s = sessionJson(o, new Set());
          if (p.payment_intent !== undefined && s.payment_intent !== p.payment_intent) return false;
          if (p.status !== undefined && s.status !== p.status) return false;
          return inCreatedRange(extraOf(o).created_s, p);
        })
        .sort((a, b) => extraOf(b).created_s - extraOf(a).created_s || b.order_id.localeCompare(a.order_id))
        .map((o) => ({ ...sessionJson(o, new Set()), id: o.order_id }));
      return paginate(all, p, '/v1/checkout/sessions');
    }
    if ((m = /^GET \/v1\/checkout\/sessions\/([A-Za-z0-9_]+)$/.exec(key))) {
      const o = bySession(book, m[1] ?? '');
      if (!o) return missing('checkout.session', m[1] ?? '');
      settleExpiry(book, o);
      return json(200, sessionJson(o, new Set(list(p.expand).filter((x): x is string => typeof x === 'string'))));
    }
    if ((m = /^POST \/v1\/checkout\/sessions\/([A-Za-z0-9_]+)\/expire$/.exec(key))) {
      const o = bySession(book, m[1] ?? '');
      if (!o) return missing('checkout.session', m[1] ?? '');
      settleExpiry(book, o);
      if (o.status !== 'pending') return invalid(`Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${sessionJson(o, new Set()).status as string}".`);
      book.close(o.out_trade_no);
      return json(200, sessionJson(o, new Set()));
    }
    if (key === 'GET /v1/payment_intents/search') return searchPaymentIntents(book, p);
    if ((m = /^(GET|POST) \/v1\/payment_intents\/([A-Za-z0-9_]+)(\/cancel)?$/.exec(key))) {
      const piId = m[2] ?? '';
      const o = [...book.orders.values()].find((x) => extraOf(x).pi_id === piId && (x.status === 'succeeded' || extraOf(x).canceled));
      if (!o) return missing('payment_intent', piId);
      if (m[1] === 'GET' && !m[3]) return json(200, piJson(o, list(p.expand).includes('latest_charge')));
      if (m[1] === 'POST' && m[3]) {
        if (o.status === 'succeeded') return invalid('You cannot cancel this PaymentIntent because it has a status of succeeded.', undefined, 'payment_intent_unexpected_state');
        return json(200, piJson(o, false));
      }
      return null;
    }
    if (key === 'POST /v1/refunds') return refund(book, p);
    if (key === 'GET /v1/balance_transactions') {
      const expand = new Set(list(p.expand));
      const all = balanceTransactions(book)
        .filter((x) => p.type === undefined || x.bt.type === p.type)
        .filter((x) => inCreatedRange(x.bt.created as number, p))
        .map((x) => ({ ...x.bt, id: x.bt.id as string, source: expand.has('data.source.payment_intent') ? x.sourceWithPi() : expand.has('data.source') ? x.source() : x.bt.source }));
      return paginate(all, p, '/v1/balance_transactions');
    }
    if (key === 'POST /v1/webhook_endpoints') {
      const url = str(p.url);
      const events = list(p.enabled_events).filter((x): x is string => typeof x === 'string');
      if (!url || !/^https?:\/\//.test(url)) return invalid('Invalid URL.', 'url', 'url_invalid');
      if (events.length === 0) return invalid('Missing required param: enabled_events.', 'enabled_events');
      if (endpoints.length >= SANDBOX_WEBHOOK_ENDPOINTS_MAX) return invalid('Too many webhook endpoints.', 'url', 'webhook_endpoints_limit_reached');
      const ep: Endpoint = { id: randomId('we_'), url, enabled_events: events, created: S(Date.now()) };
      endpoints.push(ep);
      return json(200, { ...ep, object: 'webhook_endpoint', api_version: STRIPE_API_VERSION, livemode: false, status: 'enabled', secret: webhookSecret });
    }
    if (key === 'GET /v1/webhook_endpoints') {
      return paginate(endpoints.map((e) => ({ ...e, object: 'webhook_endpoint', status: 'enabled' })), p, '/v1/webhook_endpoints');
    }
    return null;
  }

  const spec: SandboxSpec = {
    channel: 'stripe',

    async handle(req, book) {
      const buyer = /^\/c\/pay\/([A-Za-z0-9_]+)$/.exec(req.path);
      if (buyer) return buyerPage(req, book, buyer[1] ?? '');
      if (req.path === '/c/success') return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: '<!doctype html><p>Paid. You may close this page.</p>' };
      if (!req.path.startsWith('/v1/')) return null;
      if (!authorized(req)) {
        return stripeError(401, 'invalid_request_error', 'Invalid API Key provided: sk_test_****. You can find your API keys at https://dashboard.stripe.com/apikeys.', 'api_key_invalid');
      }
      let params: Json;
      try {
        params = req.method === 'GET' ? formDecode(req.query.toString()) : formDecode(req.raw.toString('utf8'));
      } catch (err) {
        if (isStripeMappingError(err)) return invalid(err.message);
        throw err;
      }
      const idemKey = req.method === 'POST' ? req.headers['idempotency-key'] : undefined;
      if (typeof idemKey !== 'string') return route(req, book, params);
      // Stripe compares the parameters of a replay with the first request's.
      const fingerprint = `${req.path}\n${[...new URLSearchParams(req.raw.toString('utf8'))].map(([k, v]) => `${k}=${v}`).sort().join('&')}`;
      const seen = idempotency.get(idemKey);
      if (seen) {
        if (seen.fingerprint !== fingerprint) {
          return stripeError(400, 'idempotency_error', `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idemKey}' if you meant to execute a different request.`);
        }
        return { ...seen.res, headers: { ...(seen.res.headers ?? {}), 'idempotent-replayed': 'true' } };
      }
      const res = await route(req, book, params);
      // Like Stripe, an answer is kept once the request executed; validation failures are not.
      if (res && res.status >= 200 && res.status < 300) {
        idempotency.set(idemKey, { fingerprint, res });
        if (idempotency.size > SANDBOX_IDEMPOTENCY_KEYS_MAX) {
          const oldest = idempotency.keys().next().value;
          if (oldest !== undefined) idempotency.delete(oldest);
        }
      }
      return res;
    },

    systemError() {
      return stripeError(500, 'api_error', 'An unknown error occurred (sandbox fault injection).');
    },

    async callback(order, refund): Promise<OutgoingCallback> {
      const type = refund ? 'refund.created' : 'checkout.session.completed';
      const object = refund ? refundJson(order, refund) : sessionJson(order, new Set());
      const nowS = S(Date.now());
      const event = {
        id: randomId('evt_'),
        object: 'event',
        api_version: STRIPE_API_VERSION,
        created: nowS,
        data: { object },
        livemode: false,
        pending_webhooks: 1,
        request: { id: null, idempotency_key: null },
        type,
      };
      // Stripe sends its events pretty-printed; the signature covers these exact bytes.
      const body = JSON.stringify(event, null, 2);
      return {
        url: webhookUrlFor(type) ?? order.notify_url,
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
          'stripe-signature': stripeSignatureHeader(webhookSecret, nowS, body),
        },
        body,
      };
    },

    feeOf: fee,
  };

  const kit = new SandboxKit(spec);
  const url = await kit.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  baseUrl = url;
  const config: StripeConfig = {
    base_url: url,
    secret_key: secretKey,
    webhook_secret: webhookSecret,
    api_version: STRIPE_API_VERSION,
    success_url: `${url}/c/success?session_id={CHECKOUT_SESSION_ID}`,
    cancel_url: `${url}/c/success?canceled=1`,
    payment_method_types: ['card', 'alipay', 'wechat_pay'],
    bill_utc_offset_minutes: 0,
  };
  return {
    kit,
    url,
    config,
    setWebhookUrl(u) {
      defaultWebhookUrl = u;
    },
  };
}

/** The events a webhook endpoint for peakpay should enable. */
export const STRIPE_WEBHOOK_EVENTS = STRIPE_HANDLED_EVENTS;
