// A local PayPal REST API: OAuth2 client credentials (Basic auth checked, bearer tokens with an
// expiry), Orders v2 (create with PayPal-Request-Id replay, get, patch, capture), capture refunds,
// webhook registration, Transaction Search, and webhooks signed per PayPal's scheme with a
// self-signed certificate it serves itself (made at start with the openssl CLI).
//
// The buyer: GET <approve link> shows a page; POST to it approves the order (and redirects to
// return_url) without capturing, as a real buyer does; the kit's /__sandbox/pay (or book.pay)
// stands for "the buyer approves and the merchant captures" in one step and sends
// PAYMENT.CAPTURE.COMPLETED. A closed order (custom_id marked by the adapter) is never paid.
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { inlineCrypto } from '../crypto.ts';
import { type OrderBook, SandboxKit, type SandboxOrder, type SandboxRefund, type SandboxRequest, type SandboxResponse, type SandboxSpec } from '../sandbox-kit.ts';
import type { PaypalConfig } from './adapter.ts';
import { CLOSED_MARK_PREFIX, fromPaypalValue, paypalDecimals, toPaypalValue, webhookSigContent } from './transformers.ts';
import type { PaypalCapture, PaypalCreateOrderRequest, PaypalErrorBody, PaypalOrder, PaypalPatchOp, PaypalRefund, PaypalTransactionInfo, PaypalWebhookEvent } from './wire.ts';

/** PayPal's cross-border fee in the sandbox: 4.4%, rounded half up (the fixed per-transaction part is left out). */
export const PAYPAL_SANDBOX_FEE_PER_10K = 440;
export const paypalSandboxFee = (minor: number): number => Math.floor((minor * PAYPAL_SANDBOX_FEE_PER_10K + 5_000) / 10_000);
export const SANDBOX_TOKEN_TTL_S = 32_400;
export const SANDBOX_TOKENS_MAX = 10_000;
export const SANDBOX_REQUEST_IDS_MAX = 100_000;

const execFileAsync = promisify(execFile);

/** A self-signed certificate and its key, as PEM, from the openssl CLI. */
async function selfSignedCert(): Promise<{ certPem: string; keyPem: string }> {
  const { stdout } = await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', '-', '-out', '-', '-subj', '/CN=messageverificationcerts.sandbox.paypal.local', '-days', '30', '-sha256'], { timeout: 30_000 });
  const keyPem = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(stdout)?.[0];
  const certPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(stdout)?.[0];
  if (!keyPem || !certPem) throw new Error('paypal sandbox: openssl did not produce a key and certificate');
  return { certPem, keyPem };
}

const paypalId = (): string => randomBytes(12).toString('base64').replace(/[^A-Za-z0-9]/g, '').toUpperCase().slice(0, 17).padEnd(17, '7');

