// The piscina crypto pool, with real worker threads: results equal the inline computation, and a
// signature made in a worker verifies with the public key.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CryptoPool } from '../../engine/workers/pool.ts';
import { runTask } from '../../engine/workers/tasks.ts';

const pool = new CryptoPool({ threads: 1 });
afterAll(() => pool.destroy());

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

describe('crypto pool (piscina)', () => {
  it('signs in a worker what verifies inline, and rejects a tampered message', async () => {
    const data = 'POST\n/v3/pay/transactions/native\n1764300000\nNONCE\n{"amount":1999}\n';
    const sig = (await pool.run({ op: 'rsaSign', keyPem, data })) as string;
    expect(runTask({ op: 'rsaVerify', keyPem: pubPem, data, signatureB64: sig })).toBe(true);
    expect(await pool.run({ op: 'rsaVerify', keyPem: pubPem, data: data.replace('1999', '1'), signatureB64: sig })).toBe(false);
  });

  it('round-trips AES-256-GCM across threads in a batch, and refuses another merchant as AAD', async () => {
    const keyHex = randomBytes(32).toString('hex');
    const [blob] = (await pool.runBatch([{ op: 'aesGcmEncrypt', keyHex, plaintext: '13800138000', aad: 'm_1' }])) as string[];
    expect(runTask({ op: 'aesGcmDecrypt', keyHex, blobB64: blob as string, aad: 'm_1' })).toBe('13800138000');
    await expect(pool.run({ op: 'aesGcmDecrypt', keyHex, blobB64: blob as string, aad: 'm_2' })).rejects.toThrow();
  });
});
