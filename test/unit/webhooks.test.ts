// Webhooks, the pure parts: the signature header, the retry schedule, what an event becomes, and
// the address check (a refused address is refused before any connection).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../engine/config.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import type { EngineEvent } from '../../engine/protocol/events.ts';
import type { Payment } from '../../engine/protocol/payment.ts';
import { isPrivateAddress, postWebhook, webhookAgents } from '../../engine/webhooks/http.ts';
import { decodeJob, encodeJob, jobMsgId, mayNotify, webhookOf, type WebhookJob } from '../../engine/webhooks/payload.ts';
import { jobsOf } from '../../engine/webhooks/dispatcher.ts';
import { packEventBatch } from '../../engine/shards/event-out.ts';
import { encode } from '../../engine/protocol/codec.ts';
import {
  attemptsOf, nextRetryDelayMs, parseSchedule, WEBHOOK_RETRY_SCHEDULE_MS, WEBHOOK_RETRY_WINDOW_MS,
} from '../../engine/webhooks/schedule.ts';
import { webhookSignature } from '../../engine/webhooks/signature.ts';

const KEY = 'ab'.repeat(32);

describe('signature', () => {
  it('is t=<unix s>,v1=<hex HMAC-SHA256(secret, t.body)>', () => {
    // Known answer computed independently:
    //   printf '%s' '1700000000.{"id":"evt_cmd_1_0","type":"payment.succeeded"}' | openssl dgst -sha256 -hmac sk_test_secret
    const body = '{"id":"evt_cmd_1_0","type":"payment.succeeded"}';
    expect(webhookSignature('sk_test_secret', body, 1_700_000_000))
      .toBe('t=1700000000,v1=ba2177a7e265e9c0659455426da119b91773f05ebc27dd58cf6916329153456c');
  });

  it('changes with any byte of the body, the timestamp or the secret', () => {
    const base = webhookSignature('sk_a', '{"a":1}', 1_700_000_000);
    expect(webhookSignature('sk_a', '{"a":2}', 1_700_000_000)).not.toBe(base);
    expect(webhookSignature('sk_a', '{"a":1}', 1_700_000_001)).not.toBe(base);
    expect(webhookSignature('sk_b', '{"a":1}', 1_700_000_000)).not.toBe(base);
    expect(base).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
  });

  it('refuses a timestamp that is not whole seconds', () => {
    expect(() => webhookSignature('sk', '{}', 1.5)).toThrow(/whole seconds/);
    expect(() => webhookSignature('sk', '{}', Date.now() * 1000 * 1000 * 1000)).toThrow(/whole seconds/);
  });
});

describe('retry schedule', () => {
  it('makes at least 8 attempts and all of them within 24 hours', () => {
    expect(attemptsOf(WEBHOOK_RETRY_SCHEDULE_MS)).toBeGreaterThanOrEqual(8);
    const total = WEBHOOK_RETRY_SCHEDULE_MS.reduce((a, b) => a + b, 0);
    expect(total).toBeLessThanOrEqual(WEBHOOK_RETRY_WINDOW_MS);
    // Backoff: never shorter than the delay before it.
    for (let i = 1; i < WEBHOOK_RETRY_SCHEDULE_MS.length; i++) {
      expect(WEBHOOK_RETRY_SCHEDULE_MS[i]).toBeGreaterThanOrEqual(WEBHOOK_RETRY_SCHEDULE_MS[i - 1] as number);
    }
  });

  it('walks the schedule, then parks', () => {
    const queued = 1_000_000;
    const s = [100, 200, 300];
    expect(nextRetryDelayMs(s, 1, queued, queued)).toBe(100);
    expect(nextRetryDelayMs(s, 2, queued, queued + 100)).toBe(200);
    expect(nextRetryDelayMs(s, 3, queued, queued + 300)).toBe(300);
    expect(nextRetryDelayMs(s, 4, queued, queued + 600)).toBeNull();
    expect(() => nextRetryDelayMs(s, 0, queued, queued)).toThrow(/positive/);
  });

  it('shortens the last delay to the end of the window and parks after it', () => {
    const queued = 5_000;
    const s = [3_600_000];
    expect(nextRetryDelayMs(s, 1, queued, queued + WEBHOOK_RETRY_WINDOW_MS - 60_000)).toBe(60_000);
    expect(nextRetryDelayMs(s, 1, queued, queued + WEBHOOK_RETRY_WINDOW_MS)).toBeNull();
  });

  it('simulated to the end, never attempts after the window nor more often than the schedule allows', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 30 * 3_600_000 }), { minLength: 0, maxLength: 20 }),
      fc.array(fc.integer({ min: 0, max: 120_000 }), { minLength: 21, maxLength: 21 }), // each attempt's own duration
      (schedule, durations) => {
        const queued = 1_000;
        let now = queued;
        let attempts = 0;
        for (;;) {
          attempts += 1;
          expect(now - queued).toBeLessThanOrEqual(WEBHOOK_RETRY_WINDOW_MS);
          now += durations[attempts - 1] as number;
          const delay = nextRetryDelayMs(schedule, attempts, queued, now);
          if (delay === null) break;
          expect(delay).toBeGreaterThan(0);
          expect(delay).toBeLessThanOrEqual(schedule[attempts - 1] as number);
          now += delay;
        }
        expect(attempts).toBeLessThanOrEqual(attemptsOf(schedule));
      },
    ));
  });

  it('is read from PEAKPAY_WEBHOOK_RETRY_SCHEDULE_MS, and a bad one is refused by name', () => {
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY }).webhookRetryScheduleMs).toEqual(WEBHOOK_RETRY_SCHEDULE_MS);
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_WEBHOOK_RETRY_SCHEDULE_MS: '100,200,300' }).webhookRetryScheduleMs).toEqual([100, 200, 300]);
    for (const bad of ['100,,200', '-5', '0', 'soon', `${WEBHOOK_RETRY_WINDOW_MS + 1}`, Array(101).fill('1').join(',')]) {
      expect(parseSchedule(bad)).toBeNull();
      expect(() => loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_WEBHOOK_RETRY_SCHEDULE_MS: bad })).toThrow(/PEAKPAY_WEBHOOK_RETRY_SCHEDULE_MS/);
    }
    const c = loadConfig({ PEAKPAY_MASTER_KEY: KEY });
    expect(c.webhookAllowPrivate).toBe(false);
    expect(loadConfig({ PEAKPAY_MASTER_KEY: KEY, PEAKPAY_WEBHOOK_ALLOW_PRIVATE: 'true' }).webhookAllowPrivate).toBe(true);
  });
});

