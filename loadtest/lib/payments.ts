// The requests of the benchmark and of loadtest/run.ts: signed as API.md requires (ingress/
// signature.ts), a unique Idempotency-Key, nonce and out_trade_no each, and the same JSON body for
// every server under test (peakpay, the naive stack, the ceiling).
import { randomBytes } from 'node:crypto';
import { authorization } from '../../ingress/signature.ts';
import type { HttpRequest, Iteration } from './generator.ts';

export type BenchMerchant = { id: string; secret: string; accounts: string[] };
/** A payment the server acknowledged (or, in `sent`, one it was asked for). */
export type PaymentRef = { merchant: string; account: string; outTradeNo: string; amount: number };

export const CURRENCY = 'CNY';

export class PaymentRequests {
  private readonly tag = randomBytes(4).toString('hex');
  private n = 0;

  /** Unique within the run and across runs: run tag + counter, [A-Za-z0-9]. */
  next(): string {
    return `${this.tag}${(++this.n).toString(36).padStart(8, '0')}`;
  }

  create(m: BenchMerchant, account: string, amount: number, capture: 'automatic' | 'manual'): { req: HttpRequest; ref: PaymentRef } {
    const id = this.next();
    const outTradeNo = `B${id}`;
    const body = JSON.stringify({
      out_trade_no: outTradeNo, amount, currency: CURRENCY, method: 'balance', account_id: account, capture, scene: 'pc', subject: 'Game card 100',
    });
    return {
      req: { method: 'POST', path: '/v1/payments', body, headers: this.headers(m, '/v1/payments', body, id), tag: capture === 'automatic' ? 'create' : 'hold' },
      ref: { merchant: m.id, account, outTradeNo, amount },
    };
  }

  capture(m: BenchMerchant, paymentId: string): HttpRequest {
    const path = `/v1/payments/${paymentId}/capture`;
    const body = '{}';
    return { method: 'POST', path, body, headers: this.headers(m, path, body, this.next()), tag: 'capture' };
  }

  /** GET /v1/payments/:id, as a storefront polls a payment answered 202 processing. */
  read(m: BenchMerchant, paymentId: string): HttpRequest {
    const path = `/v1/payments/${paymentId}`;
    const id = this.next();
    return { method: 'GET', path, body: '', headers: { authorization: authorization(m.id, m.secret, 'GET', path, '', { nonce: `n${id}`.padEnd(16, '0') }) }, tag: 'poll' };
  }

  private headers(m: BenchMerchant, path: string, body: string, id: string): Record<string, string> {
    return {
      'content-type': 'application/json',
      'idempotency-key': `k${id}`,
      authorization: authorization(m.id, m.secret, 'POST', path, body, { nonce: `n${id}`.padEnd(16, '0') }),
    };
  }
}

export type Pick = () => { m: BenchMerchant; account: string; amount: number };

/** Who pays whom and how much: round robin over merchants and each merchant's wallets; 1.00–9.99 CNY. */
export function roundRobin(merchants: readonly BenchMerchant[]): Pick {
  let i = 0;
  return () => {
    const m = merchants[i % merchants.length] as BenchMerchant;
    const account = m.accounts[Math.floor(i / merchants.length) % m.accounts.length] as string;
    const amount = 100 + (i % 900);
    i++;
    return { m, account, amount };
  };
}

export type Ledger = { acknowledged: PaymentRef[]; unacknowledged: PaymentRef[] };

const json = (body: string): Record<string, unknown> | null => {
  try {
    return JSON.parse(body) as Record<string, unknown>;
  } catch {
    return null;
  }
};

/**
 * Automatic capture, one request per payment. Acknowledged: 201 succeeded (peakpay, naive), 202
 * processing (peakpay past its deadline: queued durably, decided later) or 202 accepted (the ceiling).
 */
export function automaticPayment(reqs: PaymentRequests, pick: Pick, ledger: Ledger): Iteration {
  return async (send) => {
    const { m, account, amount } = pick();
    const { req, ref } = reqs.create(m, account, amount, 'automatic');
    const res = await send(req);
    const status = json(res.body)?.status;
    const ok = (res.status === 201 && status === 'succeeded') || (res.status === 202 && (status === 'processing' || status === 'accepted'));
    (ok ? ledger.acknowledged : ledger.unacknowledged).push(ref);
    return ok;
  };
}

/**
 * A 202 `processing` is polled this often, at most this long, as a storefront would; no sooner than
 * the answer's Retry-After says, as a polite one does.
 */
const POLL_INTERVAL_MS = 250;
const RETRY_AFTER_S_MAX = 10;
const POLL_WAIT_MS_MAX = 60_000;

/**
 * The payment as the engine decided it: the answer itself, or, for 202 (not decided in time, or
 * accepted into the engine's backlog), what GET /v1/payments/:id says once it is no longer processing.
 */
const pollWaitMs = (retryAfterS: number | undefined): number => Math.max(POLL_INTERVAL_MS, Math.min(RETRY_AFTER_S_MAX, retryAfterS ?? 0) * 1000);

async function decided(send: Parameters<Iteration>[0], reqs: PaymentRequests, m: BenchMerchant, res: { status: number; body: string; retryAfterS?: number }, okStatus: number) {
  const p = json(res.body);
  if (res.status === okStatus) return p;
  if (res.status !== 202 || typeof p?.id !== 'string') return null;
  const deadline = performance.now() + POLL_WAIT_MS_MAX;
  let waitMs = pollWaitMs(res.retryAfterS);
  for (let last = p; performance.now() < deadline; ) {
    if (last.status !== 'processing' && !(okStatus === 200 && last.status === 'authorized')) return last;
    await new Promise((r) => setTimeout(r, waitMs));
    const polled = await send(reqs.read(m, p.id));
    if (polled.status !== 200) return null;
    last = json(polled.body) ?? last;
    waitMs = pollWaitMs(polled.retryAfterS);
  }
  return null;
}

/**
 * Manual capture: hold (201 authorized), then capture (200 succeeded); a 202 is polled until decided.
 * Acknowledged once captured.
 */
export function manualPayment(reqs: PaymentRequests, pick: Pick, ledger: Ledger): Iteration {
  return async (send) => {
    const { m, account, amount } = pick();
    const { req, ref } = reqs.create(m, account, amount, 'manual');
    const hold = await decided(send, reqs, m, await send(req), 201);
    if (hold?.status !== 'authorized' || typeof hold.id !== 'string') {
      ledger.unacknowledged.push(ref);
      return false;
    }
    const cap = await decided(send, reqs, m, await send(reqs.capture(m, hold.id)), 200);
    const ok = cap?.status === 'succeeded';
    (ok ? ledger.acknowledged : ledger.unacknowledged).push(ref);
    return ok;
  };
}
