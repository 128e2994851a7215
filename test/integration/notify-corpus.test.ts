// The attack the source article warns about: a forged "payment succeeded" callback. Over a thousand
// hostile callbacks to /v1/notify/{channel} — forged, tampered (one byte), re-serialised, replayed
// inside and outside the time window, validly signed but for the wrong amount or an order we never
// made — and not one changes a payment, a wallet or the ledger; every one is counted.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAlipaySandbox } from '../../engine/channels/alipay/index.ts';
import { startWechatPaySandbox } from '../../engine/channels/wechat_pay/index.ts';
import type { OutgoingCallback, SandboxKit, SandboxOrder } from '../../engine/channels/sandbox-kit.ts';
import { channelSettingsSchema } from '../../engine/channels/settings.ts';
import type { Payment } from '../../engine/protocol/payment.ts';
import { crockford26 } from '../../engine/protocol/ids.ts';
import { startHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId, waitFor } from '../helpers.ts';

const PER_CLASS = 80; // × 8 classes × 2 channels = 1,280 callbacks
type Channel = 'wechat_pay' | 'alipay';
type Hostile = { channel: Channel; kind: string; cb: OutgoingCallback };

let h: Harness;
const kits = {} as Record<Channel, SandboxKit>;
let m: { id: string; secret: string };
const pending = {} as Record<Channel, Payment[]>;
const paid = {} as Record<Channel, Payment[]>;
/** Callbacks the sandboxes really sent for the paid orders (the replay material). */
const delivered = {} as Record<Channel, OutgoingCallback[]>;

beforeAll(async () => {
  const [wx, ali] = await Promise.all([startWechatPaySandbox(), startAlipaySandbox()]);
  kits.wechat_pay = wx.kit;
  kits.alipay = ali.kit;
  const settings = channelSettingsSchema.parse({
    // The sandboxes' own sends are captured, not delivered: the test posts every callback itself.
    public_url: 'http://127.0.0.1:9',
    channels: { wechat_pay: { config: wx.config, fee_bps: 60 }, alipay: { config: ali.config, fee_bps: 60 } },
    routes: { default: { '*': [{ channel: 'wechat_pay', weight: 1 }] } },
    // No 补单 during the test: only callbacks may change anything.
    query_after_ms: 3_600_000,
  });
  h = await startHarness({ config: testConfig({ PEAKPAY_SHARD_COUNT: '2' }), channels: settings });
  m = await h.newMerchant();
  for (const channel of ['wechat_pay', 'alipay'] as const) {
    kits[channel].setFaults({ dropCallbacks: true });
    pending[channel] = [];
    paid[channel] = [];
    delivered[channel] = [];
    for (let i = 0; i < 6; i++) {
      const res = await h.call(m, 'POST', '/v1/payments', { out_trade_no: uniqueId('T'), amount: 1000 + i, currency: 'CNY', method: channel, scene: 'pc' });
      const p = res.json() as Payment;
      expect(p).toMatchObject({ status: 'pending', channel });
      (i < 3 ? pending : paid)[channel].push(p);
    }
    // Pay three orders and deliver their genuine callbacks: they succeed, once.
    for (const p of paid[channel]) {
      const order = await kits[channel].book.pay(p.id);
      const cb = await kits[channel].spec.callback(order, null);
      delivered[channel].push(cb);
      expect((await post(channel, cb)).statusCode).toBeLessThan(300);
      await waitFor('succeeded', async () => ((await get(p.id)).status === 'succeeded' ? true : null));
    }
  }
}, 180_000);

afterAll(async () => {
  await h?.stop();
  await Promise.all(Object.values(kits).map((k) => k.close()));
});

const get = async (id: string) => (await h.call(m, 'GET', `/v1/payments/${id}`)).json() as Payment;
const post = (channel: Channel, cb: OutgoingCallback) =>
  h.app.inject({ method: 'POST', url: `/v1/notify/${channel}`, headers: cb.headers, payload: cb.body });

