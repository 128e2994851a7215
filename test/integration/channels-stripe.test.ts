// Stripe adapter against its sandbox over real HTTP, and both against the official stripe
// package (code no one here wrote): stripe.webhooks.constructEvent must accept the events our
// sandbox signs and refuse them tampered, and the stripe client itself (pointed at the sandbox
// with host/port/protocol) must be able to create and retrieve a Checkout Session.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inlineCrypto } from '../../engine/channels/crypto.ts';
import type { SandboxKit } from '../../engine/channels/sandbox-kit.ts';
import { createStripeAdapter, registerStripeWebhookEndpoint, startStripeSandbox, STRIPE_WEBHOOK_EVENTS, type StripeConfig } from '../../engine/channels/stripe/index.ts';
import { ChannelError, type ChannelAdapter, type ChannelNotification, type ChannelOrderRequest } from '../../engine/channels/types.ts';
import { uniqueId, waitFor } from '../helpers.ts';

type Captured = { raw: Buffer; headers: IncomingHttpHeaders; path: string };

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ChannelError) return err.code;
    throw err;
  }
  return 'ok';
}

describe('stripe adapter ↔ sandbox', () => {
  let kit: SandboxKit;
  let config: StripeConfig;
  let adapter: ChannelAdapter;
  let setWebhookUrl: (u: string | null) => void;
  let receiver: Server;
  let receiverUrl: string;
  const captured: Captured[] = [];
  /** A second adapter with no memory of the sessions the first created: the stateless lookups. */
  let fresh: () => ChannelAdapter;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        captured.push({ raw, headers: req.headers, path: req.url ?? '' });
        adapter.verifyNotify(raw, req.headers, Date.now()).then(
          () => adapter.notifyAnswer(true),
          () => adapter.notifyAnswer(false),
        ).then((a) => res.writeHead(a.status, a.headers).end(a.body));
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    const sb = await startStripeSandbox({ webhookUrl: `${receiverUrl}/v1/notify/stripe` });
    kit = sb.kit;
    config = sb.config;
    setWebhookUrl = sb.setWebhookUrl;
    adapter = createStripeAdapter(config, { crypto: inlineCrypto, timeoutMs: 1_000 });
    fresh = () => createStripeAdapter(config, { crypto: inlineCrypto, timeoutMs: 1_000 });
  });

  afterAll(async () => {
    await kit.close();
    receiver.closeAllConnections();
    await new Promise((r) => receiver.close(r));
  });

  afterEach(() => kit.setFaults({ outage: false, latencyMs: 0, errorRate: 0, dropCallbacks: false }));

  const order = (over: Partial<ChannelOrderRequest> = {}): ChannelOrderRequest => ({
    out_trade_no: uniqueId('pay'),
    amount: 1999,
    currency: 'USD',
    subject: 'Game card 100',
    scene: 'pc',
    client_ip: '203.0.113.9',
    notify_url: `${receiverUrl}/v1/notify/stripe`,
    expires_at_ms: Date.now() + 60 * 60_000,
    ...over,
  });

  /** The bills of the UTC days (bill_utc_offset_minutes 0) on which these orders and their refunds were paid. */
  async function billOfDaysOf(outTradeNos: string[]) {
    const days = new Set<string>();
    for (const id of outTradeNos) {
      const o = kit.book.get(id);
      for (const ms of [o?.paid_ms ?? null, ...(o?.refunds ?? []).map((r) => r.at_ms)]) if (ms !== null) days.add(new Date(ms).toISOString().slice(0, 10));
    }
    return (await Promise.all([...days].map((d) => adapter.downloadBill(d)))).flat();
  }

  const callbackFor = (outTradeNo: string, kind: ChannelNotification['kind']) =>
    waitFor(`${kind} callback of ${outTradeNo}`, async () => {
      for (const c of captured) {
        const n = await adapter.verifyNotify(c.raw, c.headers, Date.now()).catch(() => null);
        if (n && n.kind === kind && n.out_trade_no === outTradeNo) return { n, c };
      }
      return null;
    });

  it('creates a Checkout Session and answers with its redirect; a retry opens no second session', async () => {
    const req = order();
    const created = await adapter.createOrder(req);
    expect(created.channel_order_id).toMatch(/^cs_test_/);
    expect(created.next_action).toEqual({ type: 'redirect', url: `${config.base_url}/c/pay/${created.channel_order_id}` });
    expect(await adapter.createOrder(req)).toEqual(created);
    // The same out_trade_no with another amount reuses the Idempotency-Key: Stripe refuses it.
    const err = await adapter.createOrder({ ...req, amount: 2999 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelError);
    expect(err).toMatchObject({ code: 'rejected', channelCode: 'idempotency_error' });
    expect([...kit.book.orders.values()].filter((o) => o.out_trade_no === req.out_trade_no)).toHaveLength(1);
  });

  it('queries a pending order, from this process and statelessly from another', async () => {
    const req = order();
    await adapter.createOrder(req);
    const want = { out_trade_no: req.out_trade_no, status: 'pending', amount: 1999, currency: 'USD', channel_trade_no: null, paid_at_ms: null };
    expect(await adapter.queryOrder(req.out_trade_no)).toEqual(want);
    expect(await fresh().queryOrder(req.out_trade_no)).toEqual(want);
    expect(await codeOf(adapter.queryOrder(uniqueId('pay')))).toBe('not_found');
  });

  it('pays: the callback verifies with the adapter and with stripe.webhooks.constructEvent, the query says succeeded', async () => {
    const req = order();
    await adapter.createOrder(req);
    await kit.book.pay(req.out_trade_no);
    const { n, c } = await callbackFor(req.out_trade_no, 'payment');
    expect(n).toMatchObject({ kind: 'payment', out_trade_no: req.out_trade_no, status: 'succeeded', amount: 1999, currency: 'USD' });
    expect(n.notification_id).toMatch(/^evt_/);
    expect(c.path).toBe('/v1/notify/stripe');

    const header = c.headers['stripe-signature'] as string;
    const ev = Stripe.webhooks.constructEvent(c.raw, header, config.webhook_secret);
    expect(ev.type).toBe('checkout.session.completed');
    expect((ev.data.object as { client_reference_id: string }).client_reference_id).toBe(req.out_trade_no);
    const tampered = Buffer.from(c.raw.toString('utf8').replace('"amount_total": 1999', '"amount_total": 1'));
    expect(tampered.equals(c.raw)).toBe(false);
    expect(() => Stripe.webhooks.constructEvent(tampered, header, config.webhook_secret)).toThrow(Stripe.errors.StripeSignatureVerificationError);
    expect(await adapter.verifyNotify(tampered, c.headers, Date.now()).catch((e: { reason?: string }) => e.reason)).toBe('invalid_signature');

    if (n.kind !== 'payment') throw new Error('expected a payment notification');
    const state = await fresh().queryOrder(req.out_trade_no); // PaymentIntent search
    expect(state).toMatchObject({ status: 'succeeded', amount: 1999, currency: 'USD', channel_trade_no: n.channel_trade_no });
    expect(state.channel_trade_no).toMatch(/^pi_/);
    expect(state.paid_at_ms).toEqual(expect.any(Number));
    expect(await adapter.queryOrder(req.out_trade_no)).toEqual(state); // cached session id
  });

  it('charges JPY in whole yen, unscaled', async () => {
    const req = order({ currency: 'JPY', amount: 500 });
    await adapter.createOrder(req);
    expect(kit.book.get(req.out_trade_no)).toMatchObject({ amount: 500, currency: 'jpy' });
    await kit.book.pay(req.out_trade_no);
    expect((await callbackFor(req.out_trade_no, 'payment')).n).toMatchObject({ status: 'succeeded', amount: 500, currency: 'JPY' });
    expect(await fresh().queryOrder(req.out_trade_no)).toMatchObject({ status: 'succeeded', amount: 500, currency: 'JPY' });
  });

  it('refunds once per out_refund_no and sends a refund event', async () => {
    const req = order();
    await adapter.createOrder(req);
    await kit.book.pay(req.out_trade_no);
    const refund = { out_trade_no: req.out_trade_no, out_refund_no: uniqueId('re'), amount: 500, total_amount: 1999, currency: 'USD', reason: 'buyer asked', notify_url: req.notify_url };
    const r = await fresh().refund(refund);
    expect(r).toMatchObject({ out_refund_no: refund.out_refund_no, status: 'succeeded', amount: 500 });
    expect(r.channel_refund_id).toMatch(/^re_/);
    expect(await adapter.refund(refund)).toEqual(r);
    expect(kit.book.get(req.out_trade_no)?.refunds).toHaveLength(1);
    const { n } = await callbackFor(req.out_trade_no, 'refund');
    expect(n).toMatchObject({ kind: 'refund', out_refund_no: refund.out_refund_no, status: 'succeeded', amount: 500, currency: 'USD' });
    expect(await codeOf(adapter.refund({ ...refund, out_refund_no: uniqueId('re'), amount: 1500 }))).toBe('rejected'); // more than is left
    expect(await codeOf(adapter.refund({ ...refund, out_refund_no: uniqueId('re'), currency: 'JPY' }))).toBe('rejected');
  });

  it('closes: a paid order is order_paid, a pending one closes (also statelessly), an unknown one is fine', async () => {
    const paid = order();
    await adapter.createOrder(paid);
    await kit.book.pay(paid.out_trade_no);
    expect(await codeOf(adapter.closeOrder(paid.out_trade_no))).toBe('order_paid');
    expect(await codeOf(fresh().closeOrder(paid.out_trade_no))).toBe('order_paid');

    const pending = order();
    await adapter.createOrder(pending);
    await adapter.closeOrder(pending.out_trade_no);
    expect(await adapter.queryOrder(pending.out_trade_no)).toMatchObject({ status: 'closed' });
    await adapter.closeOrder(pending.out_trade_no); // closing twice is fine

    const other = order();
    await adapter.createOrder(other);
    await fresh().closeOrder(other.out_trade_no);
    expect(await fresh().queryOrder(other.out_trade_no)).toMatchObject({ status: 'closed' });
    await adapter.closeOrder(uniqueId('pay'));
  });

  it('maps outage, system errors and latency to unavailable and timeout', async () => {
    const req = order();
    kit.setFaults({ outage: true });
    expect(await codeOf(adapter.createOrder(req))).toBe('unavailable');
    kit.setFaults({ outage: false, errorRate: 1 });
    const err = await adapter.queryOrder(req.out_trade_no).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'unavailable', channelCode: 'api_error' });
    kit.setFaults({ errorRate: 0, latencyMs: 1_500 });
    expect(await codeOf(adapter.createOrder(req))).toBe('timeout');
  });

  it('rejects a request with a wrong secret key, as Stripe does', async () => {
    const wrong = createStripeAdapter({ ...config, secret_key: 'sk_test_wrong' }, { crypto: inlineCrypto });
    const err = await wrong.createOrder(order()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'rejected', channelCode: 'api_key_invalid' });
    expect(String((err as Error).message)).not.toContain('sk_test_wrong');
  });

  it('downloads the day’s bill: the payment with its fee and the refund', async () => {
    const req = order({ amount: 10_000 });
    await adapter.createOrder(req);
    await kit.book.pay(req.out_trade_no);
    const out_refund_no = uniqueId('re');
    await adapter.refund({ out_trade_no: req.out_trade_no, out_refund_no, amount: 2_500, total_amount: 10_000, currency: 'USD', notify_url: req.notify_url });
    const mine = (await billOfDaysOf([req.out_trade_no])).filter((l) => l.out_trade_no === req.out_trade_no);
    expect(mine).toEqual([
      expect.objectContaining({ kind: 'payment', amount: 10_000, currency: 'USD', fee: 340, out_refund_no: null }),
      expect.objectContaining({ kind: 'refund', amount: 2_500, currency: 'USD', fee: 0, out_refund_no }),
    ]);
    expect(mine[0]?.channel_trade_no).toMatch(/^pi_/);
    const yesterday = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10);
    expect((await adapter.downloadBill(yesterday)).filter((l) => l.out_trade_no === req.out_trade_no)).toEqual([]);
  });

  it('pages through lists: the session scan and the bill past 100 entries', async () => {
    const reqs = Array.from({ length: 105 }, () => order({ amount: 100 }));
    for (const r of reqs) await adapter.createOrder(r);
    const oldest = reqs[0] as ChannelOrderRequest;
    // Sessions list newest first: the oldest of these is past the first page of 100.
    expect(await fresh().queryOrder(oldest.out_trade_no)).toMatchObject({ status: 'pending', amount: 100 });
    kit.setFaults({ dropCallbacks: true });
    for (const r of reqs) await kit.book.pay(r.out_trade_no);
    const ids = new Set(reqs.map((r) => r.out_trade_no));
    const lines = (await billOfDaysOf([...ids])).filter((l) => ids.has(l.out_trade_no));
    expect(lines).toHaveLength(105);
    expect(lines.every((l) => l.kind === 'payment' && l.amount === 100 && l.fee === 3)).toBe(true);
  });

  it('lets the buyer pay on the hosted page and returns them to success_url', async () => {
    const req = order({ return_url: 'https://shop.example/done?s={CHECKOUT_SESSION_ID}' });
    const created = await adapter.createOrder(req);
    if (created.next_action.type !== 'redirect') throw new Error('expected a redirect');
    const res = await fetch(created.next_action.url, { method: 'POST', redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`https://shop.example/done?s=${created.channel_order_id}`);
    expect(await adapter.queryOrder(req.out_trade_no)).toMatchObject({ status: 'succeeded' });
  });

  it('sends events to an endpoint registered through /v1/webhook_endpoints', async () => {
    const ep = await registerStripeWebhookEndpoint(config, `${receiverUrl}/registered`, STRIPE_WEBHOOK_EVENTS);
    expect(ep.id).toMatch(/^we_/);
    expect(ep.secret).toBe(config.webhook_secret);
    setWebhookUrl(null);
    const req = order();
    await adapter.createOrder(req);
    await kit.book.pay(req.out_trade_no);
    const { c } = await callbackFor(req.out_trade_no, 'payment');
    expect(c.path).toBe('/registered');
  });
});

