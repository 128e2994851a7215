// The shard lease loop on a real NATS KV bucket, when NATS goes away under it: the loop must keep
// running (no unhandled rejection that would end the engine process) and fence itself, stopping
// every shard it can no longer renew before its lease could pass to another engine.
import { jetstreamManager } from '@nats-io/jetstream';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../engine/infra.ts';
import { ShardLeases } from '../../engine/leases/index.ts';
import { testConfig, uniqueId, waitFor } from '../helpers.ts';

const config = testConfig();
const bucket = uniqueId('leases');
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
process.on('unhandledRejection', onUnhandled);

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  const nc = await connectNats(config, 'leases-cleanup');
  await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`).catch(() => undefined);
  await nc.close();
});

describe('shard leases', () => {
  it('survive losing NATS: no unhandled rejection, and every owned shard is stopped within the fence', async () => {
    const nc = await connectNats(config, 'leases-test');
    const acquired: number[] = [];
    const released: number[] = [];
    const leaseTtlMs = 3_000;
    const leases = new ShardLeases({
      bucket, engineId: 'lease-a', shardCount: 4, leaseTtlMs, tickMs: 200,
      onAcquire: async (s) => void acquired.push(s),
      onRelease: async (s) => void released.push(s),
      log: pino({ level: 'silent' }),
    });
    await leases.start(nc);
    expect(leases.shards).toEqual([0, 1, 2, 3]);
    expect(acquired.sort()).toEqual([0, 1, 2, 3]);

    const lostAtMs = Date.now();
    await nc.close();
    // Renewals fail from now on; a shard is stopped once it went unrenewed for half its TTL.
    await waitFor('every shard stopped', async () => (leases.shards.length === 0 ? true : null), 10_000);
    expect(released.sort()).toEqual([0, 1, 2, 3]);
    expect(Date.now() - lostAtMs).toBeLessThan(leaseTtlMs); // before any other engine could take them
    // More ticks fail (presence, count of live engines) without ending the loop.
    await new Promise((r) => setTimeout(r, 1_000));
    await leases.stop();
    expect(unhandled).toEqual([]);
  });
});
