// Shared test plumbing: a fresh namespace per test file (own streams, consumers and Redis key
// prefix) against the real servers brought up by the global setup.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { loadConfig, type Config } from '../engine/config.ts';
import { connectNats } from '../engine/infra.ts';
import { names } from '../engine/protocol/subjects.ts';

export const TEST_MASTER_KEY = 'a1'.repeat(32);

export function testConfig(overrides: Record<string, string> = {}): Config {
  const stack = inject('stack');
  return loadConfig({
    NATS_URL: stack.natsUrl,
    REDIS_URL: stack.redisUrl,
    DATABASE_URL: stack.databaseUrl,
    PEAKPAY_MASTER_KEY: TEST_MASTER_KEY,
    PEAKPAY_NAMESPACE: `t${randomBytes(5).toString('hex')}`,
    PEAKPAY_SHARD_COUNT: '4',
    PEAKPAY_LOG_LEVEL: 'warn',
    ...overrides,
  });
}

export const uniqueId = (prefix: string) => `${prefix}_${randomBytes(6).toString('hex')}`;

/** Deletes the namespace's streams (and so its consumers) after a test file. */
export async function dropStreams(config: Config): Promise<void> {
  const nc = await connectNats(config, 'test-cleanup');
  const jsm = await jetstreamManager(nc);
  const n = names(config.namespace, config.shardCount);
  for (const s of n.allStreams) await jsm.streams.delete(s).catch(() => undefined);
  await nc.close();
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
