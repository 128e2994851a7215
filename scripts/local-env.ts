// The local development environment: the master key lives in .data/master.key (git-ignored),
// created on first use, so `npm start` and `npm run ops` agree without any setup. A deployment
// sets PEAKPAY_MASTER_KEY itself and this file is never consulted.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DATA_DIR = join(PROJECT_ROOT, '.data');
const MASTER_KEY_FILE = join(DATA_DIR, 'master.key');

export function localMasterKey(): string {
  if (!existsSync(MASTER_KEY_FILE)) {
    mkdirSync(DATA_DIR, { recursive: true });
    writeFileSync(MASTER_KEY_FILE, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  }
  return readFileSync(MASTER_KEY_FILE, 'utf8').trim();
}

/** process.env plus the local master key when none is set. */
export function localEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return env.PEAKPAY_MASTER_KEY ? env : { ...env, PEAKPAY_MASTER_KEY: localMasterKey() };
}
