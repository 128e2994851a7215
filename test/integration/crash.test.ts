// Durability and scale-out under SIGKILL (MISSION §4.2, §4.7): engines run as real processes on
// the real NATS, Redis and Postgres; thousands of payments are published straight to JetStream.
import { afterAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamManager } from '@nats-io/jetstream';
import type pg from 'pg';
import type { Config } from '../../engine/config.ts';
import { connectNats, pgPool } from '../../engine/infra.ts';
import { names, type Names } from '../../engine/protocol/subjects.ts';
import { startSettlement } from '../../engine/settlement/consumer.ts';
import { ensureShardConsumer, ensureStreams } from '../../engine/streams.ts';
import {
  jetstreamManager, publishAll, remainingCommands, settlementPending, shardOwners, sigkill, spawnEngine, verifyExactlyOnce, workload,
  type EngineProcess, type LeaseLog,
} from '../engine-process.ts';
import { dropStreams, testConfig, waitFor } from '../helpers.ts';

type Ctx = { config: Config; n: Names; nc: NatsConnection; jsm: JetStreamManager; pool: pg.Pool; settlement: Awaited<ReturnType<typeof startSettlement>> };
const running: EngineProcess[] = [];
const contexts: Ctx[] = [];

async function context(): Promise<Ctx> {
  const config = testConfig({ PEAKPAY_ACK_WAIT_MS: '3000' });
  const n = names(config.namespace, config.shardCount);
  const nc = await connectNats(config, 'crash-test');
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, n);
  for (let s = 0; s < n.shardCount; s++) await ensureShardConsumer(jsm, n, s, config.shardInflightMax, config.ackWaitMs);
  const pool = pgPool(config, 4);
  const settlement = await startSettlement(config, { pool });
  const ctx = { config, n, nc, jsm, pool, settlement };
  contexts.push(ctx);
  return ctx;
}

function engine(ctx: Ctx, id: string): EngineProcess {
  const p = spawnEngine(ctx.config, id);
  running.push(p);
  return p;
}

async function drained(ctx: Ctx, timeoutMs = 60_000): Promise<void> {
  await waitFor('commands applied', async () => (await remainingCommands(ctx.jsm, ctx.n)) === 0, timeoutMs);
  await waitFor('events settled', async () => (await settlementPending(ctx.jsm, ctx.n)) === 0, timeoutMs);
}

afterAll(async () => {
  for (const p of running) p.child.kill('SIGKILL');
  for (const c of contexts) {
    await c.settlement.stop();
    await c.nc.close();
    await dropStreams(c.config);
    await c.pool.end();
  }
});

describe('SIGKILL', { timeout: 180_000 }, () => {
  it('kills the engine mid-stream; after a restart every payment has exactly one final state and balances equal the ledger', async () => {
    const ctx = await context();
    const w = workload({ merchants: 40, accountsPer: 2, payments: 4000, creditFen: 60_000 });
    // The whole stream is in JetStream before the engine starts, so the kill lands mid-stream.
    await publishAll(ctx.nc, ctx.n, [...w.setup, ...w.stream]);
    const total = w.setup.length + w.stream.length;
    const first = engine(ctx, 'crash-a');
    await waitFor('a quarter applied', async () => (await remainingCommands(ctx.jsm, ctx.n)) < total * 0.75, 60_000);
    await sigkill(first);
    expect(await remainingCommands(ctx.jsm, ctx.n)).toBeGreaterThan(0);
    engine(ctx, 'crash-b');
    await drained(ctx);
    const { problems, statuses } = await verifyExactlyOnce(ctx.config, ctx.pool, ctx.n, w);
    expect(problems).toEqual([]);
    // The workload is sized so that every kind of final state occurs.
    expect(statuses.succeeded).toBeGreaterThan(0);
    expect(statuses.failed).toBeGreaterThan(0);
    expect(statuses.canceled).toBeGreaterThan(0);
  });

  it('two engines share the shards, never both own one, and one takes over a killed one within 10 s with nothing lost or doubled', async () => {
    const ctx = await context();
    const w = workload({ merchants: 40, accountsPer: 2, payments: 6000, creditFen: 90_000, seed: 7 });
    await publishAll(ctx.nc, ctx.n, w.setup);
    const total = w.setup.length + w.stream.length;
    const a = engine(ctx, 'scale-a');
    const b = engine(ctx, 'scale-b');
    await waitFor('shards split between both engines', async () => {
      const owners = await shardOwners(ctx.nc, ctx.n);
      return owners.every((o) => o !== null) && owners.includes('scale-a') && owners.includes('scale-b');
    }, 30_000);
    // The payments only now: published before the split, a fast engine alone could apply them all
    // before the second one owned a shard, and there would be nothing left to take over.
    await publishAll(ctx.nc, ctx.n, w.stream);
    expect(await remainingCommands(ctx.jsm, ctx.n)).toBeGreaterThan(0);
    await waitFor('a fifth applied', async () => (await remainingCommands(ctx.jsm, ctx.n)) < total * 0.8, 60_000);
    const killedAt = await sigkill(a);
    const takeoverMs = await waitFor('b owns every shard', async () => {
      const owners = await shardOwners(ctx.nc, ctx.n);
      return owners.every((o) => o === 'scale-b') ? Date.now() - killedAt : null;
    }, 20_000);
    expect(takeoverMs).toBeLessThan(10_000);
    await drained(ctx);
    const { problems } = await verifyExactlyOnce(ctx.config, ctx.pool, ctx.n, w);
    expect(problems).toEqual([]);

    // Ownership intervals from both engines' own logs never overlap on a shard.
    const intervals = (p: EngineProcess, endMs: number) => {
      const out: { shard: number; from: number; to: number }[] = [];
      const open = new Map<number, number>();
      for (const e of p.leaseLog as LeaseLog[]) {
        if (e.event === 'lease_taken') open.set(e.shard, e.timeMs);
        else if (open.has(e.shard)) {
          out.push({ shard: e.shard, from: open.get(e.shard) as number, to: e.timeMs });
          open.delete(e.shard);
        }
      }
      for (const [shard, from] of open) out.push({ shard, from, to: endMs });
      return out;
    };
    const ia = intervals(a, killedAt);
    const ib = intervals(b, Date.now());
    expect(ia.length).toBeGreaterThan(0);
    expect(ib.length).toBeGreaterThan(0);
    for (const x of ia) {
      for (const y of ib) {
        if (x.shard === y.shard) expect(x.to <= y.from || y.to <= x.from, `shard ${x.shard} owned by both`).toBe(true);
      }
    }
  });
});
