// The PayPal adapter: OAuth2 client credentials (token cached until shortly before expiry),
// Orders v2 with intent CAPTURE, PayPal-Request-Id on every POST, captures on query of an approved
// order, refunds on the capture, offline webhook verification (notify.ts) with certificates
// fetched only from allow-listed origins, and the day's transactions from Transaction Search.
//
// Order ids: PayPal assigns the order id and cannot look an order up by our out_trade_no (it is
// the order's invoice_id, but no Orders API searches by it). The adapter therefore returns the id
// as channel_order_id, accepts it back as an optional second argument of queryOrder/closeOrder
// and as `channel_order_id` on a refund request, and otherwise asks an PaypalOrderIdStore (an
// in-memory bounded map unless the engine gives a durable one). The change to the ChannelAdapter
// contract we propose is to pass channel_order_id to those three calls; see docs/CHANNELS.md.
import { X509Certificate } from 'node:crypto';
import type {
  BillLine,
  ChannelAdapter,
  ChannelCrypto,
  ChannelOrder,
  ChannelOrderRequest,
  ChannelOrderState,
  ChannelRefundRequest,
  ChannelRefundState,
  RawHeaders,
} from '../types.ts';
import { CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT, ChannelError, NOTIFY_WINDOW_MS } from '../types.ts';
import { paypalNotifyAnswer, verifyPaypalWebhook } from './notify.ts';
import { billLines, captureOf, closedMark, isRefundStatus, mapRefundStatus, orderState, toCreateOrderBody, toPaypalValue } from './transformers.ts';
import type { PaypalErrorBody, PaypalOrder, PaypalRefund, PaypalTokenResponse, PaypalTransactionSearchResponse } from './wire.ts';

/** Plain JSON, loadable from a file or the environment. */
export type PaypalConfig = {
  /** https://api-m.paypal.com (live), https://api-m.sandbox.paypal.com, or our sandbox. */
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  /** The id PayPal gave the webhook registered for <public base>/v1/notify/paypal. */
  webhookId: string;
  /** Origins webhook certificates may be fetched from: PAYPAL_CERT_ORIGINS_LIVE in production. */
  certOrigins: string[];
  brandName?: string;
  notifyWindowMs?: number;
};

export const PAYPAL_CERT_ORIGINS_LIVE = ['https://api.paypal.com', 'https://api.sandbox.paypal.com'];

/** out_trade_no → PayPal order id, for calls that only get our id. */
export interface PaypalOrderIdStore {
  get(outTradeNo: string): Promise<string | null>;
  set(outTradeNo: string, orderId: string): Promise<void>;
}

export const ORDER_IDS_MEMORY_MAX = 100_000;

/** The default store: bounded, oldest entries dropped first, gone on restart. */
export function memoryOrderIdStore(max = ORDER_IDS_MEMORY_MAX): PaypalOrderIdStore {
  const m = new Map<string, string>();
  return {
    async get(k) {
      return m.get(k) ?? null;
    },
    async set(k, v) {
      m.delete(k);
      m.set(k, v);
      while (m.size > max) m.delete(m.keys().next().value as string);
    },
  };
}

export type PaypalDeps = { crypto: ChannelCrypto; fetch?: typeof fetch; timeoutMs?: number; orderIds?: PaypalOrderIdStore };

/** A token is renewed this long before PayPal says it expires. */
export const TOKEN_REFRESH_MARGIN_MS = 60_000;
export const CERT_CACHE_SIZE_MAX = 64;
export const CERT_CACHE_TTL_MS = 24 * 3600_000;
export const CERT_BYTES_MAX = 64 * 1024;
export const PAYPAL_RESPONSE_BYTES_MAX = 8 * 1024 * 1024;
export const BILL_PAGES_MAX = 200;
export const BILL_PAGE_SIZE = 500;

/** A refund request that may carry the PayPal order id the engine kept from createOrder. */
export type PaypalRefundRequest = ChannelRefundRequest & { channel_order_id?: string | null };

export type PaypalAdapter = ChannelAdapter & {
  queryOrder(outTradeNo: string, channelOrderId?: string | null): Promise<ChannelOrderState>;
  closeOrder(outTradeNo: string, channelOrderId?: string | null): Promise<void>;
  refund(req: PaypalRefundRequest): Promise<ChannelRefundState>;
};

type Answer<T> = { status: number; body: T | PaypalErrorBody | null };

