// Merchant webhooks end to end on real NATS JetStream, Redis and Postgres: payments through the real
// ingress, events through the engine, jobs through the webhooks dispatcher and deliverer, to a
// receiver on node:http that checks every signature itself with node:crypto, following API.md
// (t=<unix s>,v1=<hex HMAC-SHA256(secret, t + "." + body)>), not with our code.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../engine/infra.ts';
import { shardOf } from '../../engine/protocol/subjects.ts';
import { postWebhook, webhookAgents } from '../../engine/webhooks/http.ts';
import { startWebhooks, WEBHOOK_EVENT_TYPES } from '../../engine/webhooks/index.ts';
import { creditAccount, webhooksParked, webhooksResend } from '../../scripts/ops.ts';
import { envFor } from '../engine-process.ts';
import { startHarness, type Harness } from '../harness.ts';
import { testConfig, uniqueId, waitFor } from '../helpers.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const SCHEDULE = '150,150,150,150,150'; // 6 attempts
const ATTEMPTS = 6;
const TOLERANCE_S = 300;

type Delivery = {
  tag: string; id: string; type: string; body: string; data: Record<string, unknown>; status: number | 'hang';
  signatureOk: boolean; t: number; contentType: string | undefined;
};

/** A merchant's endpoint: verifies, records and answers what the tag's behaviour says. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  private readonly behaviours = new Map<string, (nth: number, id: string) => number | 'hang'>();
  private readonly hanging: ServerResponse[] = [];
  private server: Server | null = null;
  base = '';
  constructor(private readonly secret: () => string) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', () => r()));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  /** A notify_url whose answers follow `behaviour(nth attempt of that event id)`. */
  url(tag: string, behaviour: (nth: number, id: string) => number | 'hang'): string {
    this.behaviours.set(tag, behaviour);
    return `${this.base}/hooks/${tag}`;
  }

  of(tag: string) {
    return this.deliveries.filter((d) => d.tag === tag);
  }

  delivered(tag: string): Map<string, Delivery> {
    return new Map(this.of(tag).filter((d) => typeof d.status === 'number' && d.status < 300).map((d) => [d.id, d]));
  }

  private verify(header: string | undefined, body: string): { ok: boolean; t: number } {
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
    if (!m) return { ok: false, t: 0 };
    const t = Number(m[1]);
    const expected = createHmac('sha256', this.secret()).update(`${t}.${body}`).digest();
    const ok = timingSafeEqual(expected, Buffer.from(m[2] as string, 'hex')) && Math.abs(Date.now() / 1000 - t) <= TOLERANCE_S;
    return { ok, t };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const tag = (req.url ?? '').replace(/^\/hooks\//, '');
    const parsed = JSON.parse(body) as { id: string; type: string; data: Record<string, unknown> };
    const nth = this.deliveries.filter((d) => d.tag === tag && d.id === parsed.id).length + 1;
    const status = (this.behaviours.get(tag) ?? (() => 404))(nth, parsed.id);
    const sig = this.verify(req.headers['peakpay-signature'] as string | undefined, body);
    this.deliveries.push({
      tag, id: parsed.id, type: parsed.type, body, data: parsed.data, status, signatureOk: sig.ok, t: sig.t,
      contentType: req.headers['content-type'],
    });
    if (status === 'hang') {
      this.hanging.push(res);
      return;
    }
    res.writeHead(status).end(status < 300 ? 'ok' : 'no');
  }
}

let h: Harness;
let webhooks: Awaited<ReturnType<typeof startWebhooks>> | null = null;
let nc: NatsConnection;
let merchant: { id: string; secret: string };
const receiver = new Receiver(() => merchant.secret);
const accountId = 'acc_hooks';