export async function startPaypalSandbox(opts: { port?: number; host?: string; webhookUrl?: string } = {}): Promise<{ kit: SandboxKit; url: string; config: PaypalConfig }> {
  const { certPem, keyPem } = await selfSignedCert();
  const clientId = `sb-${randomBytes(12).toString('hex')}`;
  const clientSecret = randomBytes(24).toString('base64url');
  const webhookId = `WH${randomBytes(8).toString('hex').toUpperCase()}`;
  const certPath = `/v1/notifications/certs/CERT-${randomBytes(12).toString('hex')}`;
  let webhookUrl = opts.webhookUrl ?? '';
  let base = '';
  const tokens = new Map<string, number>();
  /** Answers of POSTs by PayPal-Request-Id, replayed for the same id. */
  const replies = new Map<string, SandboxResponse>();
  const byOrderId = new Map<string, string>();

  const json = (status: number, body: unknown, headers: Record<string, string> = {}): SandboxResponse => ({ status, headers: { 'content-type': 'application/json', 'paypal-debug-id': randomBytes(6).toString('hex'), ...headers }, body: JSON.stringify(body) });
  const error = (status: number, name: string, issue: string, description: string): SandboxResponse =>
    json(status, { name, message: description, debug_id: randomBytes(6).toString('hex'), details: [{ issue, description }] } satisfies PaypalErrorBody);
  const unprocessable = (issue: string, description: string) => error(422, 'UNPROCESSABLE_ENTITY', issue, description);
  const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

  function remember<K, V>(m: Map<K, V>, k: K, v: V, max: number): void {
    m.set(k, v);
    while (m.size > max) m.delete(m.keys().next().value as K);
  }

  function authorized(req: SandboxRequest): boolean {
    const h = String(req.headers.authorization ?? '');
    if (!h.startsWith('Bearer ')) return false;
    const exp = tokens.get(h.slice(7));
    return exp !== undefined && exp > Date.now();
  }

  function money(o: SandboxOrder, minor: number) {
    return { currency_code: o.currency, value: toPaypalValue(minor, o.currency) };
  }

  function captureOf(o: SandboxOrder): PaypalCapture | null {
    if (o.status !== 'succeeded' || !o.trade_no) return null;
    const paid = o.paid_amount ?? o.amount;
    const refunded = o.refunds.reduce((s, r) => s + r.amount, 0);
    const fee = paypalSandboxFee(paid);
    return {
      id: o.trade_no,
      status: refunded === 0 ? 'COMPLETED' : refunded >= paid ? 'REFUNDED' : 'PARTIALLY_REFUNDED',
      amount: money(o, paid),
      final_capture: true,
      invoice_id: o.out_trade_no,
      custom_id: String(o.extra.custom_id),
      seller_receivable_breakdown: { gross_amount: money(o, paid), paypal_fee: { currency_code: o.currency, value: fee === 0 ? '0' : toPaypalValue(fee, o.currency) }, net_amount: paid - fee > 0 ? money(o, paid - fee) : undefined },
      supplementary_data: { related_ids: { order_id: o.order_id } },
      create_time: iso(o.paid_ms ?? Date.now()),
      update_time: iso(o.paid_ms ?? Date.now()),
      links: [{ href: `${base}/v2/payments/captures/${o.trade_no}`, rel: 'self', method: 'GET' }, { href: `${base}/v2/payments/captures/${o.trade_no}/refund`, rel: 'refund', method: 'POST' }],
    };
  }

  function refundOf(o: SandboxOrder, r: SandboxRefund): PaypalRefund {
    return {
      id: r.refund_id,
      status: 'COMPLETED',
      amount: money(o, r.amount),
      invoice_id: r.out_refund_no,
      custom_id: o.out_trade_no,
      create_time: iso(r.at_ms),
      update_time: iso(r.at_ms),
      links: [{ href: `${base}/v2/payments/refunds/${r.refund_id}`, rel: 'self', method: 'GET' }, { href: `${base}/v2/payments/captures/${o.trade_no}`, rel: 'up', method: 'GET' }],
    };
  }

  function orderOf(o: SandboxOrder): PaypalOrder {
    const status: PaypalOrder['status'] =
      o.status === 'succeeded' ? 'COMPLETED' : o.status === 'closed' && !String(o.extra.custom_id).startsWith(CLOSED_MARK_PREFIX) ? 'VOIDED' : o.extra.approved ? 'APPROVED' : o.extra.payment_source ? 'PAYER_ACTION_REQUIRED' : 'CREATED';
    const cap = captureOf(o);
    const approve = `${base}/checkoutnow?token=${o.order_id}`;
    return {
      id: o.order_id,
      intent: 'CAPTURE',
      status,
      purchase_units: [
        {
          reference_id: String(o.extra.reference_id),
          custom_id: String(o.extra.custom_id),
          invoice_id: o.out_trade_no,
          description: o.subject,
          amount: money(o, o.amount),
          payments: cap ? { captures: [cap], refunds: o.refunds.map((r) => refundOf(o, r)) } : undefined,
        },
      ],
      create_time: iso(o.created_ms),
      update_time: iso(o.paid_ms ?? o.created_ms),
      links: [
        { href: `${base}/v2/checkout/orders/${o.order_id}`, rel: 'self', method: 'GET' },
        ...(status === 'CREATED' ? [{ href: approve, rel: 'approve', method: 'GET' }] : status === 'PAYER_ACTION_REQUIRED' ? [{ href: approve, rel: 'payer-action', method: 'GET' }] : []),
        { href: `${base}/v2/checkout/orders/${o.order_id}`, rel: 'update', method: 'PATCH' },
        { href: `${base}/v2/checkout/orders/${o.order_id}/capture`, rel: 'capture', method: 'POST' },
      ],
    };
  }

  function body(req: SandboxRequest): unknown {
    if (req.raw.length === 0) return {};
    try {
      return JSON.parse(req.raw.toString('utf8')) as unknown;
    } catch {
      return undefined;
    }
  }

  function createOrder(req: SandboxRequest, book: OrderBook): SandboxResponse {
    const b = body(req) as PaypalCreateOrderRequest | undefined;
    const pu = b?.purchase_units?.[0];
    if (!b || b.intent !== 'CAPTURE' || !pu || b.purchase_units.length !== 1) return error(400, 'INVALID_REQUEST', 'MALFORMED_REQUEST_JSON', 'intent CAPTURE with one purchase unit expected');
    const currency = pu.amount?.currency_code ?? '';
    let dec: number;
    try {
      dec = paypalDecimals(currency);
    } catch {
      return unprocessable('CURRENCY_NOT_SUPPORTED', `currency ${currency} is not supported`);
    }
    const frac = (pu.amount?.value ?? '').split('.')[1] ?? '';
    if (frac.length > dec) return unprocessable('DECIMAL_PRECISION', `${currency} takes ${dec} decimals`);
    const amount = fromPaypalValue(pu.amount?.value ?? '', currency);
    if (amount === null || amount <= 0) return error(400, 'INVALID_REQUEST', 'INVALID_PARAMETER_VALUE', 'amount.value is not a positive amount');
    const invoice = pu.invoice_id ?? pu.reference_id ?? '';
    if (!invoice) return error(400, 'INVALID_REQUEST', 'MISSING_REQUIRED_PARAMETER', 'invoice_id is required by this sandbox');
    const existing = book.get(invoice);
    if (existing) return unprocessable('DUPLICATE_INVOICE_ID', 'invoice_id was used for another order');
    const ctx = b.payment_source?.paypal?.experience_context;
    const o = book.open({
      order_id: paypalId(),
      out_trade_no: invoice,
      amount,
      currency,
      subject: pu.description ?? '',
      notify_url: '',
      expires_ms: Date.now() + 72 * 3600_000,
      extra: { reference_id: pu.reference_id ?? 'default', custom_id: pu.custom_id ?? '', payment_source: ctx !== undefined, return_url: ctx?.return_url ?? null, approved: false },
    });
    byOrderId.set(o.order_id, o.out_trade_no);
    return json(201, orderOf(o));
  }

  function patchOrder(req: SandboxRequest, o: SandboxOrder): SandboxResponse {
    const ops = body(req) as PaypalPatchOp[] | undefined;
    if (!Array.isArray(ops) || ops.length === 0) return error(400, 'INVALID_REQUEST', 'MALFORMED_REQUEST_JSON', 'a JSON Patch array expected');
    if (o.status !== 'pending') return unprocessable('ORDER_ALREADY_COMPLETED', 'the order cannot be patched');
    for (const op of ops) {
      const m = /^\/purchase_units\/@reference_id=='([^']*)'\/custom_id$/.exec(op.path);
      if (!m || (op.op !== 'replace' && op.op !== 'add') || typeof op.value !== 'string') return unprocessable('PATCH_PATH_REQUIRED', 'this sandbox patches purchase_units[].custom_id only');
      if (m[1] !== o.extra.reference_id) return unprocessable('INVALID_PATCH_OPERATION', 'no purchase unit with that reference_id');
      o.extra.custom_id = op.value;
      // An order the adapter marked closed is one its merchant will never capture.
      if (op.value.startsWith(CLOSED_MARK_PREFIX)) o.status = 'closed';
    }
    return { status: 204, body: '' };
  }

  async function capture(o: SandboxOrder, book: OrderBook): Promise<SandboxResponse> {
    if (o.status === 'succeeded') return unprocessable('ORDER_ALREADY_CAPTURED', 'order already captured');
    if (o.status === 'closed' || !o.extra.approved) return unprocessable('ORDER_NOT_APPROVED', 'the payer has not approved the order');
    await book.pay(o.out_trade_no);
    return json(201, orderOf(o));
  }

  function refund(req: SandboxRequest, book: OrderBook, captureId: string): SandboxResponse {
    const o = [...book.orders.values()].find((x) => x.trade_no === captureId);
    if (!o) return error(404, 'RESOURCE_NOT_FOUND', 'INVALID_RESOURCE_ID', 'capture not found');
    const b = (body(req) ?? {}) as { amount?: { currency_code?: string; value?: string }; invoice_id?: string };
    const paid = o.paid_amount ?? o.amount;
    const refunded = o.refunds.reduce((s, r) => s + r.amount, 0);
    let amount = paid - refunded;
    if (b.amount) {
      if (b.amount.currency_code !== o.currency) return unprocessable('REFUND_CURRENCY_MISMATCH', 'refund currency is not the capture currency');
      const a = fromPaypalValue(b.amount.value ?? '', o.currency);
      if (a === null || a <= 0) return error(400, 'INVALID_REQUEST', 'INVALID_PARAMETER_VALUE', 'amount.value');
      amount = a;
    }
    const r = book.refund(o.out_trade_no, b.invoice_id ?? `rf_${randomBytes(6).toString('hex')}`, amount);
    if (r === 'unknown') return error(404, 'RESOURCE_NOT_FOUND', 'INVALID_RESOURCE_ID', 'capture not found');
    if (r === 'not_paid') return unprocessable('CAPTURE_FULLY_REFUNDED', 'the capture cannot be refunded');
    if (r === 'too_much') return unprocessable(refunded >= paid ? 'CAPTURE_FULLY_REFUNDED' : 'REFUND_AMOUNT_EXCEEDED', 'the refund amount is more than what is left');
    return json(201, refundOf(o, r));
  }

  function transactions(req: SandboxRequest, book: OrderBook): SandboxResponse {
    const from = Date.parse(req.query.get('start_date') ?? '');
    const to = Date.parse(req.query.get('end_date') ?? '');
    if (!Number.isFinite(from) || !Number.isFinite(to) || to < from || to - from > 31 * 86_400_000) return error(400, 'INVALID_REQUEST', 'INVALID_DATE_RANGE', 'start_date/end_date');
    const pageSize = Math.min(500, Math.max(1, Number(req.query.get('page_size') ?? '100') || 100));
    const page = Math.max(1, Number(req.query.get('page') ?? '1') || 1);
    const rows: PaypalTransactionInfo[] = [];
    const within = (ms: number) => ms >= from && ms <= to + 999;
    for (const o of book.orders.values()) {
      if (o.paid_ms !== null && o.trade_no && within(o.paid_ms)) {
        const paid = o.paid_amount ?? o.amount;
        const fee = paypalSandboxFee(paid);
        rows.push({ transaction_id: o.trade_no, transaction_event_code: 'T0006', transaction_initiation_date: iso(o.paid_ms).replace('Z', '+0000'), transaction_amount: money(o, paid), fee_amount: { currency_code: o.currency, value: fee === 0 ? '0' : `-${toPaypalValue(fee, o.currency)}` }, transaction_status: 'S', invoice_id: o.out_trade_no, custom_field: String(o.extra.custom_id) });
      }
      for (const r of o.refunds) {
        if (!within(r.at_ms)) continue;
        rows.push({ transaction_id: r.refund_id, transaction_event_code: 'T1107', transaction_initiation_date: iso(r.at_ms).replace('Z', '+0000'), transaction_amount: { currency_code: o.currency, value: `-${toPaypalValue(r.amount, o.currency)}` }, fee_amount: { currency_code: o.currency, value: '0' }, transaction_status: 'S', invoice_id: r.out_refund_no, custom_field: o.out_trade_no, paypal_reference_id: o.trade_no ?? undefined, paypal_reference_id_type: 'TXN' });
      }
    }
    const totalPages = Math.max(1, Math.ceil(rows.length / pageSize));
    return json(200, { transaction_details: rows.slice((page - 1) * pageSize, page * pageSize).map((t) => ({ transaction_info: t })), account_number: 'SANDBOXMERCHANT1', start_date: req.query.get('start_date'), end_date: req.query.get('end_date'), page, total_items: rows.length, total_pages: totalPages });
  }

  async function handleApi(req: SandboxRequest, book: OrderBook): Promise<SandboxResponse | null> {
    const key = `${req.method} ${req.path}`;
    if (key === 'POST /v1/oauth2/token') {
      const expect = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
      if (req.headers.authorization !== expect) return json(401, { error: 'invalid_client', error_description: 'Client Authentication failed' });
      if (new URLSearchParams(req.raw.toString('utf8')).get('grant_type') !== 'client_credentials') return json(400, { error: 'unsupported_grant_type', error_description: 'Grant Type is NULL' });
      const t = `A21AA${randomBytes(32).toString('base64url')}`;
      remember(tokens, t, Date.now() + SANDBOX_TOKEN_TTL_S * 1000, SANDBOX_TOKENS_MAX);
      return json(200, { scope: 'https://uri.paypal.com/services/payments/payment', access_token: t, token_type: 'Bearer', app_id: 'APP-SANDBOX', expires_in: SANDBOX_TOKEN_TTL_S, nonce: `${iso(Date.now())}${randomBytes(8).toString('hex')}` });
    }
    if (!authorized(req)) return json(401, { error: 'invalid_token', error_description: 'Token signature verification failed' });

    // PayPal-Request-Id: the same id on the same POST replays the first answer.
    const requestId = req.method === 'POST' ? req.headers['paypal-request-id'] : undefined;
    const replayKey = typeof requestId === 'string' ? `${key} ${requestId}` : null;
    if (replayKey) {
      const seen = replies.get(replayKey);
      if (seen) return seen.status === 201 ? { ...seen, status: 200 } : seen;
    }
    const out = await route(req, book, key);
    if (replayKey && out && out.status < 500) remember(replies, replayKey, out, SANDBOX_REQUEST_IDS_MAX);
    return out;
  }

  async function route(req: SandboxRequest, book: OrderBook, key: string): Promise<SandboxResponse | null> {
    if (key === 'POST /v2/checkout/orders') return createOrder(req, book);
    if (key === 'POST /v1/notifications/webhooks') {
      const b = body(req) as { url?: string; event_types?: unknown } | undefined;
      if (!b || typeof b.url !== 'string') return error(400, 'INVALID_REQUEST', 'MISSING_REQUIRED_PARAMETER', 'url');
      webhookUrl = b.url;
      return json(201, { id: webhookId, url: b.url, event_types: b.event_types ?? [{ name: '*' }] });
    }
    if (key === 'GET /v1/reporting/transactions') return transactions(req, book);
    let m = /^\/v2\/checkout\/orders\/([^/]+)(\/capture)?$/.exec(req.path);
    if (m) {
      const outTradeNo = byOrderId.get(decodeURIComponent(m[1]!));
      const o = outTradeNo ? book.get(outTradeNo) : undefined;
      if (!o) return error(404, 'RESOURCE_NOT_FOUND', 'INVALID_RESOURCE_ID', 'Specified resource ID does not exist.');
      if (m[2] && req.method === 'POST') return capture(o, book);
      if (!m[2] && req.method === 'GET') return json(200, orderOf(o));
      if (!m[2] && req.method === 'PATCH') return patchOrder(req, o);
      return null;
    }
    m = /^\/v2\/payments\/captures\/([^/]+)\/refund$/.exec(req.path);
    if (m && req.method === 'POST') return refund(req, book, decodeURIComponent(m[1]!));
    return null;
  }

  /** The buyer's side: the approve page, and approving it. */
  async function checkout(req: SandboxRequest, book: OrderBook): Promise<SandboxResponse | null> {
    const outTradeNo = byOrderId.get(req.query.get('token') ?? '');
    const o = outTradeNo ? book.get(outTradeNo) : undefined;
    if (!o) return { status: 404, headers: { 'content-type': 'text/html' }, body: '<html><body>This checkout session has expired.</body></html>' };
    if (req.method === 'GET') return { status: 200, headers: { 'content-type': 'text/html' }, body: `<html><body>PayPal sandbox: ${o.currency} ${toPaypalValue(o.amount, o.currency)} <form method="post"><button>Pay Now</button></form></body></html>` };
    if (req.method !== 'POST' || o.status !== 'pending') return { status: 409, headers: { 'content-type': 'text/html' }, body: '<html><body>This order can no longer be approved.</body></html>' };
    o.extra.approved = true;
    void kit.sendCallback(o, null);
    const ret = o.extra.return_url ? `${String(o.extra.return_url)}${String(o.extra.return_url).includes('?') ? '&' : '?'}token=${o.order_id}&PayerID=SANDBOXBUYER1` : null;
    return ret ? { status: 302, headers: { location: ret }, body: '' } : { status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>Approved.</body></html>' };
  }

  function event(o: SandboxOrder, refund: SandboxRefund | null): PaypalWebhookEvent {
    const common = { id: `WH-${randomBytes(9).toString('hex').toUpperCase()}`, event_version: '1.0', create_time: iso(Date.now()), resource_version: '2.0', links: [] };
    if (refund) return { ...common, resource_type: 'refund', event_type: 'PAYMENT.CAPTURE.REFUNDED', summary: `A ${o.currency} ${toPaypalValue(refund.amount, o.currency)} capture payment was refunded`, resource: refundOf(o, refund) as unknown as Record<string, unknown> };
    const cap = captureOf(o);
    if (cap) return { ...common, resource_type: 'capture', event_type: 'PAYMENT.CAPTURE.COMPLETED', summary: `Payment completed for ${o.currency} ${cap.amount.value}`, resource: cap as unknown as Record<string, unknown> };
    return { ...common, resource_type: 'checkout-order', event_type: 'CHECKOUT.ORDER.APPROVED', summary: 'An order has been approved by buyer', resource: orderOf(o) as unknown as Record<string, unknown> };
  }

  const spec: SandboxSpec = {
    channel: 'paypal',
    async handle(req, book) {
      if (req.path === certPath && req.method === 'GET') return { status: 200, headers: { 'content-type': 'application/x-pem-file' }, body: certPem };
      if (req.path === '/checkoutnow') return checkout(req, book);
      if (req.path.startsWith('/v1/') || req.path.startsWith('/v2/')) return handleApi(req, book);
      return null;
    },
    systemError() {
      return json(500, { name: 'INTERNAL_SERVER_ERROR', message: 'An internal server error has occurred.', debug_id: randomBytes(6).toString('hex'), links: [{ href: 'https://developer.paypal.com/api/rest/reference/orders/v2/errors/#INTERNAL_SERVER_ERROR', rel: 'information_link' }] });
    },
    async callback(order, refund) {
      const bodyText = JSON.stringify(event(order, refund));
      const transmissionId = randomUUID();
      const transmissionTime = iso(Date.now());
      const sig = await inlineCrypto.rsaSign(keyPem, webhookSigContent(transmissionId, transmissionTime, webhookId, Buffer.from(bodyText)));
      return {
        url: webhookUrl || order.notify_url,
        headers: {
          'content-type': 'application/json',
          'paypal-transmission-id': transmissionId,
          'paypal-transmission-time': transmissionTime,
          'paypal-transmission-sig': sig,
          'paypal-cert-url': `${base}${certPath}`,
          'paypal-auth-algo': 'SHA256withRSA',
          'paypal-auth-version': 'v2',
        },
        body: bodyText,
      };
    },
    feeOf: paypalSandboxFee,
  };

  const kit = new SandboxKit(spec);
  const url = await kit.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  base = url;
  const config: PaypalConfig = { baseUrl: url, clientId, clientSecret, webhookId, certOrigins: [new URL(url).origin] };
  return { kit, url, config };
}

export type PaypalSandbox = Awaited<ReturnType<typeof startPaypalSandbox>>;
