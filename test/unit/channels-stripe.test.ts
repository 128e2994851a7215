// Stripe channel, pure parts: amounts, statuses, the session we open, errors, bills, form
// encoding, and webhook verification, the latter also against the official stripe package
// (code no one here wrote): headers it generates must verify in notify.ts, and headers we sign
// must verify with stripe.webhooks.constructEvent.
import fc from 'fast-check';
import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { ISO_MINOR_EXPONENT } from '../../engine/channels/fx.ts';
import { stripeNotifyAnswer, stripeSignatureHeader, verifyStripeNotify, parseSignatureHeader } from '../../engine/channels/stripe/notify.ts';
import {
  STRIPE_THREE_DECIMAL,
  billLineOf,
  channelErrorCodeOf,
  dayRangeS,
  FORM_DEPTH_MAX,
  formDecode,
  formEncode,
  fromStripeAmount,
  orderStateOf,
  orderStatusOf,
  orderStatusOfPaymentIntent,
  orderStatusOfSession,
  redactSecrets,
  refundStatusOfStripe,
  sessionCreateOf,
  sessionExpiresAtS,
  stripeExponent,
  toStripeAmount,
  type FormValue,
} from '../../engine/channels/stripe/transformers.ts';
import {
  STRIPE_PAYMENT_INTENT_STATUSES,
  STRIPE_REFUND_STATUSES,
  STRIPE_SESSION_PAYMENT_STATUSES,
  STRIPE_SESSION_STATUSES,
  type StripeBalanceTransaction,
  type StripeCheckoutSession,
  type StripePaymentIntent,
} from '../../engine/channels/stripe/wire.ts';
import { ChannelNotifyError, NOTIFY_WINDOW_MS, type ChannelOrderRequest } from '../../engine/channels/types.ts';

const SECRET = 'whsec_unitTestSecret0123456789abcdef';
const NOW_MS = 1_764_300_000_000;
const NOW_S = NOW_MS / 1000;

