// Merchants: identity, API secret (encrypted at rest with AES-256-GCM under the deployment's
// master key), and per-merchant limits. Configuration lives in Postgres; readers cache it briefly.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type pg from 'pg';

import { newMerchantId, newSecret, SAFE_ID } from '../protocol/ids.ts';

const IV_BYTES = 12;
const TAG_BYTES = 16;

export function encryptSecret(masterKey: Buffer, secret: string, merchantId: string): Buffer {
  if (masterKey.length !== 32) throw new Error('assertion: master key must be 32 bytes');
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', masterKey, iv);
  cipher.setAAD(Buffer.from(merchantId)); // a secret copied to another merchant's row will not decrypt
  const ct = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ct]);
}

export function decryptSecret(masterKey: Buffer, blob: Buffer, merchantId: string): string {
  const iv = blob.subarray(0, IV_BYTES);
  const tag = blob.subarray(IV_BYTES, IV_BYTES + TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', masterKey, iv);
  decipher.setAAD(Buffer.from(merchantId));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(blob.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
}


export type Merchant = {
  id: string;
  name: string;
  status: 'active' | 'disabled';
  paymentAmountMax: number;
  /** Decrypted API secret: keep it out of logs (loggers redact `secret`). */
  secret: string;
};

export async function createMerchant(
  pool: pg.Pool,
  masterKey: Buffer,
  input: { id?: string; name: string; paymentAmountMax?: number; secret?: string },
): Promise<{ id: string; secret: string }> {
  const id = input.id ?? newMerchantId();
  if (!SAFE_ID.test(id)) throw new Error(`merchant id must be 1-64 of [A-Za-z0-9_-]: ${id}`);
  const secret = input.secret ?? newSecret();
  await pool.query(
    `INSERT INTO merchants (id, name, secret_enc, payment_amount_max) VALUES ($1, $2, $3, $4)`,
    [id, input.name, encryptSecret(masterKey, secret, id), input.paymentAmountMax ?? 5_000_000],
  );
  return { id, secret };
}

export async function findMerchant(pool: pg.Pool, masterKey: Buffer, id: string): Promise<Merchant | null> {
  const res = await pool.query<{ id: string; name: string; status: 'active' | 'disabled'; payment_amount_max: number; secret_enc: Buffer }>(
    'SELECT id, name, status, payment_amount_max, secret_enc FROM merchants WHERE id = $1',
    [id],
  );
  const row = res.rows[0];
  if (!row) return null;
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    paymentAmountMax: row.payment_amount_max,
    secret: decryptSecret(masterKey, row.secret_enc, row.id),
  };
}

/** Bounded read-through cache: merchants change rarely; a disabled merchant takes effect within ttlMs. */
export class MerchantDirectory {
  private readonly cache = new Map<string, { merchant: Merchant | null; expiresAtMs: number }>();
  private readonly pool: pg.Pool;
  private readonly masterKey: Buffer;
  private readonly ttlMs: number;
  private readonly entriesMax: number;

  constructor(pool: pg.Pool, masterKey: Buffer, opts: { ttlMs?: number; entriesMax?: number } = {}) {
    this.pool = pool;
    this.masterKey = masterKey;
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.entriesMax = opts.entriesMax ?? 10_000;
  }

  async get(id: string): Promise<Merchant | null> {
    const now = Date.now();
    const hit = this.cache.get(id);
    if (hit && hit.expiresAtMs > now) return hit.merchant;
    const merchant = await findMerchant(this.pool, this.masterKey, id);
    if (this.cache.size >= this.entriesMax) this.cache.delete(this.cache.keys().next().value as string);
    // Unknown ids are cached for a shorter time so a merchant created a moment ago works soon.
    this.cache.set(id, { merchant, expiresAtMs: now + (merchant ? this.ttlMs : Math.min(this.ttlMs, 2_000)) });
    return merchant;
  }
}