beforeAll(async () => {
  h = await startHarness({
    config: testConfig({ PEAKPAY_WEBHOOK_RETRY_SCHEDULE_MS: SCHEDULE, PEAKPAY_WEBHOOK_TIMEOUT_MS: '1000', PEAKPAY_WEBHOOK_ALLOW_PRIVATE: 'true' }),
  });
  webhooks = await startWebhooks(h.config, { pool: h.pool });
  nc = await connectNats(h.config, 'webhooks-test');
  await receiver.start();
  merchant = await h.newMerchant();
  expect((await h.call(merchant, 'POST', '/v1/accounts', { account_id: accountId, currency: 'CNY' })).statusCode).toBe(201);
  await creditAccount(h.ingress.ctx.client, merchant.id, accountId, 10_000_000, 'CNY', 'float');
});

afterAll(async () => {
  await webhooks?.stop();
  const jsm = nc ? await jetstreamManager(nc) : null;
  for (const s of [h?.names.webhookStream, h?.names.webhookParkedStream]) if (jsm && s) await jsm.streams.delete(s).catch(() => undefined);
  await nc?.close();
  await receiver.stop();
  await h?.stop();
});

async function pay(notifyUrl: string | undefined, capture: 'manual' | 'automatic' = 'automatic', amount = 1000) {
  const res = await h.call(merchant, 'POST', '/v1/payments', {
    out_trade_no: uniqueId('T'), amount, currency: 'CNY', method: 'balance', account_id: accountId, capture, scene: 'pc',
    ...(notifyUrl && { notify_url: notifyUrl }), metadata: { sku: 'card-100' },
  });
  expect(res.statusCode).toBe(201);
  return res.json() as Record<string, unknown> & { id: string; status: string };
}

async function counter(result: 'delivered' | 'retry' | 'parked'): Promise<number> {
  const m = await webhooks?.registry.getSingleMetric('peakpay_webhook_deliveries_total')?.get();
  return m?.values.find((v) => v.labels.result === result)?.value ?? 0;
}

/** The webhookable events Postgres recorded for these payments: an independent list of what must arrive. */
async function expectedEvents(paymentIds: string[]): Promise<Map<string, string>> {
  const r = await h.pool.query<{ id: string; type: string }>(
    'SELECT id, type FROM events WHERE payment_id = ANY($1) AND type = ANY($2)', [paymentIds, [...WEBHOOK_EVENT_TYPES]]);
  return new Map(r.rows.map((x) => [x.id, x.type]));
}