describe('stripe amounts', () => {
  it('sends USD and JPY minor units unchanged, ISK ×100, and checks the three-decimal last digit', () => {
    expect(toStripeAmount(1999, 'USD')).toBe(1999);
    expect(toStripeAmount(500, 'JPY')).toBe(500);
    expect(toStripeAmount(1000, 'KRW')).toBe(1000);
    expect(toStripeAmount(5, 'ISK')).toBe(500);
    expect(toStripeAmount(12340, 'KWD')).toBe(12340);
    expect(() => toStripeAmount(12345, 'KWD')).toThrow(/end in 0/);
    expect(fromStripeAmount(500, 'ISK')).toBe(5);
    expect(() => fromStripeAmount(4010, 'ISK')).toThrow(/not a whole number/);
    expect(fromStripeAmount(500, 'JPY')).toBe(500);
  });

  it('refuses currencies without a known exponent', () => {
    expect(() => toStripeAmount(100, 'XYZ')).toThrow(/unsupported currency/);
    expect(() => fromStripeAmount(100, 'usd')).toThrow(/unsupported currency/);
  });

  it('round-trips every integer amount of every currency (property)', () => {
    const currencies = Object.keys(ISO_MINOR_EXPONENT);
    fc.assert(
      fc.property(fc.constantFrom(...currencies), fc.integer({ min: 1, max: 1_000_000_000_000 }), (cur, a) => {
        const amount = STRIPE_THREE_DECIMAL.has(cur) ? a * 10 : a; // Stripe charges three-decimal currencies in tens only
        const s = toStripeAmount(amount, cur);
        expect(Number.isSafeInteger(s)).toBe(true);
        expect(fromStripeAmount(s, cur)).toBe(amount);
        expect(s).toBe(amount * 10 ** (stripeExponent(cur) - (ISO_MINOR_EXPONENT[cur] ?? NaN)));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses anything that is not a positive safe integer (property)', () => {
    const bad = fc.oneof(
      fc.double({ noInteger: true }),
      fc.constantFrom(0, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 2),
      fc.integer({ max: 0 }),
    );
    fc.assert(
      fc.property(bad, fc.constantFrom('USD', 'JPY', 'CNY', 'KWD'), (a, cur) => {
        expect(() => toStripeAmount(a, cur)).toThrow();
      }),
    );
    fc.assert(
      fc.property(fc.double({ noInteger: true }), (a) => {
        expect(() => fromStripeAmount(a, 'USD')).toThrow();
      }),
    );
  });
});

describe('stripe statuses', () => {
  it('maps every PaymentIntent status', () => {
    const got = Object.fromEntries(STRIPE_PAYMENT_INTENT_STATUSES.map((s) => [s, orderStatusOfPaymentIntent(s)]));
    expect(got).toEqual({
      requires_payment_method: 'pending',
      requires_confirmation: 'pending',
      requires_action: 'pending',
      processing: 'pending',
      requires_capture: 'pending',
      canceled: 'closed',
      succeeded: 'succeeded',
    });
  });

  it('maps every Checkout Session status × payment_status', () => {
    const got: Record<string, string> = {};
    for (const s of STRIPE_SESSION_STATUSES) for (const p of STRIPE_SESSION_PAYMENT_STATUSES) got[`${s}/${p}`] = orderStatusOfSession(s, p);
    expect(got).toEqual({
      'open/paid': 'pending',
      'open/unpaid': 'pending',
      'open/no_payment_required': 'pending',
      'complete/paid': 'succeeded',
      'complete/unpaid': 'pending',
      'complete/no_payment_required': 'failed',
      'expired/paid': 'closed',
      'expired/unpaid': 'closed',
      'expired/no_payment_required': 'closed',
    });
  });

  it('maps every Refund status', () => {
    expect(Object.fromEntries(STRIPE_REFUND_STATUSES.map((s) => [s, refundStatusOfStripe(s)]))).toEqual({
      pending: 'pending',
      requires_action: 'pending',
      succeeded: 'succeeded',
      failed: 'failed',
      canceled: 'failed',
    });
  });

  it('combines a session with its PaymentIntent', () => {
    const s = (status: string, payment_status: string) => session({ status, payment_status });
    expect(orderStatusOf(s('complete', 'unpaid'), pi({ status: 'requires_payment_method' }))).toBe('failed'); // async payment failed
    expect(orderStatusOf(s('open', 'unpaid'), pi({ status: 'requires_payment_method' }))).toBe('pending'); // buyer may retry
    expect(orderStatusOf(s('expired', 'unpaid'), pi({ status: 'requires_payment_method' }))).toBe('closed');
    expect(orderStatusOf(s('complete', 'unpaid'), pi({ status: 'processing' }))).toBe('pending');
    expect(orderStatusOf(null, pi({ status: 'succeeded' }))).toBe('succeeded');
    expect(orderStatusOf(s('open', 'unpaid'), null)).toBe('pending');
  });

  it('refuses a status outside the enum', () => {
    expect(() => orderStatusOf(session({ status: 'archived' }), null)).toThrow(/unknown Checkout Session status/);
    expect(() => orderStatusOf(null, pi({ status: 'requires_magic' }))).toThrow(/unknown PaymentIntent status/);
  });

  it('reads the order state in our units, JPY and USD', () => {
    expect(orderStateOf('pay_1', session({ currency: 'jpy', amount_total: 500 }), null)).toEqual({
      out_trade_no: 'pay_1', status: 'pending', amount: 500, currency: 'JPY', channel_trade_no: null, paid_at_ms: null,
    });
    const paid = pi({ status: 'succeeded', amount: 1999, currency: 'usd', latest_charge: { id: 'ch_1', created: NOW_S } });
    expect(orderStateOf('pay_1', null, paid)).toEqual({
      out_trade_no: 'pay_1', status: 'succeeded', amount: 1999, currency: 'USD', channel_trade_no: 'pi_1', paid_at_ms: NOW_MS,
    });
  });
});

describe('stripe checkout session request', () => {
  const req: ChannelOrderRequest = {
    out_trade_no: 'pay_01J0ABC',
    amount: 1999,
    currency: 'USD',
    subject: 'Game card 100',
    scene: 'pc',
    client_ip: '127.0.0.1',
    notify_url: 'https://pp.example/v1/notify/stripe',
    expires_at_ms: NOW_MS + 2 * 3600_000,
  };
  const opts = { success_url: 'https://pp.example/done', payment_method_types: ['card', 'wechat_pay'] };

  it('carries our ids, the amount in Stripe units and the expiry', () => {
    const body = sessionCreateOf(req, opts, NOW_MS);
    expect(body).toMatchObject({
      mode: 'payment',
      line_items: [{ quantity: 1, price_data: { currency: 'usd', unit_amount: 1999, product_data: { name: 'Game card 100' } } }],
      client_reference_id: 'pay_01J0ABC',
      metadata: { out_trade_no: 'pay_01J0ABC' },
      payment_intent_data: { metadata: { out_trade_no: 'pay_01J0ABC' } },
      success_url: 'https://pp.example/done',
      expires_at: Math.ceil(req.expires_at_ms / 1000),
      payment_method_options: { wechat_pay: { client: 'web' } },
    });
    const form = new URLSearchParams(formEncode(body as unknown as Record<string, FormValue>));
    expect(form.get('line_items[0][price_data][unit_amount]')).toBe('1999');
    expect(form.get('payment_intent_data[metadata][out_trade_no]')).toBe('pay_01J0ABC');
    expect(form.get('payment_method_types[1]')).toBe('wechat_pay');
  });

  it('prefers the payment return_url, and sends JPY unscaled', () => {
    const body = sessionCreateOf({ ...req, currency: 'JPY', amount: 500, return_url: 'https://shop.example/r' }, opts, NOW_MS);
    expect(body.line_items[0]?.price_data).toMatchObject({ currency: 'jpy', unit_amount: 500 });
    expect(body.success_url).toBe('https://shop.example/r');
  });

  it('refuses a mini program, an unsafe out_trade_no, and an expired payment', () => {
    expect(() => sessionCreateOf({ ...req, scene: 'mini_program' }, opts, NOW_MS)).toThrow(/mini program/);
    expect(() => sessionCreateOf({ ...req, out_trade_no: "x' OR '1" }, opts, NOW_MS)).toThrow(/out_trade_no/);
    expect(() => sessionCreateOf({ ...req, expires_at_ms: NOW_MS }, opts, NOW_MS)).toThrow(/expired/);
  });

  it('keeps expires_at within Stripe bounds and stable across retries', () => {
    const far = NOW_MS + 3600_000;
    expect(sessionExpiresAtS(far, NOW_MS)).toBe(sessionExpiresAtS(far, NOW_MS + 5_000));
    const soon = NOW_MS + 15 * 60_000; // shorter than Stripe's 30 min minimum
    const at = sessionExpiresAtS(soon, NOW_MS);
    expect(at).toBe(sessionExpiresAtS(soon, NOW_MS + 5_000));
    expect(at * 1000 - NOW_MS).toBeGreaterThanOrEqual(30 * 60_000);
    expect(sessionExpiresAtS(NOW_MS + 48 * 3600_000, NOW_MS) * 1000 - NOW_MS).toBeLessThanOrEqual(24 * 3600_000);
  });

  it('form-encodes with brackets and decodes back (property)', () => {
    const leaf = fc.oneof(fc.string({ maxLength: 12 }), fc.integer().map(String));
    const key = fc.stringMatching(/^[a-z_]{1,8}$/);
    // Each level of nesting is one more [segment] after the top-level key: at most FORM_DEPTH_MAX in
    // all, which formDecode enforces (a deeper form is refused: the test below).
    const value = fc.letrec<{ v: FormValue }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small', maxDepth: FORM_DEPTH_MAX - 1, withCrossShrink: true },
        leaf, fc.array(tie('v'), { minLength: 1, maxLength: 3 }), fc.dictionary(key, tie('v'), { minKeys: 1, maxKeys: 3 }),
      ),
    })).v;
    fc.assert(
      fc.property(fc.dictionary(key, value, { minKeys: 1, maxKeys: 4 }), (obj) => {
        expect(formDecode(formEncode(obj))).toEqual(obj);
      }),
    );
  });

  it('refuses a form nested deeper than FORM_DEPTH_MAX', () => {
    const key = (depth: number) => `a${'[b]'.repeat(depth - 1)}`;
    expect(formDecode(`${key(FORM_DEPTH_MAX)}=1`)).toBeTruthy();
    expect(() => formDecode(`${key(FORM_DEPTH_MAX + 1)}=1`)).toThrow(/too deep/);
  });

  it('refuses prototype keys when decoding', () => {
    expect(() => formDecode('a[__proto__][x]=1')).toThrow(/bad form key/);
  });
});

