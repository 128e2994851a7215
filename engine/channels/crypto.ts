// ChannelCrypto implementations: inline (tests, sandboxes, tools) and on the piscina pool (the
// engine, where an RSA-2048 signature's ~1 ms of CPU must not block the event loop).
import { createSign, createVerify } from 'node:crypto';
import type { CryptoPool } from '../workers/pool.ts';
import type { ChannelCrypto } from './types.ts';

/**
 * Strict base64 (RFC 4648 §4, padded): node's decoder skips characters outside the alphabet, so
 * "…Q%3D" with one byte flipped to "…Q%7D" would decode to the same signature. A signature that
 * is not in canonical form is refused before it is verified, so no two encodings pass.
 */
const CANONICAL_B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
export const isCanonicalBase64 = (s: string) => s.length > 0 && CANONICAL_B64.test(s) && Buffer.from(s, 'base64').toString('base64') === s;

export const inlineCrypto: ChannelCrypto = {
  async rsaSign(privateKeyPem, data) {
    return createSign('RSA-SHA256').update(data).sign(privateKeyPem, 'base64');
  },
  async rsaVerify(publicKeyPem, data, signatureB64) {
    if (!isCanonicalBase64(signatureB64)) return false;
    try {
      return createVerify('RSA-SHA256').update(data).verify(publicKeyPem, signatureB64, 'base64');
    } catch {
      return false; // a malformed key or signature is a failed verification, not a crash
    }
  },
};

export function poolCrypto(pool: CryptoPool): ChannelCrypto {
  return {
    async rsaSign(keyPem, data) {
      return (await pool.run({ op: 'rsaSign', keyPem, data })) as string;
    },
    async rsaVerify(keyPem, data, signatureB64) {
      if (!isCanonicalBase64(signatureB64)) return false;
      try {
        return (await pool.run({ op: 'rsaVerify', keyPem, data, signatureB64 })) as boolean;
      } catch {
        return false;
      }
    },
  };
}