const pick = <T>(xs: readonly T[], i: number) => xs[i % xs.length] as T;
/** A paid-looking copy of one of our pending orders (as the sandbox would report it once paid). */
const asPaid = (o: SandboxOrder, patch: Partial<SandboxOrder> = {}): SandboxOrder =>
  ({ ...o, status: 'succeeded', trade_no: `txn${randomBytes(6).toString('hex')}`, paid_amount: o.amount, paid_ms: Date.now(), ...patch });

function flipOneByte(body: string, i: number): string {
  const b = Buffer.from(body);
  const at = (i * 7919) % b.length;
  b[at] = (b[at] as number) ^ (1 << (i % 7));
  return b.toString('latin1');
}

/**
 * One byte of what the callback says changed. WeChat Pay signs the exact body bytes (and GCM
 * authenticates the resource), so any byte will do; Alipay signs the decoded, sorted parameters,
 * so a byte of percent-encoding can change without changing what is said: there the byte is one
 * of the amount, order number or status.
 */
function tamper(channel: Channel, cb: OutgoingCallback, i: number): OutgoingCallback {
  if (channel === 'wechat_pay') return { ...cb, body: flipOneByte(cb.body, i) };
  const form = new URLSearchParams(cb.body);
  const field = pick(['total_amount', 'out_trade_no', 'trade_status', 'receipt_amount', 'app_id'], i);
  const v = form.get(field) ?? '';
  const at = (i * 31) % Math.max(1, v.length);
  const c = v.charCodeAt(at);
  form.set(field, v.slice(0, at) + String.fromCharCode(/[0-9]/.test(v[at] ?? '') ? 48 + ((c - 48 + 1 + (i % 8)) % 10) : c ^ 1) + v.slice(at + 1));
  return { ...cb, body: form.toString() };
}

function forge(channel: Channel, cb: OutgoingCallback): OutgoingCallback {
  if (channel === 'wechat_pay') {
    return { ...cb, headers: { ...cb.headers, 'wechatpay-signature': randomBytes(256).toString('base64') } };
  }
  const form = new URLSearchParams(cb.body);
  form.set('sign', randomBytes(256).toString('base64'));
  return { ...cb, body: form.toString() };
}

function reserialise(channel: Channel, cb: OutgoingCallback): OutgoingCallback {
  if (channel === 'wechat_pay') return { ...cb, body: JSON.stringify(JSON.parse(cb.body), null, 2) };
  // Same parameters, another order and another encoding of spaces: Alipay verifies the sorted
  // parameters, so this one still verifies (it is about a paid order: a no-op, not a rejection).
  const form = new URLSearchParams(cb.body);
  return { ...cb, body: [...form.entries()].reverse().map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&') };
}

async function corpus(): Promise<Hostile[]> {
  const out: Hostile[] = [];
  for (const channel of ['wechat_pay', 'alipay'] as const) {
    const kit = kits[channel];
    const orders = pending[channel].map((p) => kit.book.get(p.id) as SandboxOrder);
    const paidOrders = paid[channel].map((p) => kit.book.get(p.id) as SandboxOrder);
    for (let i = 0; i < PER_CLASS; i++) {
      const o = pick(orders, i);
      const genuine = await kit.spec.callback(asPaid(o), null); // validly signed "paid" for an unpaid order
      out.push({ channel, kind: 'forged', cb: forge(channel, genuine) });
      out.push({ channel, kind: 'tampered', cb: tamper(channel, genuine, i) });
      // Any byte of a genuine callback that was already booked: rejected, or a no-op.
      out.push({ channel, kind: 'tampered_replay', cb: { ...pick(delivered[channel], i), body: flipOneByte(pick(delivered[channel], i).body, i) } });
      out.push({ channel, kind: 'wrong_amount', cb: await kit.spec.callback(asPaid(o, { paid_amount: o.amount + 1 + i }), null) });
      const unknownId = `pay_${crockford26(randomBytes(32))}`;
      out.push({ channel, kind: 'unknown_order', cb: await kit.spec.callback(asPaid({ ...o, out_trade_no: unknownId }), null) });
      out.push({ channel, kind: 'replayed', cb: pick(delivered[channel], i) });
      out.push({ channel, kind: 'reserialised', cb: reserialise(channel, channel === 'wechat_pay' ? genuine : pick(delivered[channel], i)) });
    }
    // Validly signed, but ten minutes old: outside the window.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() - 10 * 60_000);
      for (let i = 0; i < PER_CLASS; i++) {
        out.push({ channel, kind: 'stale', cb: await kit.spec.callback(asPaid(pick(orders, i)), null) });
      }
    } finally {
      vi.useRealTimers();
    }
    expect(paidOrders.every((p) => p.status === 'succeeded')).toBe(true);
  }
  return out;
}