describe('webhooks', () => {
  it('sends payment.authorized, payment.succeeded and refund.succeeded, signed, with the API objects as data', async () => {
    const url = receiver.url('ok', () => 200);
    const created = await pay(url, 'manual', 2500);
    expect(created.status).toBe('authorized');
    const captured = (await h.call(merchant, 'POST', `/v1/payments/${created.id}/capture`, {})).json() as Record<string, unknown>;
    expect(captured.status).toBe('succeeded');
    const refund = (await h.call(merchant, 'POST', `/v1/payments/${created.id}/refunds`, { amount: 700, reason: 'one card faulty' })).json();
    await pay(undefined); // no notify_url: nothing to send

    await waitFor('three webhooks', async () => receiver.delivered('ok').size >= 3);
    const got = receiver.of('ok');
    expect(got.map((d) => d.type).sort()).toEqual(['payment.authorized', 'payment.succeeded', 'refund.succeeded']);
    for (const d of got) {
      expect(d.signatureOk).toBe(true);
      expect(d.contentType).toBe('application/json');
      expect(d.id).toMatch(/^evt_/);
      const parsed = JSON.parse(d.body) as Record<string, unknown>;
      expect(Object.keys(parsed).sort()).toEqual(['created_at', 'data', 'id', 'type']);
      expect(new Date(parsed.created_at as string).toISOString()).toBe(parsed.created_at);
    }
    expect(new Set(got.map((d) => d.id)).size).toBe(3);
    const byType = new Map(got.map((d) => [d.type, d]));
    expect(byType.get('payment.authorized')?.data).toEqual(created);
    expect(byType.get('payment.succeeded')?.data).toEqual(captured);
    expect(byType.get('refund.succeeded')?.data).toEqual(refund);
    // The webhook dispatcher reads the event stream beside the settlement consumer: Postgres may lag.
    await waitFor('three events settled', async () => ((await expectedEvents([created.id])).size === 3 ? true : null));
  });

  it('puts event messages with nothing to notify on the quiet subject, which never reaches the dispatcher, and still sends the rest', async () => {
    const jsm = await jetstreamManager(nc);
    const dispatcher = () => jsm.consumers.info(h.names.evtStream, h.names.webhookDispatchConsumer);
    await waitFor('the dispatcher idle', async () => {
      const info = await dispatcher();
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
    const deliveredBefore = (await dispatcher()).delivered.consumer_seq;
    const silent = await pay(undefined);
    const url = receiver.url('marked', () => 200);
    const loud = await pay(url);
    await waitFor('the event of the payment with a notify_url delivered', async () => receiver.delivered('marked').size === 1);
    // Each payment's event is one message (sequential requests: the engine replies once it is stored).
    const seqOf = (paymentId: string) => waitFor(`the events of ${paymentId} settled`, async () => {
      const r = await h.pool.query<{ seq: string }>('SELECT DISTINCT stream_seq AS seq FROM events WHERE payment_id = $1', [paymentId]);
      return r.rows.length === 1 ? Number(r.rows[0]?.seq) : null;
    });
    const silentMsg = await jsm.streams.getMessage(h.names.evtStream, { seq: await seqOf(silent.id) });
    const loudMsg = await jsm.streams.getMessage(h.names.evtStream, { seq: await seqOf(loud.id) });
    const shard = shardOf(merchant.id, h.names.shardCount);
    expect(silentMsg?.subject).toBe(h.names.evtQuietSubjectShard(shard));
    expect(loudMsg?.subject).toBe(h.names.evtSubjectShard(shard));
    // An automatic capture is one event (scripts v8): the payment was never authorized where anyone could see it.
    expect(receiver.of('marked').map((d) => d.type)).toEqual(['payment.succeeded']);
    // The dispatcher was handed the loud payment's message only, and acknowledged it.
    await waitFor('the dispatcher caught up', async () => {
      const info = await dispatcher();
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
    expect((await dispatcher()).delivered.consumer_seq - deliveredBefore).toBe(1);
  });

  it('a receiver failing the first 3 times gets each event on the 4th attempt, same id and body', async () => {
    const retriesBefore = await counter('retry');
    const url = receiver.url('flaky3', (nth) => (nth <= 3 ? 500 : 200));
    const ps = [await pay(url), await pay(url)]; // automatic captures: one payment.succeeded each
    await waitFor('both events delivered', async () => receiver.delivered('flaky3').size === 2);
    const byId = new Map<string, Delivery[]>();
    for (const d of receiver.of('flaky3')) byId.set(d.id, [...(byId.get(d.id) ?? []), d]);
    const ids = ps.map((p) => p.id);
    await waitFor('both events settled', async () => ((await expectedEvents(ids)).size === 2 ? true : null));
    expect([...byId.keys()].sort()).toEqual([...(await expectedEvents(ids)).keys()].sort());
    for (const attempts of byId.values()) {
      expect(attempts.map((a) => a.status)).toEqual([500, 500, 500, 200]);
      expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
      expect(attempts.every((a) => a.signatureOk)).toBe(true);
      for (let i = 1; i < attempts.length; i++) expect((attempts[i] as Delivery).t).toBeGreaterThanOrEqual((attempts[i - 1] as Delivery).t);
    }
    expect(await counter('retry')).toBeGreaterThanOrEqual(retriesBefore + 6);
  });

  it('a receiver that always fails: parked after the last attempt, listed, resent once fixed, delivered', async () => {
    let down = true;
    const url = receiver.url('down', () => (down ? 503 : 200));
    const parkedBefore = await counter('parked');
    const first = await pay(url, 'manual');
    const [eventId] = [...(await waitFor('the event in Postgres', async () => {
      const e = await expectedEvents([first.id]);
      return e.size === 1 ? e : null;
    })).keys()] as [string];

    const listed = await waitFor('parked', async () => (await webhooksParked(nc, h.names, { merchantId: merchant.id })).find((p) => p.id === eventId));
    expect(listed).toMatchObject({ id: eventId, type: 'payment.authorized', merchant_id: merchant.id, url, attempts: ATTEMPTS, last_error: 'http_503', resends: 0 });
    expect(receiver.of('down').filter((d) => d.id === eventId).map((d) => d.status)).toEqual(Array(ATTEMPTS).fill(503));
    expect(await counter('parked')).toBe(parkedBefore + 1);
    await webhooks?.refreshParked();
    const gauge = await webhooks?.registry.getSingleMetric('peakpay_webhook_parked')?.get();
    expect(gauge?.values[0]?.value).toBe(1);

    // Nothing more is attempted while parked.
    await new Promise((r) => setTimeout(r, 500));
    expect(receiver.of('down').filter((d) => d.id === eventId)).toHaveLength(ATTEMPTS);

    down = false;
    expect(await webhooksResend(nc, h.names, { id: eventId })).toEqual([eventId]);
    const delivered = await waitFor('resent delivery', async () => receiver.delivered('down').get(eventId));
    expect(delivered.signatureOk).toBe(true);
    expect(delivered.body).toBe(receiver.of('down')[0]?.body);
    expect((await webhooksParked(nc, h.names, { merchantId: merchant.id })).find((p) => p.id === eventId)).toBeUndefined();
    await expect(webhooksResend(nc, h.names, { id: eventId })).rejects.toThrow(/no parked webhook/);

    // Resend of everything parked.
    down = true;
    const more = [await pay(url, 'manual'), await pay(url, 'manual')];
    const ids = [...(await waitFor('events in Postgres', async () => {
      const e = await expectedEvents(more.map((p) => p.id));
      return e.size === 2 ? e : null;
    })).keys()];
    await waitFor('both parked', async () => (await webhooksParked(nc, h.names, { merchantId: merchant.id })).length === 2);
    down = false;
    expect((await webhooksResend(nc, h.names, { all: true, merchantId: merchant.id })).sort()).toEqual(ids.sort());
    await waitFor('all resent delivered', async () => ids.every((id) => receiver.delivered('down').has(id)));
    expect(await webhooksParked(nc, h.names)).toEqual([]);
  });

  it('many events, each failing a different number of times: every one delivered at least once, in whatever order', async () => {
    // The nth attempt of an event fails while nth <= its failure count (0-2, from its id).
    const failuresOf = (id: string) => [...id].reduce((a, c) => a + c.charCodeAt(0), 0) % 3;
    const url = receiver.url('mixed', (nth, id) => (nth <= failuresOf(id) ? 502 : 200));
    const payments: { id: string }[] = [];
    for (let i = 0; i < 24; i++) payments.push(await pay(url)); // one event each
    const expected = await waitFor('24 events in Postgres', async () => {
      const e = await expectedEvents(payments.map((p) => p.id));
      return e.size === 24 ? e : null;
    });
    await waitFor('every event delivered', async () => [...expected.keys()].every((id) => receiver.delivered('mixed').has(id)), 30_000);
    expect(new Set(receiver.delivered('mixed').keys())).toEqual(new Set(expected.keys()));
    for (const [id, type] of expected) {
      const d = receiver.delivered('mixed').get(id) as Delivery;
      expect(d.type).toBe(type);
      expect(d.signatureOk).toBe(true);
      expect(receiver.of('mixed').filter((x) => x.id === id)).toHaveLength(failuresOf(id) + 1);
    }
    // No order is promised across events (a retried event arrives after later ones): only that each arrives.
    expect(new Set([...expected.keys()].map(failuresOf)).size).toBeGreaterThan(1);
  });

  it('refuses a private address unless allowed, before connecting', async () => {
    const url = receiver.url('ssrf', () => 200);
    const agents = webhookAgents(1);
    try {
      expect(await postWebhook({ url, body: '{"id":"x"}', headers: {}, timeoutMs: 1000, allowPrivate: false, agents }))
        .toEqual({ ok: false, status: null, error: 'address_blocked' });
      expect(receiver.of('ssrf')).toHaveLength(0);
      expect(await postWebhook({ url, body: '{"id":"x"}', headers: {}, timeoutMs: 1000, allowPrivate: true, agents })).toEqual({ ok: true, status: 200 });
      expect(receiver.of('ssrf')).toHaveLength(1);
    } finally {
      agents.destroy();
    }
  });
});

describe('webhooks process SIGKILLed', () => {
  it('loses nothing: jobs waiting for a retry and a POST in flight are delivered by the next process', async () => {
    await webhooks?.stop();
    webhooks = null;
    // A 4 s timeout keeps the hanging POSTs in flight long enough to kill the process under them;
    // 3 s between attempts leaves the failing ones waiting for a retry when it is killed.
    const env = {
      ...envFor(h.config), PEAKPAY_WEBHOOK_RETRY_SCHEDULE_MS: '3000,3000,3000,3000,3000', PEAKPAY_WEBHOOK_TIMEOUT_MS: '4000',
      PEAKPAY_WEBHOOK_ALLOW_PRIVATE: 'true', PEAKPAY_LOG_LEVEL: 'warn',
    };
    const spawnWebhooks = () => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'engine/webhooks/main.ts')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
      return { child, exited: new Promise<void>((r) => child.once('exit', () => r())) };
    };
    const stopChild = async (p: { child: ChildProcess; exited: Promise<void> }, signal: NodeJS.Signals) => {
      p.child.kill(signal);
      await p.exited;
    };

    let proc = spawnWebhooks();
    try {
      const crashUrl = receiver.url('crash', (nth) => (nth <= 2 ? 500 : 200));
      const hangUrl = receiver.url('hang', (nth) => (nth === 1 ? 'hang' : 200));
      const payments: { id: string }[] = [];
      for (let i = 0; i < 12; i++) payments.push(await pay(crashUrl)); // one event each
      for (let i = 0; i < 4; i++) payments.push(await pay(hangUrl));
      const expected = await waitFor('16 events in Postgres', async () => {
        const e = await expectedEvents(payments.map((p) => p.id));
        return e.size === 16 ? e : null;
      });
      const attempted = (id: string) => receiver.deliveries.some((d) => d.id === id);
      await waitFor('every event attempted by the first process', async () => [...expected.keys()].every(attempted), 30_000);
      const deliveredBeforeKill = [...expected.keys()].filter((id) => receiver.delivered('crash').has(id) || receiver.delivered('hang').has(id));
      expect(deliveredBeforeKill).toEqual([]);
      expect(receiver.of('hang').filter((d) => d.status === 'hang')).toHaveLength(4);

      await stopChild(proc, 'SIGKILL');
      proc = spawnWebhooks();
      await waitFor('every event delivered by the second process', async () =>
        [...expected.keys()].every((id) => receiver.delivered('crash').has(id) || receiver.delivered('hang').has(id)), 60_000);
      for (const id of expected.keys()) {
        const d = receiver.delivered('crash').get(id) ?? receiver.delivered('hang').get(id);
        expect(d?.signatureOk).toBe(true);
      }
      expect(await webhooksParked(nc, h.names)).toEqual([]);
    } finally {
      await stopChild(proc, 'SIGTERM');
    }
  }, 120_000);
});
