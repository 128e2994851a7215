// CPU-heavy crypto of the payment channels, run in piscina worker threads (see pool.ts): RSA-2048
// signatures (Alipay RSA2, WeChat Pay v3 request signing and callback verification, UnionPay) and
// AES-256-GCM (WeChat Pay v3 notification resources; card and phone numbers at rest). Measured in
// loadtest/bench-workers.ts: an RSA-2048 signature costs ~1 ms of CPU, two orders of magnitude more
// than anything else a payment does, so it must not run on the event loop of the engine or ingress.
import { createCipheriv, createDecipheriv, createSign, createVerify, randomBytes } from 'node:crypto';

export type CryptoTask =
  | { op: 'rsaSign'; keyPem: string; data: string }
  | { op: 'rsaVerify'; keyPem: string; data: string; signatureB64: string }
  | { op: 'aesGcmEncrypt'; keyHex: string; plaintext: string; aad: string }
  | { op: 'aesGcmDecrypt'; keyHex: string; blobB64: string; aad: string };

/** One task, or a batch of them (one thread hop for many signatures). */
export type CryptoJob = CryptoTask | CryptoTask[];
export type CryptoResult = string | boolean;

export function runTask(t: CryptoTask): CryptoResult {
  switch (t.op) {
    case 'rsaSign':
      return createSign('RSA-SHA256').update(t.data).sign(t.keyPem, 'base64');
    case 'rsaVerify':
      return createVerify('RSA-SHA256').update(t.data).verify(t.keyPem, t.signatureB64, 'base64');
    case 'aesGcmEncrypt': {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', Buffer.from(t.keyHex, 'hex'), iv);
      c.setAAD(Buffer.from(t.aad));
      const ct = Buffer.concat([c.update(t.plaintext, 'utf8'), c.final()]);
      return Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64');
    }
    case 'aesGcmDecrypt': {
      const blob = Buffer.from(t.blobB64, 'base64');
      const d = createDecipheriv('aes-256-gcm', Buffer.from(t.keyHex, 'hex'), blob.subarray(0, 12));
      d.setAAD(Buffer.from(t.aad));
      d.setAuthTag(blob.subarray(12, 28));
      return Buffer.concat([d.update(blob.subarray(28)), d.final()]).toString('utf8');
    }
    default: {
      const never: never = t;
      throw new Error(`assertion: unknown crypto task ${JSON.stringify(never)}`);
    }
  }
}

/** The piscina entry point. */
export default function (job: CryptoJob): CryptoResult | CryptoResult[] {
  return Array.isArray(job) ? job.map(runTask) : runTask(job);
}