const payment: Payment = {
  id: 'pay_1', merchant_id: 'm_1', out_trade_no: 'T1', amount: 1200, currency: 'CNY', amount_captured: 1200, amount_refunded: 0,
  method: 'balance', channel: null, scene: 'pc', subject: null, account_id: 'acc_1', status: 'succeeded', failure: null,
  next_action: null, buyer: null, metadata: { sku: 'card-100' }, hold_expires_at: null,
  created_at: '2025-01-01T00:00:00.000Z', updated_at: '2025-01-01T00:00:01.000Z', version: 2,
};

function event(type: EngineEvent['type'], over: Partial<EngineEvent> = {}): EngineEvent {
  return {
    v: PROTOCOL_VERSION, id: `evt_cmd_9_0`, type, merchant_id: 'm_1', cmd_id: 'cmd_9', ts_ms: Date.parse('2025-01-01T00:00:01.000Z'),
    payment, account: null, postings: [], memo: null, payment_record: { id: 'pay_1', notify_url: 'https://shop.example/notify' }, ...over,
  };
}

describe('what an event becomes', () => {
  it('a payment transition: { id, type, created_at, data: Payment } to the payment notify_url', () => {
    const w = webhookOf(event('payment.succeeded'));
    expect(w).not.toBeNull();
    expect(w?.url).toBe('https://shop.example/notify');
    expect(JSON.parse(w?.body as string)).toEqual({ id: 'evt_cmd_9_0', type: 'payment.succeeded', created_at: '2025-01-01T00:00:01.000Z', data: payment });
  });

  it('a refund: data is the Refund, which names its payment', () => {
    const refund = { id: 're_1', payment_id: 'pay_1', amount: 500, currency: 'CNY' as const, status: 'succeeded' as const, reason: null, created_at: '2025-01-02T00:00:00.000Z' };
    const w = webhookOf(event('refund.succeeded', { refund }));
    expect(JSON.parse(w?.body as string).data).toEqual(refund);
  });

  it('nothing for a payment without notify_url, for events older than payment_record, or for account and risk events', () => {
    expect(webhookOf(event('payment.succeeded', { payment_record: { id: 'pay_1', notify_url: '' } }))).toBeNull();
    expect(webhookOf(event('payment.succeeded', { payment_record: null }))).toBeNull();
    const { payment_record: _dropped, ...old } = event('payment.succeeded');
    expect(webhookOf(old as EngineEvent)).toBeNull();
    expect(webhookOf(event('account.credited'))).toBeNull();
    expect(webhookOf(event('risk.configured'))).toBeNull();
  });

  it("a command's first events carry no payment state: they are sent with their command's last event's", async () => {
    const { jobsOf } = await import('../../engine/webhooks/dispatcher.ts');
    const { packEventBatch } = await import('../../engine/shards/event-out.ts');
    const { encode } = await import('../../engine/protocol/codec.ts');
    // As the engine makes them (engine/shards/outcome.ts): the state after the command on its last event only.
    const firstOf = (e: EngineEvent): EngineEvent => {
      const { payment_record: _record, ...rest } = e;
      return { ...rest, payment: null };
    };
    const first = firstOf(event('payment.authorized'));
    const last = { ...event('payment.succeeded'), id: 'evt_cmd_9_1' };
    // Another command in the same message, whose payment has no notify_url: its events stay silent.
    const otherFirst = firstOf({ ...event('payment.authorized'), id: 'evt_cmd_8_0', cmd_id: 'cmd_8' });
    const otherLast = { ...event('payment.succeeded', { payment_record: { id: 'pay_2', notify_url: '' } }), id: 'evt_cmd_8_1', cmd_id: 'cmd_8' };
    const events = [otherFirst, otherLast, first, last];
    const packed = events.map((e) => encode(e));
    const data = packEventBatch(events[0] as EngineEvent, packed, packed.reduce((n, b) => n + b.length, 0));
    const jobs = jobsOf(data, 1_700_000_000_000);
    expect(jobs.map((j) => [j.id, j.type, j.url])).toEqual([
      ['evt_cmd_9_0', 'payment.authorized', 'https://shop.example/notify'],
      ['evt_cmd_9_1', 'payment.succeeded', 'https://shop.example/notify'],
    ]);
    expect(JSON.parse(jobs[0]?.body as string).data).toEqual(payment);
    // Alone, the first event has nothing to send.
    expect(webhookOf(first)).toBeNull();
  });

  it('mayNotify says no only of messages the dispatcher would find nothing to send in', () => {
    const pack = (events: EngineEvent[]) => {
      const packed = events.map((e) => encode(e));
      return packEventBatch(events[0] as EngineEvent, packed, packed.reduce((n, b) => n + b.length, 0));
    };
    const types: EngineEvent['type'][] = ['payment.authorized', 'payment.succeeded', 'payment.failed', 'refund.succeeded', 'account.credited', 'risk.configured'];
    const refund = { id: 're_1', payment_id: 'pay_1', amount: 500, currency: 'CNY' as const, status: 'succeeded' as const, reason: null, created_at: '2025-01-02T00:00:00.000Z' };
    // Messages as the engine makes them: one to three commands, each with one to three events; only
    // a command's last event carries the state (payment, record), and the record may have a URL.
    const command = fc.record({
      types: fc.array(fc.constantFrom(...types), { minLength: 1, maxLength: 3 }),
      url: fc.constantFrom('', 'https://shop.example/notify', null),
      withRefund: fc.boolean(),
    });
    fc.assert(fc.property(fc.array(command, { minLength: 1, maxLength: 3 }), (commands) => {
      const events = commands.flatMap((c, ci) => c.types.map((type, i): EngineEvent => {
        const last = i === c.types.length - 1;
        const e = event(type, { id: `evt_cmd_${ci}_${i}`, cmd_id: `cmd_${ci}`, ...(c.withRefund && { refund }) });
        if (last) return { ...e, payment_record: c.url === null ? null : { id: `pay_${ci}`, notify_url: c.url } };
        const { payment_record: _record, ...rest } = e;
        return { ...rest, payment: null };
      }));
      const jobs = jobsOf(pack(events), 1_700_000_000_000);
      if (!mayNotify(events)) expect(jobs).toEqual([]);
      return true;
    }), { numRuns: 500 });
    // And it does say yes where there is something to send, and no where there is not.
    expect(mayNotify([event('payment.succeeded')])).toBe(true);
    expect(mayNotify([event('payment.succeeded', { payment_record: { id: 'pay_1', notify_url: '' } })])).toBe(false);
    expect(mayNotify([event('account.credited')])).toBe(false);
  });

  it('a job survives its encoding; a resend gets its own message id, the event id stays', () => {
    const job: WebhookJob = {
      v: PROTOCOL_VERSION, id: 'evt_cmd_9_0', type: 'payment.succeeded', merchant_id: 'm_1', url: 'https://shop.example/n',
      body: '{"a":1}', queued_at_ms: 1_700_000_000_000, resends: 0,
    };
    expect(decodeJob(encodeJob(job))).toEqual(job);
    expect(jobMsgId(job)).toBe('whk_evt_cmd_9_0');
    expect(jobMsgId({ ...job, resends: 2 })).toBe('whk_evt_cmd_9_0_r2');
    expect(() => encodeJob({ ...job, id: 'evt.with.dots' })).toThrow();
  });
});

describe('addresses', () => {
  it('knows private, loopback, link-local and mapped addresses from public ones', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1', '::ffff:127.0.0.1']) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['8.8.8.8', '203.0.113.9', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
      expect(isPrivateAddress(a), a).toBe(false);
    }
  });

  it('refuses private targets and other schemes without connecting', async () => {
    const agents = webhookAgents(1);
    try {
      const post = (url: string) => postWebhook({ url, body: '{}', headers: {}, timeoutMs: 2_000, allowPrivate: false, agents });
      // Port 9 (discard) on loopback: were it contacted, the error would be a connection error, not address_blocked.
      expect(await post('http://127.0.0.1:9/hook')).toEqual({ ok: false, status: null, error: 'address_blocked' });
      expect(await post('http://[::1]:9/hook')).toEqual({ ok: false, status: null, error: 'address_blocked' });
      expect(await post('http://localhost:9/hook')).toEqual({ ok: false, status: null, error: 'address_blocked' });
      expect(await post('ftp://shop.example/hook')).toEqual({ ok: false, status: null, error: 'unsupported_scheme' });
      expect(await post('not a url')).toEqual({ ok: false, status: null, error: 'invalid_url' });
    } finally {
      agents.destroy();
    }
  });
});