const issueOf = (b: unknown): string | null => {
  const e = b as PaypalErrorBody | null;
  return e?.details?.[0]?.issue ?? e?.name ?? null;
};

export function createPaypalAdapter(config: PaypalConfig, deps: PaypalDeps): PaypalAdapter {
  const doFetch = deps.fetch ?? fetch;
  const timeoutMs = deps.timeoutMs ?? CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT;
  const orderIds = deps.orderIds ?? memoryOrderIdStore();
  const base = config.baseUrl.replace(/\/+$/, '');
  let token: { value: string; renewAtMs: number } | null = null;
  let tokenInFlight: Promise<string> | null = null;
  const certs = new Map<string, { key: Promise<string>; expiresMs: number }>();

  async function send(url: string, init: RequestInit, what: string): Promise<{ status: number; text: string }> {
    let res: Response;
    try {
      res = await doFetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') throw new ChannelError('paypal', 'timeout', `${what}: no answer within ${timeoutMs} ms`, { cause: err });
      throw new ChannelError('paypal', 'unavailable', `${what}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const buf = Buffer.from(await res.arrayBuffer());
      if (buf.length > PAYPAL_RESPONSE_BYTES_MAX) throw new ChannelError('paypal', 'bad_response', `${what}: answer too large`);
      return { status: res.status, text: buf.toString('utf8') };
    } catch (err) {
      if (err instanceof ChannelError) throw err;
      const name = (err as Error).name;
      throw new ChannelError('paypal', name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'unavailable', `${what}: answer cut off`, { cause: err });
    }
  }

  async function fetchToken(): Promise<string> {
    const basic = Buffer.from(`${config.clientId}:${config.clientSecret}`).toString('base64');
    const { status, text } = await send(`${base}/v1/oauth2/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: 'grant_type=client_credentials',
    }, 'oauth2/token');
    if (status >= 500 || status === 429) throw new ChannelError('paypal', 'unavailable', `oauth2/token: HTTP ${status}`);
    if (status !== 200) throw new ChannelError('paypal', 'rejected', `oauth2/token: HTTP ${status} (client credentials refused)`, { channelCode: 'invalid_client' });
    let t: PaypalTokenResponse;
    try {
      t = JSON.parse(text) as PaypalTokenResponse;
    } catch (err) {
      throw new ChannelError('paypal', 'bad_response', 'oauth2/token: not JSON', { cause: err });
    }
    if (typeof t.access_token !== 'string' || typeof t.expires_in !== 'number') throw new ChannelError('paypal', 'bad_response', 'oauth2/token: no access_token');
    token = { value: t.access_token, renewAtMs: Date.now() + t.expires_in * 1000 - TOKEN_REFRESH_MARGIN_MS };
    return t.access_token;
  }

  /** The cached bearer token; one request for a new one however many calls wait for it. */
  function bearer(): Promise<string> {
    if (token && Date.now() < token.renewAtMs) return Promise.resolve(token.value);
    tokenInFlight ??= fetchToken().finally(() => {
      tokenInFlight = null;
    });
    return tokenInFlight;
  }

  /** One API call; a 401 renews the token and tries once more. 5xx/429 are outages, other statuses the caller's. */
  async function api<T>(method: string, path: string, opts: { body?: unknown; requestId?: string } = {}): Promise<Answer<T>> {
    for (let attempt = 1; ; attempt++) {
      const headers: Record<string, string> = { authorization: `Bearer ${await bearer()}`, accept: 'application/json', prefer: 'return=representation' };
      if (opts.body !== undefined) headers['content-type'] = 'application/json';
      if (opts.requestId) headers['paypal-request-id'] = opts.requestId;
      const { status, text } = await send(`${base}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) }, `${method} ${path}`);
      if (status === 401 && attempt === 1) {
        token = null;
        continue;
      }
      if (status >= 500 || status === 429) throw new ChannelError('paypal', 'unavailable', `${method} ${path}: HTTP ${status}`, { channelCode: issueOf(safeJson(text)) });
      if (status === 401 || status === 403) throw new ChannelError('paypal', 'rejected', `${method} ${path}: HTTP ${status}`, { channelCode: issueOf(safeJson(text)) ?? 'NOT_AUTHORIZED' });
      if (text === '') return { status, body: null };
      const body = safeJson(text);
      if (body === undefined) throw new ChannelError('paypal', 'bad_response', `${method} ${path}: not JSON`);
      return { status, body: body as T | PaypalErrorBody };
    }
  }

  const fail = (what: string, a: Answer<unknown>): ChannelError =>
    new ChannelError('paypal', a.status === 404 ? 'not_found' : 'rejected', `${what}: HTTP ${a.status} ${issueOf(a.body) ?? ''}`.trim(), { channelCode: issueOf(a.body) });

  async function orderIdOf(outTradeNo: string, hint?: string | null): Promise<string> {
    const id = hint ?? (await orderIds.get(outTradeNo));
    if (!id) throw new ChannelError('paypal', 'not_found', `no PayPal order id known for ${outTradeNo} (pass channel_order_id)`, { channelCode: 'PAYPAL_ORDER_ID_UNKNOWN' });
    return id;
  }

  async function getOrder(orderId: string): Promise<PaypalOrder> {
    const a = await api<PaypalOrder>('GET', `/v2/checkout/orders/${encodeURIComponent(orderId)}`);
    if (a.status !== 200) throw fail('get order', a);
    return a.body as PaypalOrder;
  }

  function stateOf(order: PaypalOrder, outTradeNo: string): ChannelOrderState {
    const s = orderState(order, outTradeNo);
    if (!s) throw new ChannelError('paypal', 'bad_response', `order ${order.id} is not readable as ${outTradeNo}'s`);
    return s;
  }

  async function query(outTradeNo: string, channelOrderId?: string | null): Promise<ChannelOrderState> {
    const id = await orderIdOf(outTradeNo, channelOrderId);
    const order = await getOrder(id);
    const state = stateOf(order, outTradeNo);
    if (order.status !== 'APPROVED' || state.status !== 'pending') return state;
    // The buyer approved and the order is not closed: capture now, idempotently per order.
    const a = await api<PaypalOrder>('POST', `/v2/checkout/orders/${encodeURIComponent(id)}/capture`, { body: {}, requestId: `capture-${id}` });
    if (a.status === 200 || a.status === 201) return stateOf(a.body as PaypalOrder, outTradeNo);
    if (a.status === 422) return stateOf(await getOrder(id), outTradeNo); // e.g. ORDER_ALREADY_CAPTURED, INSTRUMENT_DECLINED (the buyer may retry)
    throw fail('capture', a);
  }

  async function certKey(certUrl: string): Promise<string> {
    const now = Date.now();
    const hit = certs.get(certUrl);
    if (hit && hit.expiresMs > now) return hit.key;
    const key = (async () => {
      const { status, text } = await send(certUrl, { method: 'GET' }, 'webhook certificate');
      if (status !== 200 || text.length > CERT_BYTES_MAX) throw new ChannelError('paypal', 'unavailable', `webhook certificate: HTTP ${status}`);
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(text);
      } catch (err) {
        throw new ChannelError('paypal', 'bad_response', 'webhook certificate: not a PEM certificate', { cause: err });
      }
      const t = Date.now();
      if (Date.parse(cert.validFrom) > t || Date.parse(cert.validTo) < t) throw new ChannelError('paypal', 'bad_response', 'webhook certificate: outside its validity');
      return cert.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    })();
    if (certs.size >= CERT_CACHE_SIZE_MAX) certs.delete(certs.keys().next().value as string);
    certs.set(certUrl, { key, expiresMs: now + CERT_CACHE_TTL_MS });
    key.catch(() => certs.delete(certUrl)); // a failed fetch is not cached
    return key;
  }

  const webhookKeys = {
    webhookId: config.webhookId,
    certOrigins: config.certOrigins,
    windowMs: config.notifyWindowMs ?? NOTIFY_WINDOW_MS,
    certPublicKey: certKey,
  };

  return {
    name: 'paypal',

    async createOrder(req: ChannelOrderRequest): Promise<ChannelOrder> {
      const body = toCreateOrderBody(req, config.brandName);
      // The same request id for the same out_trade_no: a retried create returns the same order.
      const a = await api<PaypalOrder>('POST', '/v2/checkout/orders', { body, requestId: `order-${req.out_trade_no}` });
      if (a.status !== 200 && a.status !== 201) throw fail('create order', a);
      const order = a.body as PaypalOrder;
      const link = order.links?.find((l) => l.rel === 'payer-action' || l.rel === 'approve');
      if (typeof order.id !== 'string' || !link) throw new ChannelError('paypal', 'bad_response', 'create order: no id or approve link');
      await orderIds.set(req.out_trade_no, order.id);
      return { channel_order_id: order.id, next_action: { type: 'redirect', url: link.href } };
    },

    queryOrder: query,

    async closeOrder(outTradeNo: string, channelOrderId?: string | null): Promise<void> {
      let id: string;
      try {
        id = await orderIdOf(outTradeNo, channelOrderId);
      } catch {
        return; // we never opened it, or not in this process's memory: nothing of ours can capture it
      }
      for (let attempt = 1; attempt <= 2; attempt++) {
        let order: PaypalOrder;
        try {
          order = await getOrder(id);
        } catch (err) {
          if (err instanceof ChannelError && err.code === 'not_found') return;
          throw err;
        }
        const state = stateOf(order, outTradeNo);
        if (state.status === 'succeeded') throw new ChannelError('paypal', 'order_paid', `order ${id} is captured`, { channelCode: order.status });
        if (state.status === 'closed' || state.status === 'failed' || order.status === 'COMPLETED') return;
        const ref = order.purchase_units?.[0]?.reference_id ?? outTradeNo;
        const a = await api<null>('PATCH', `/v2/checkout/orders/${encodeURIComponent(id)}`, {
          body: [{ op: 'replace', path: `/purchase_units/@reference_id=='${ref}'/custom_id`, value: closedMark(outTradeNo) }],
        });
        if (a.status === 204 || a.status === 200) return;
        if (a.status !== 422) throw fail('close (patch)', a);
        // 422: the order changed under us (captured or completed); look again.
      }
      throw new ChannelError('paypal', 'rejected', `close: order ${id} could not be marked closed`);
    },

    async refund(req: PaypalRefundRequest): Promise<ChannelRefundState> {
      const order = await getOrder(await orderIdOf(req.out_trade_no, req.channel_order_id));
      const cap = captureOf(order);
      if (!cap || (cap.status !== 'COMPLETED' && cap.status !== 'PARTIALLY_REFUNDED')) throw new ChannelError('paypal', 'rejected', `refund: ${req.out_trade_no} has no refundable capture`, { channelCode: cap?.status ?? order.status });
      if (cap.amount.currency_code !== req.currency) throw new ChannelError('paypal', 'rejected', `refund: currency ${req.currency} is not the capture's ${cap.amount.currency_code}`);
      const body: Record<string, unknown> = { amount: { currency_code: req.currency, value: toPaypalValue(req.amount, req.currency) }, invoice_id: req.out_refund_no, custom_id: req.out_trade_no };
      if (req.reason) body.note_to_payer = req.reason.slice(0, 255);
      const a = await api<PaypalRefund>('POST', `/v2/payments/captures/${encodeURIComponent(cap.id)}/refund`, { body, requestId: `refund-${req.out_refund_no}` });
      if (a.status !== 200 && a.status !== 201) throw fail('refund', a);
      const r = a.body as PaypalRefund;
      if (typeof r.id !== 'string' || !isRefundStatus(r.status)) throw new ChannelError('paypal', 'bad_response', 'refund: no id or status');
      return { out_refund_no: req.out_refund_no, status: mapRefundStatus(r.status), channel_refund_id: r.id, amount: req.amount };
    },

    verifyNotify(raw: Buffer, headers: RawHeaders, nowMs: number) {
      return verifyPaypalWebhook(raw, headers, nowMs, webhookKeys, deps.crypto);
    },

    notifyAnswer: paypalNotifyAnswer,

    async downloadBill(day: string): Promise<BillLine[]> {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new ChannelError('paypal', 'rejected', `bill day ${day} is not YYYY-MM-DD`);
      // The day in Asia/Shanghai, like the other channels' bills.
      const q = new URLSearchParams({ start_date: `${day}T00:00:00+08:00`, end_date: `${day}T23:59:59+08:00`, fields: 'transaction_info', page_size: String(BILL_PAGE_SIZE) });
      const rows = [];
      for (let page = 1; page <= BILL_PAGES_MAX; page++) {
        q.set('page', String(page));
        const a = await api<PaypalTransactionSearchResponse>('GET', `/v1/reporting/transactions?${q.toString()}`);
        if (a.status !== 200) throw fail('transaction search', a);
        const r = a.body as PaypalTransactionSearchResponse;
        if (!Array.isArray(r.transaction_details)) throw new ChannelError('paypal', 'bad_response', 'transaction search: no transaction_details');
        rows.push(...r.transaction_details.map((d) => d.transaction_info));
        if (page >= (r.total_pages ?? 1)) return billLines(rows);
      }
      throw new ChannelError('paypal', 'bad_response', `transaction search: more than ${BILL_PAGES_MAX} pages`);
    },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
