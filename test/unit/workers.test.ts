// The piscina crypto pool, with real worker threads: results equal the inline computation, and a
// signature made in a worker verifies with the public key; and the pool starts in a process
// started the way npm start starts the engine (with scripts/node-flags.ts's V8 options).
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../scripts/node-flags.ts';
import { CryptoPool, workerExecArgv } from '../../engine/workers/pool.ts';
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

describe('worker execArgv', () => {
  it('keeps loaders and profilers, drops V8 heap options (Worker refuses them), adds tsx when absent', () => {
    expect(workerExecArgv([...NODE_FLAGS, '--import', 'tsx'])).toEqual(['--import', 'tsx']);
    const viaTsx = ['--min-semi-space-size=16', '--require', '/p/tsx/dist/preflight.cjs', '--import', 'file:///p/tsx/dist/loader.mjs'];
    expect(workerExecArgv(viaTsx)).toEqual(viaTsx.slice(1));
    expect(workerExecArgv(['--cpu-prof', '--cpu-prof-dir=/tmp/p', '--max-semi-space-size=32', '--import=tsx'])).toEqual(['--cpu-prof', '--cpu-prof-dir=/tmp/p', '--import=tsx']);
    expect(workerExecArgv([])).toEqual(['--import', 'tsx']);
  });

  it('lets the pool start and work in a process started with NODE_FLAGS', () => {
    const script = `
      import { CryptoPool } from './engine/workers/pool.ts';
      const pool = new CryptoPool({ threads: 1 });
      const keyHex = '11'.repeat(32);
      const blob = await pool.run({ op: 'aesGcmEncrypt', keyHex, plaintext: 'ok in a worker', aad: 'm_1' });
      console.log(await pool.run({ op: 'aesGcmDecrypt', keyHex, blobB64: blob, aad: 'm_1' }));
      await pool.destroy();
    `;
    const r = spawnSync(process.execPath, [...NODE_FLAGS, '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: process.cwd() });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('ok in a worker');
  });
});