async function ledgerState() {
  const pool = h.ingress.ctx.pool;
  const postings = await pool.query<{ n: number; sum: string }>('SELECT count(*)::int AS n, coalesce(sum(abs(amount)), 0)::text AS sum FROM postings WHERE merchant_id = $1', [m.id]);
  const payments = await Promise.all([...pending.wechat_pay, ...pending.alipay, ...paid.wechat_pay, ...paid.alipay].map((p) => get(p.id)));
  return { postings: postings.rows[0], payments: payments.map((p) => [p.id, p.status, p.version, p.amount_captured]) };
}

async function notifyCounts(): Promise<Record<string, number>> {
  const metric = await h.ingress.ctx.metrics.registry.getSingleMetric('peakpay_channel_notify_total')?.get();
  const out: Record<string, number> = {};
  for (const v of metric?.values ?? []) {
    const ch = String(v.labels.channel);
    if (ch === 'wechat_pay' || ch === 'alipay') out[String(v.labels.result)] = (out[String(v.labels.result)] ?? 0) + v.value;
  }
  return out;
}

describe('hostile channel callbacks', () => {
  it(`${PER_CLASS * 8 * 2} forged, tampered, re-serialised, replayed, stale, wrong-amount and unknown-order callbacks change nothing and are all counted`, async () => {
    const hostile = await corpus();
    expect(hostile.length).toBeGreaterThanOrEqual(1_000);
    // Let the settlement consumer catch up with the genuine payments first.
    await waitFor('ledger settled', async () => ((await ledgerState()).postings?.n ?? 0) >= 2 * 3 * 4 ? true : null);
    const before = await ledgerState();
    const countsBefore = await notifyCounts();

    const statuses = new Map<string, number[]>();
    for (const x of hostile) {
      const res = await post(x.channel, x.cb);
      expect(res.statusCode, `${x.channel} ${x.kind}`).toBeLessThan(500);
      statuses.set(x.kind, [...(statuses.get(x.kind) ?? []), res.statusCode]);
    }
    // Rejections are answered as failures (the channel's own format), so a real channel would retry.
    for (const kind of ['forged', 'tampered', 'wrong_amount', 'unknown_order', 'stale']) {
      expect(statuses.get(kind)?.every((s) => s >= 400), kind).toBe(true);
    }

    // Give anything that slipped through time to reach Redis and Postgres, then compare.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await ledgerState()).toEqual(before);

    const countsAfter = await notifyCounts();
    const delta = Object.fromEntries(Object.entries(countsAfter).map(([k, v]) => [k, v - (countsBefore[k] ?? 0)]));
    expect(delta.accepted ?? 0).toBe(0);
    expect(Object.values(delta).reduce((s, v) => s + v, 0)).toBe(hostile.length);
    expect(delta.invalid_signature).toBeGreaterThanOrEqual(2 * PER_CLASS);
    expect(delta.timestamp_out_of_window).toBeGreaterThanOrEqual(2 * PER_CLASS);
    expect(delta.mismatch).toBeGreaterThanOrEqual(2 * PER_CLASS);
    expect(delta.unknown_order).toBe(2 * PER_CLASS);
    expect(delta.duplicate).toBeGreaterThanOrEqual(2 * PER_CLASS);
  }, 300_000);
});
