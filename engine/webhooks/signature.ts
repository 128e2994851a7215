// The Peakpay-Signature header of a webhook (API.md): t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
// t + "." + body)>. The key is the merchant's API secret, the one it already signs requests with, so
// a merchant has one secret to keep. The timestamp is taken at each attempt, so a receiver can
// refuse stale deliveries (replays) with a tolerance window whatever the retry schedule.
import { createHmac } from 'node:crypto';

export const SIGNATURE_HEADER = 'Peakpay-Signature';

export function webhookSignature(secret: string, body: string, timestampS: number): string {
  if (!Number.isSafeInteger(timestampS) || timestampS < 0) throw new Error(`assertion: timestamp must be whole seconds, got ${timestampS}`);
  const v1 = createHmac('sha256', secret).update(`${timestampS}.${body}`, 'utf8').digest('hex');
  return `t=${timestampS},v1=${v1}`;
}