describe('the official stripe client against the sandbox', () => {
  it('creates and retrieves a Checkout Session, and is refused with a wrong key', async () => {
    const sb = await startStripeSandbox();
    try {
      const u = new URL(sb.url);
      const opts = { host: u.hostname, port: Number(u.port), protocol: 'http' as const, maxNetworkRetries: 0 };
      const stripe = new Stripe(sb.config.secret_key, opts);
      const outTradeNo = uniqueId('pay');
      const session = await stripe.checkout.sessions.create({
        mode: 'payment',
        line_items: [{ quantity: 1, price_data: { currency: 'jpy', unit_amount: 500, product_data: { name: 'Game card' } } }],
        client_reference_id: outTradeNo,
        metadata: { out_trade_no: outTradeNo },
        payment_intent_data: { metadata: { out_trade_no: outTradeNo } },
        success_url: 'https://shop.example/done',
        expires_at: Math.floor(Date.now() / 1000) + 3600,
      });
      expect(session).toMatchObject({ object: 'checkout.session', status: 'open', payment_status: 'unpaid', amount_total: 500, currency: 'jpy', client_reference_id: outTradeNo });
      expect(session.url).toContain(session.id);
      await sb.kit.book.pay(outTradeNo);
      const again = await stripe.checkout.sessions.retrieve(session.id, { expand: ['payment_intent'] });
      expect(again).toMatchObject({ id: session.id, status: 'complete', payment_status: 'paid' });
      expect(again.payment_intent).toMatchObject({ object: 'payment_intent', status: 'succeeded', amount: 500, metadata: { out_trade_no: outTradeNo } });

      const adapter = createStripeAdapter(sb.config, { crypto: inlineCrypto });
      expect(await adapter.queryOrder(outTradeNo)).toMatchObject({ status: 'succeeded', amount: 500, currency: 'JPY' });

      const wrong = new Stripe('sk_test_wrong', opts);
      await expect(wrong.checkout.sessions.retrieve(session.id)).rejects.toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    } finally {
      await sb.kit.close();
    }
  });
});
