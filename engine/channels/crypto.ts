// ChannelCrypto implementations: inline (tests, sandboxes, tools) and on the piscina pool (the
// engine, where an RSA-2048 signature's ~1 ms of CPU must not block the event loop).
import { createSign, createVerify } from 'node:crypto';
import type { CryptoPool } from '../workers/pool.ts';
import type { ChannelCrypto } from './types.ts';

export const inlineCrypto: ChannelCrypto = {
  async rsaSign(privateKeyPem, data) {
    return createSign('RSA-SHA256').update(data).sign(privateKeyPem, 'base64');
  },
  async rsaVerify(publicKeyPem, data, signatureB64) {
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
      try {
        return (await pool.run({ op: 'rsaVerify', keyPem, data, signatureB64 })) as boolean;
      } catch {
        return false;
      }
    },
  };
}
