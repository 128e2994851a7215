// Request signing of API.md, written again on the client side on purpose: the SDK must run
// without the server's code, and the integration test proves the server accepts what this signs.
//   Authorization: PEAKPAY-HMAC-SHA256 merchant_id="m_1",timestamp="1764300000",nonce="…",signature="<hex>"
//   signature = hex(HMAC-SHA256(secret, METHOD\nPATH_WITH_QUERY\nTIMESTAMP\nNONCE\nBODY\n))
import { createHmac, randomBytes } from 'node:crypto';

export const AUTH_SCHEME = 'PEAKPAY-HMAC-SHA256';
/** API.md allows 16–64 of [A-Za-z0-9]; 32 characters carry ~190 bits, plenty against reuse. */
export const NONCE_CHARS = 32;
const NONCE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export type SignInput = {
  method: string;
  /** Exactly the path and query that go on the wire, e.g. `/v1/payments?out_trade_no=T1`. */
  pathWithQuery: string;
  /** The raw body bytes as sent; '' for a GET. */
  body: string | Uint8Array;
  timestampS: number;
  nonce: string;
};

/** A nonce of NONCE_CHARS characters of [A-Za-z0-9]; 62 is not a power of two, so bytes ≥ 248 are redrawn to keep it uniform. */
export function newNonce(): string {
  let out = '';
  while (out.length < NONCE_CHARS) {
    for (const b of randomBytes(NONCE_CHARS * 2)) {
      if (b < 248 && out.length < NONCE_CHARS) out += NONCE_ALPHABET[b % 62];
    }
  }
  return out;
}

export function signature(secret: string, input: SignInput): string {
  return createHmac('sha256', secret)
    .update(`${input.method.toUpperCase()}\n${input.pathWithQuery}\n${input.timestampS}\n${input.nonce}\n`)
    .update(input.body)
    .update('\n')
    .digest('hex');
}

/** The Authorization header value for one attempt: every attempt gets its own nonce and timestamp. */
export function authorizationHeader(merchantId: string, secret: string, input: SignInput): string {
  return `${AUTH_SCHEME} merchant_id="${merchantId}",timestamp="${input.timestampS}",nonce="${input.nonce}",signature="${signature(secret, input)}"`;
}
