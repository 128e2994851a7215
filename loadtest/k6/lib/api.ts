// Signed calls of the public API (API.md): HMAC-SHA256 over METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY\n
// with k6/crypto, a fresh nonce and a fresh Idempotency-Key on every POST.
import crypto from 'k6/crypto';
import exec from 'k6/execution';
import http, { type RefinedResponse, type ResponseType } from 'k6/http';
import type { Merchant, Target } from './target.ts';

/** 24 hex characters from 12 random bytes: within the 16–64 [A-Za-z0-9] API.md asks for. */
export function nonce(): string {
  const bytes = new Uint8Array(crypto.randomBytes(12));
  let s = '';
  for (const b of bytes) s += (b < 16 ? '0' : '') + b.toString(16);
  return s;
}

export function authorization(m: Merchant, method: string, path: string, body: string): string {
  const ts = String(Math.floor(Date.now() / 1000));
  const n = nonce();
  const sig = crypto.hmac('sha256', m.secret, `${method}\n${path}\n${ts}\n${n}\n${body}\n`, 'hex');
  return `PEAKPAY-HMAC-SHA256 merchant_id="${m.id}",timestamp="${ts}",nonce="${n}",signature="${sig}"`;
}

/** Unique per request across VUs, iterations and runs: [A-Za-z0-9_-], ≤ 64 characters. */
export function uniqueRef(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${exec.vu.idInTest.toString(36)}x${exec.scenario.iterationInTest.toString(36)}`;
}

export type Call = { res: RefinedResponse<ResponseType | undefined>; json: Record<string, unknown> | null };

function parse(res: RefinedResponse<ResponseType | undefined>): Call {
  let json: Record<string, unknown> | null = null;
  try {
    json = typeof res.body === 'string' && res.body.length > 0 ? (JSON.parse(res.body) as Record<string, unknown>) : null;
  } catch {
    json = null;
  }
  return { res, json };
}

export function post(t: Target, m: Merchant, path: string, payload: unknown, tags: Record<string, string> = {}, idempotencyKey = uniqueRef('k')): Call {
  const body = JSON.stringify(payload);
  const res = http.post(`${t.baseUrl}${path}`, body, {
    headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey, authorization: authorization(m, 'POST', path, body) },
    tags: { name: path.replace(/pay_[A-Za-z0-9_-]+/, '{id}'), ...tags },
  });
  return parse(res);
}

export function get(t: Target, m: Merchant, path: string, tags: Record<string, string> = {}): Call {
  const res = http.get(`${t.baseUrl}${path}`, {
    headers: { authorization: authorization(m, 'GET', path, '') },
    tags: { name: path.replace(/pay_[A-Za-z0-9_-]+/, '{id}').replace(/\?.*/, ''), ...tags },
  });
  return parse(res);
}

/** A balance payment from one of the merchant's wallets (round robin by iteration). */
export function balancePayment(t: Target, m: Merchant, capture: 'automatic' | 'manual', tags: Record<string, string> = {}): Call {
  if (m.accounts.length === 0) throw new Error(`merchant ${m.id} has no wallet: set ACCOUNT_IDS`);
  const account = m.accounts[exec.scenario.iterationInTest % m.accounts.length] as string;
  return post(t, m, '/v1/payments', {
    out_trade_no: uniqueRef('K6'), amount: t.amount, currency: 'CNY', method: 'balance', account_id: account,
    capture, scene: 'pc', subject: 'Game card 100',
  }, { kind: capture === 'automatic' ? 'create_auto' : 'create_manual', ...tags });
}

/** Spread merchants over iterations: uniform traffic when the seed has many. */
export const merchantFor = (t: Target): Merchant => t.merchants[exec.scenario.iterationInTest % t.merchants.length] as Merchant;

export const statusOf = (c: Call): string | undefined => (typeof c.json?.status === 'string' ? c.json.status : undefined);