describe('stripe errors', () => {
  const e = (type: string, code?: string) => ({ error: { type, ...(code ? { code } : {}) } });
  it.each([
    [500, e('api_error'), 'unavailable'],
    [502, null, 'unavailable'],
    [429, e('invalid_request_error', 'rate_limit'), 'unavailable'],
    [409, e('invalid_request_error', 'idempotency_key_in_use'), 'unavailable'],
    [400, e('invalid_request_error', 'lock_timeout'), 'unavailable'],
    [404, e('invalid_request_error', 'resource_missing'), 'not_found'],
    [402, e('card_error', 'card_declined'), 'rejected'],
    [400, e('invalid_request_error', 'parameter_missing'), 'rejected'],
    [400, e('idempotency_error'), 'rejected'],
    [401, e('invalid_request_error', 'api_key_invalid'), 'rejected'],
    [400, null, 'bad_response'],
  ] as const)('HTTP %i %j → %s', (status, body, want) => {
    expect(channelErrorCodeOf(status, body)).toBe(want);
  });

  it('redacts keys from messages', () => {
    expect(redactSecrets('Invalid API Key provided: sk_live_abc123DEF and whsec_zzz')).not.toMatch(/abc123DEF|zzz/);
  });
});

describe('stripe bills', () => {
  const bt = (over: Partial<StripeBalanceTransaction>): StripeBalanceTransaction =>
    ({ id: 'txn_1', object: 'balance_transaction', amount: 1999, currency: 'usd', created: NOW_S, fee: 68, net: 1931, type: 'charge', source: null, ...over }) as StripeBalanceTransaction;
  const charge = { id: 'ch_1', object: 'charge', amount: 1999, currency: 'usd', metadata: {}, payment_intent: { id: 'pi_1', object: 'payment_intent', metadata: { out_trade_no: 'pay_1' } } };

  it('turns a charge into a payment line with its fee', () => {
    expect(billLineOf(bt({ source: charge }))).toEqual({
      out_trade_no: 'pay_1', channel_trade_no: 'pi_1', kind: 'payment', out_refund_no: null, amount: 1999, currency: 'USD', fee: 68, at_ms: NOW_MS,
    });
  });

  it('scales a fee booked in another balance currency by Stripe’s own ratio, half-up', () => {
    // 5000 JPY charged, settled as 33.37 USD with a 1.45 USD fee: 145 × 5000 / 3337 = 217.26… → 217 JPY.
    const jpy = { ...charge, amount: 5000, currency: 'jpy' };
    expect(billLineOf(bt({ source: jpy, amount: 3337, fee: 145, currency: 'usd' }))).toMatchObject({ amount: 5000, currency: 'JPY', fee: 217 });
  });

  it('turns a refund into a refund line and skips what is not ours', () => {
    const refund = { id: 're_1', object: 'refund', amount: 500, currency: 'usd', metadata: { out_trade_no: 'pay_1', out_refund_no: 're_ours' }, payment_intent: 'pi_1' };
    expect(billLineOf(bt({ type: 'refund', amount: -500, fee: 0, source: refund }))).toMatchObject({ kind: 'refund', out_refund_no: 're_ours', amount: 500, fee: 0, channel_trade_no: 'pi_1' });
    expect(billLineOf(bt({ source: { ...charge, payment_intent: 'pi_x' } }))).toBeNull();
    expect(billLineOf(bt({ type: 'payout', source: { id: 'po_1', object: 'payout', amount: 1, currency: 'usd' } }))).toBeNull();
  });

  it('maps a bill day to a UTC-offset range', () => {
    expect(dayRangeS('2025-06-01', 0)).toEqual({ gte: Date.UTC(2025, 5, 1) / 1000, lt: Date.UTC(2025, 5, 2) / 1000 });
    expect(dayRangeS('2025-06-01', 480).gte).toBe(Date.UTC(2025, 4, 31, 16) / 1000);
    expect(() => dayRangeS('2025-02-30', 0)).toThrow(/no such day/);
  });
});

