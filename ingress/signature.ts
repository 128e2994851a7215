// The merchant request signature of API.md:
//   Authorization: PEAKPAY-HMAC-SHA256 merchant_id="m_1",timestamp="1764300000",nonce="…",signature="<hex>"
//   signature = hex(HMAC-SHA256(secret, METHOD\nPATH_WITH_QUERY\nTIMESTAMP\nNONCE\nBODY\n))
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const AUTH_SCHEME = 'PEAKPAY-HMAC-SHA256';
export const TIMESTAMP_WINDOW_S = 300;
export const NONCE_TTL_S = 600;
const NONCE = /^[A-Za-z0-9]{16,64}$/;
const HEADER_MAX = 1024;

export type AuthParams = { merchant_id: string; timestamp: string; nonce: string; signature: string };

export function signingString(method: string, pathWithQuery: string, timestamp: string, nonce: string, body: string | Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`${method.toUpperCase()}\n${pathWithQuery}\n${timestamp}\n${nonce}\n`),
    typeof body === 'string' ? Buffer.from(body) : body,
    Buffer.from('\n'),
  ]);
}

export function sign(secret: string, method: string, pathWithQuery: string, timestamp: string, nonce: string, body: string | Buffer): string {
  return createHmac('sha256', secret).update(signingString(method, pathWithQuery, timestamp, nonce, body)).digest('hex');
}

/** Builds the Authorization header value: for clients, tests and tools. */
export function authorization(
  merchantId: string, secret: string, method: string, pathWithQuery: string, body: string | Buffer,
  opts: { timestamp?: number; nonce?: string } = {},
): string {
  const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = opts.nonce ?? randomNonce();
  const signature = sign(secret, method, pathWithQuery, timestamp, nonce, body);
  return `${AUTH_SCHEME} merchant_id="${merchantId}",timestamp="${timestamp}",nonce="${nonce}",signature="${signature}"`;
}

export function randomNonce(): string {
  return randomBytes(24).toString('base64url').replace(/[-_]/g, '').slice(0, 24).padEnd(16, '0');
}

/** Parses the header; null when it is not of our scheme or not well formed. */
export function parseAuthorization(header: string): AuthParams | null {
  if (header.length > HEADER_MAX || !header.startsWith(`${AUTH_SCHEME} `)) return null;
  const params = new Map<string, string>();
  for (const part of header.slice(AUTH_SCHEME.length + 1).split(',')) {
    const m = /^\s*([a-z_]+)="([^"]*)"\s*$/.exec(part);
    if (!m || params.has(m[1] as string)) return null;
    params.set(m[1] as string, m[2] as string);
  }
  const merchant_id = params.get('merchant_id');
  const timestamp = params.get('timestamp');
  const nonce = params.get('nonce');
  const signature = params.get('signature');
  if (params.size !== 4 || !merchant_id || !timestamp || !nonce || !signature) return null;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(merchant_id) || !/^\d{1,12}$/.test(timestamp) || !NONCE.test(nonce) || !/^[0-9a-f]{64}$/.test(signature)) {
    return null;
  }
  return { merchant_id, timestamp, nonce, signature };
}

export function timestampInWindow(timestamp: string, nowMs: number): boolean {
  return Math.abs(Number(timestamp) - Math.floor(nowMs / 1000)) <= TIMESTAMP_WINDOW_S;
}

/** Constant-time comparison of the expected and the given signature. */
export function signatureMatches(expectedHex: string, givenHex: string): boolean {
  const a = Buffer.from(expectedHex, 'hex');
  const b = Buffer.from(givenHex, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
