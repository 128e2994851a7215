// A namespace's processes leave nothing in JetStream once it is removed: tests and benchmarks run
// against one long-lived nats-server, and streams left behind (one lease bucket a test file) piled
// up to 1,400 there and slowed every publish (docs/BENCHMARKS.md, session 12).
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../engine/config.ts';
import { connectNats } from '../../engine/infra.ts';
import { startHarness } from '../harness.ts';

async function streamsOf(config: Config, namespace: string): Promise<string[]> {
  const nc = await connectNats(config, 'test-streams');
  try {
    const jsm = await jetstreamManager(nc);
    const all: string[] = [];
    for await (const name of jsm.streams.names()) all.push(name);
    return all.filter((s) => s.toLowerCase().includes(namespace.toLowerCase())).sort();
  } finally {
    await nc.close();
  }
}

describe('removing a namespace', () => {
  it('deletes every stream its engine, settlement and ingress created, the lease bucket included', async () => {
    const h = await startHarness();
    const before = await streamsOf(h.config, h.config.namespace);
    expect(before).toContain(h.names.cmdStream);
    expect(before).toContain(`KV_${h.names.leaseBucket}`);
    // allStreams names all of them, so the cleanup misses none.
    expect(before.filter((s) => !h.names.allStreams.includes(s))).toEqual([]);
    await h.stop();
    expect(await streamsOf(h.config, h.config.namespace)).toEqual([]);
  });
});