describe('stripe webhooks', () => {
  const completed = (over: Record<string, unknown> = {}) =>
    JSON.stringify(
      {
        id: 'evt_1Abc',
        object: 'event',
        api_version: '2026-10-28.endive',
        created: NOW_S,
        livemode: false,
        type: 'checkout.session.completed',
        data: { object: { ...session({ status: 'complete', payment_status: 'paid', payment_intent: 'pi_1' }), ...over } },
      },
      null,
      2,
    );
  const headers = (body: string, t = NOW_S, secret = SECRET) => ({ 'stripe-signature': stripeSignatureHeader(secret, t, body) });
  const reason = (f: () => unknown): string => {
    try {
      f();
    } catch (err) {
      if (err instanceof ChannelNotifyError) return err.reason;
      throw err;
    }
    return 'accepted';
  };

  it('accepts a signed checkout.session.completed and maps it', () => {
    const body = completed();
    expect(verifyStripeNotify(Buffer.from(body), headers(body), SECRET, NOW_MS)).toEqual({
      kind: 'payment', notification_id: 'evt_1Abc', out_trade_no: 'pay_1', status: 'succeeded', amount: 1999, currency: 'USD', channel_trade_no: 'pi_1', paid_at_ms: NOW_MS,
    });
  });

  it('accepts a header generated by the official stripe package, and rejects its tampered payload', () => {
    const body = completed();
    const header = Stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET, timestamp: NOW_S });
    expect(verifyStripeNotify(Buffer.from(body), { 'stripe-signature': header }, SECRET, NOW_MS).kind).toBe('payment');
    const tampered = body.replace('"amount_total": 1999', '"amount_total": 1');
    expect(tampered).not.toBe(body);
    expect(reason(() => verifyStripeNotify(Buffer.from(tampered), { 'stripe-signature': header }, SECRET, NOW_MS))).toBe('invalid_signature');
  });

  it('signs what the official stripe package verifies (and it refuses our tampered body)', () => {
    const body = completed();
    const header = stripeSignatureHeader(SECRET, NOW_S, body);
    expect(Stripe.webhooks.constructEvent(body, header, SECRET, 300, undefined, NOW_S).id).toBe('evt_1Abc');
    expect(() => Stripe.webhooks.constructEvent(body.replace('pay_1', 'pay_2'), header, SECRET, 300, undefined, NOW_S)).toThrow(/signature/i);
  });

  it('rejects a one-byte change anywhere in the body (property)', () => {
    const body = Buffer.from(completed());
    const h = headers(body.toString());
    fc.assert(
      fc.property(fc.nat(body.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const t = Buffer.from(body);
        t[i] = (t[i] ?? 0) ^ x;
        expect(reason(() => verifyStripeNotify(t, h, SECRET, NOW_MS))).toBe('invalid_signature');
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ['a wrong secret', (b: string) => headers(b, NOW_S, 'whsec_other'), 'invalid_signature'],
    ['no header', () => ({}), 'invalid_signature'],
    ['two headers', (b: string) => ({ 'stripe-signature': [headers(b)['stripe-signature'], headers(b)['stripe-signature']] }), 'invalid_signature'],
    ['no v1', () => ({ 'stripe-signature': `t=${NOW_S},v0=${'a'.repeat(64)}` }), 'invalid_signature'],
    ['a timestamp 301 s old', (b: string) => headers(b, NOW_S - 301), 'timestamp_out_of_window'],
    ['a timestamp 301 s ahead', (b: string) => headers(b, NOW_S + 301), 'timestamp_out_of_window'],
    ['a signature over another timestamp', (b: string) => ({ 'stripe-signature': headers(b, NOW_S - 1)['stripe-signature'].replace(`t=${NOW_S - 1}`, `t=${NOW_S}`) }), 'invalid_signature'],
  ] as const)('rejects %s', (_name, h, want) => {
    const body = completed();
    expect(reason(() => verifyStripeNotify(Buffer.from(body), h(body), SECRET, NOW_MS))).toBe(want);
  });

  it('accepts the edges of the window and any matching v1 among several', () => {
    const body = completed();
    expect(reason(() => verifyStripeNotify(Buffer.from(body), headers(body, NOW_S - NOTIFY_WINDOW_MS / 1000), SECRET, NOW_MS))).toBe('accepted');
    const many = `t=${NOW_S},v1=${'0'.repeat(64)},${headers(body)['stripe-signature'].split(',')[1]},v0=${'f'.repeat(64)}`;
    expect(reason(() => verifyStripeNotify(Buffer.from(body), { 'stripe-signature': many }, SECRET, NOW_MS))).toBe('accepted');
    expect(parseSignatureHeader(many)?.v1).toHaveLength(2);
  });

  it('rejects re-serialised JSON (same event, other bytes)', () => {
    const body = completed();
    const h = headers(body);
    const compact = JSON.stringify(JSON.parse(body));
    expect(reason(() => verifyStripeNotify(Buffer.from(compact), h, SECRET, NOW_MS))).toBe('invalid_signature');
  });

  it('rejects signed bodies that are not an event we can map', () => {
    const check = (body: string) => reason(() => verifyStripeNotify(Buffer.from(body), headers(body), SECRET, NOW_MS));
    expect(check('not json')).toBe('malformed');
    expect(check('{"id":"evt_1","object":"event"}')).toBe('malformed');
    expect(check(completed().replace('checkout.session.completed', 'customer.created'))).toBe('unsupported_event');
    expect(check(completed({ client_reference_id: null, metadata: {} }))).toBe('unsupported_event');
    expect(check(completed({ status: 'weird' }))).toBe('malformed');
    expect(check(completed({ currency: 'zzz' }))).toBe('malformed');
    expect(check(completed({ client_reference_id: 'pay_2' }))).toBe('malformed'); // disagrees with metadata
  });

  const event = (type: string, object: Record<string, unknown>) =>
    JSON.stringify({ id: 'evt_2', object: 'event', created: NOW_S, livemode: false, type, data: { object } });
  const verify = (body: string) => verifyStripeNotify(Buffer.from(body), headers(body), SECRET, NOW_MS);

  it('maps session, PaymentIntent and refund events', () => {
    expect(verify(event('checkout.session.expired', session({ status: 'expired' }))).status).toBe('closed');
    expect(verify(event('checkout.session.async_payment_failed', session({ status: 'complete' }))).status).toBe('failed');
    expect(verify(event('checkout.session.completed', session({ status: 'complete', payment_status: 'unpaid' }))).status).toBe('pending');
    expect(verify(event('payment_intent.succeeded', pi({ status: 'succeeded', currency: 'jpy', amount: 500 })))).toMatchObject({ status: 'succeeded', amount: 500, currency: 'JPY', channel_trade_no: 'pi_1' });
    expect(verify(event('payment_intent.payment_failed', pi({ status: 'requires_payment_method' }))).status).toBe('pending');
    expect(verify(event('payment_intent.canceled', pi({ status: 'canceled' }))).status).toBe('closed');
    const refund = { id: 're_1', object: 'refund', amount: 500, currency: 'usd', created: NOW_S, status: 'succeeded', payment_intent: 'pi_1', metadata: { out_trade_no: 'pay_1', out_refund_no: 're_ours' } };
    expect(verify(event('refund.created', refund))).toEqual({ kind: 'refund', notification_id: 'evt_2', out_trade_no: 'pay_1', out_refund_no: 're_ours', status: 'succeeded', amount: 500, currency: 'USD' });
    expect(verify(event('refund.failed', { ...refund, status: 'failed' }))).toMatchObject({ status: 'failed' });
    expect(reason(() => verify(event('refund.updated', { ...refund, metadata: {} })))).toBe('unsupported_event');
    expect(reason(() => verify(event('checkout.session.async_payment_succeeded', session({ status: 'complete', payment_status: 'unpaid' }))))).toBe('malformed');
  });

  it('answers 200 {"received":true} or 400', () => {
    expect(stripeNotifyAnswer(true)).toEqual({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"received":true}' });
    expect(stripeNotifyAnswer(false).status).toBe(400);
  });
});

function session(over: Record<string, unknown> = {}): StripeCheckoutSession {
  return {
    id: 'cs_test_1',
    object: 'checkout.session',
    amount_total: 1999,
    currency: 'usd',
    client_reference_id: 'pay_1',
    created: NOW_S - 60,
    expires_at: NOW_S + 3600,
    metadata: { out_trade_no: 'pay_1' },
    mode: 'payment',
    payment_intent: null,
    payment_status: 'unpaid',
    status: 'open',
    url: 'https://checkout.stripe.com/c/pay/cs_test_1',
    ...over,
  } as StripeCheckoutSession;
}

function pi(over: Record<string, unknown> = {}): StripePaymentIntent {
  return {
    id: 'pi_1',
    object: 'payment_intent',
    amount: 1999,
    currency: 'usd',
    status: 'requires_payment_method',
    created: NOW_S - 30,
    metadata: { out_trade_no: 'pay_1' },
    latest_charge: null,
    ...over,
  } as StripePaymentIntent;
}
