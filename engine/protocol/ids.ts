// Identifiers. Every id that becomes part of a NATS subject or a Redis key is restricted to
// [A-Za-z0-9_-] so it can never inject a '.', '*', '>', '{' or ':' into either.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ulid } from 'ulid';

export const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const safeIdSchema = z.string().regex(SAFE_ID, 'must be 1-64 of [A-Za-z0-9_-]');
export const merchantIdSchema = safeIdSchema;

/** Random bytes drawn from the CSPRNG at once; each byte is used for one ULID character only. */
const RANDOM_POOL_BYTES = 4096;
let randomPool = randomBytes(RANDOM_POOL_BYTES);
let randomPoolAt = 0;

/**
 * A fraction in [0, 1) from the pool, in steps of 1/256: ulid() maps it to one of 32 characters,
 * so every character stays uniform. ulid()'s own generator makes one getRandomValues call per
 * character (16 per id), which was ~10% of the ingress's CPU for the request id alone (bench:http).
 */
function pooledRandom(): number {
  if (randomPoolAt === RANDOM_POOL_BYTES) {
    randomPool = randomBytes(RANDOM_POOL_BYTES);
    randomPoolAt = 0;
  }
  return (randomPool[randomPoolAt++] as number) / 256;
}
const newUlid = () => ulid(undefined, pooledRandom);

export const newPaymentId = () => `pay_${newUlid()}`;
export const newRefundId = () => `re_${newUlid()}`;
export const newCommandId = () => `cmd_${newUlid()}`;
export const newMerchantId = () => `m_${newUlid().toLowerCase()}`;
export const newRequestId = () => `req_${newUlid()}`;
export const newSecret = () => `sk_${randomBytes(24).toString('base64url')}`;

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const CROCKFORD_ID_CHARS = 26;

/**
 * The first 26 Crockford base-32 characters (130 bits) of a digest: upper-case letters and digits
 * only, so a derived id also fits channels whose order numbers allow no '-' or '_' (UnionPay's
 * orderId drops our '_' and keeps the rest, reversibly).
 */
export function crockford26(digest: Buffer): string {
  if (digest.length * 8 < CROCKFORD_ID_CHARS * 5) throw new Error('assertion: digest too short for a 26-character id');
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const byte of digest) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < CROCKFORD_ID_CHARS) {
      bits -= 5;
      out += CROCKFORD[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
    if (out.length === CROCKFORD_ID_CHARS) break;
  }
  return out;
}
