// The merchant side of webhooks (API.md): every notification carries
//   Peakpay-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
// Verify it over the raw body bytes exactly as received (before any JSON parsing), and reject a
// timestamp outside the tolerance so that a captured notification cannot be replayed later.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const WEBHOOK_SIGNATURE_HEADER = 'peakpay-signature';
export const WEBHOOK_TOLERANCE_S_DEFAULT = 300;
/** A header longer than this is refused before any parsing (room for a few v1 values during a secret rotation). */
const HEADER_CHARS_MAX = 1024;
const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;

export type WebhookVerifyOptions = { toleranceS?: number; nowS?: number };

function webhookMac(secret: string, timestampS: string, rawBody: string | Uint8Array): Buffer {
  return createHmac('sha256', secret).update(`${timestampS}.`).update(rawBody).digest();
}

/** The header value for a body: what the sender computes; merchants use it to test their handler. */
export function signWebhook(secret: string, rawBody: string | Uint8Array, timestampS: number = Math.floor(Date.now() / 1000)): string {
  return `t=${timestampS},v1=${webhookMac(secret, String(timestampS), rawBody).toString('hex')}`;
}

/**
 * True only when the header is well formed, its timestamp is within toleranceS of now, and one of
 * its v1 signatures matches (several may be present while a secret is being rotated). Compared in
 * constant time. Returns a boolean, not an object, so that `if (verifyWebhook(…))` cannot be
 * fooled by a truthy failure value.
 */
export function verifyWebhook(
  secret: string,
  signatureHeader: string | null | undefined,
  rawBody: string | Uint8Array,
  opts: WebhookVerifyOptions = {},
): boolean {
  if (!secret || typeof signatureHeader !== 'string' || signatureHeader.length > HEADER_CHARS_MAX) return false;
  let timestamp: string | null = null;
  const candidates: Buffer[] = [];
  for (const part of signatureHeader.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return false;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (timestamp !== null || !/^\d{1,12}$/.test(value)) return false;
      timestamp = value;
    } else if (key === 'v1') {
      if (!HEX_SHA256.test(value)) return false;
      candidates.push(Buffer.from(value, 'hex'));
    }
    // Other schemes (v0, a future v2) are ignored, as Stripe does, so senders can add one.
  }
  if (timestamp === null || candidates.length === 0) return false;
  const toleranceS = opts.toleranceS ?? WEBHOOK_TOLERANCE_S_DEFAULT;
  const nowS = opts.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowS - Number(timestamp)) > toleranceS) return false;
  const expected = webhookMac(secret, timestamp, rawBody);
  let ok = false;
  // Every candidate is compared, so the time taken does not tell which one matched.
  for (const c of candidates) ok = timingSafeEqual(expected, c) || ok;
  return ok;
}
