// Shard ownership on NATS itself (JetStream KV), no home-made coordinator (MISSION §4.7).
//
// Bucket <ns>_shard_leases, TTL leaseTtlMs: every key disappears unless rewritten in time.
//   engine.<id>   presence of a live engine (put every tick)
//   shard.<n>     the owner of shard n; taken with create() (fails if it exists), kept with
//                 update(revision) — a compare-and-set, so two engines can never both renew it.
// Each engine aims at ceil(shards / live engines) shards: it takes free shards up to that, and
// gives back extras (stopping the shard first, then deleting the key at its revision) so a new
// engine gets its share. An owner that has not renewed for fenceAfterMs stops the shard itself,
// before the key can expire and another engine take it: never two owners at once. A SIGKILLed
// engine's keys expire after leaseTtlMs and the others take its shards within one more tick.
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

export type LeaseOptions = {
  bucket: string;
  engineId: string;
  shardCount: number;
  leaseTtlMs?: number;
  tickMs?: number;
  /** Starts the shard; resolves once it is consuming. */
  onAcquire: (shard: number) => Promise<void>;
  /** Stops the shard; resolves once nothing of it runs any more. */
  onRelease: (shard: number) => Promise<void>;
  log: Logger;
};

export const LEASE_TTL_MS = 6_000;
export const LEASE_TICK_MS = 1_000;

type Owned = { revision: number; renewedAtMs: number };

export class ShardLeases {
  private readonly o: Required<Omit<LeaseOptions, 'log'>> & { log: Logger };
  private kv: KV | null = null;
  private readonly owned = new Map<number, Owned>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;
  private readonly fenceAfterMs: number;

  constructor(opts: LeaseOptions) {
    this.o = { leaseTtlMs: LEASE_TTL_MS, tickMs: LEASE_TICK_MS, ...opts };
    if (this.o.tickMs * 3 > this.o.leaseTtlMs) throw new Error('assertion: lease TTL must cover three renewals');
    // Stop a shard we could not renew while its key still has half its life left: the stop
    // (one in-flight batch) must be over before another engine can take the key.
    this.fenceAfterMs = Math.floor(this.o.leaseTtlMs / 2);
  }

  get shards(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  static async openBucket(nc: NatsConnection, bucket: string, ttlMs = LEASE_TTL_MS): Promise<KV> {
    return new Kvm(nc).create(bucket, { ttl: ttlMs, history: 1 });
  }

  async start(nc: NatsConnection): Promise<void> {
    this.kv = await ShardLeases.openBucket(nc, this.o.bucket, this.o.leaseTtlMs);
    await this.tick();
    this.timer = setInterval(() => {
      // A tick that fails (NATS unreachable, a KV request timing out under load) must not end the
      // loop, let alone the process as an unhandled rejection: the next tick tries again, and a
      // shard not renewed within fenceAfterMs is stopped by renewAll() all the same.
      if (!this.ticking) {
        this.ticking = this.tick()
          .catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'lease tick failed; the next tick retries'))
          .finally(() => (this.ticking = null));
      }
    }, this.o.tickMs);
  }

  /** Stops every owned shard, then frees its key so another engine takes it at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    await Promise.all(this.shards.map((s) => this.release(s)));
    await this.kv?.delete(this.presenceKey()).catch(() => undefined);
  }

  private presenceKey(): string {
    return `engine.${this.o.engineId}`;
  }

  private async tick(): Promise<void> {
    const kv = this.kv;
    if (!kv || this.stopped) return;
    const now = Date.now();
    try {
      await kv.put(this.presenceKey(), this.o.engineId);
    } catch (err) {
      this.o.log.warn({ err }, 'lease presence not written');
    }
    await this.renewAll(kv, now);
    if (this.stopped) return;
    let live: number;
    try {
      live = await this.liveEngines(kv);
    } catch (err) {
      // Without the count no share can be worked out: keep what is owned (renewed above), change nothing.
      this.o.log.warn({ err: (err as Error).message }, 'live engines not counted; shards left as they are this tick');
      return;
    }
    const target = Math.ceil(this.o.shardCount / Math.max(1, live));
    // Give back extras first (highest shards), then take free ones up to the target.
    for (const s of this.shards.reverse()) {
      if (this.owned.size <= target) break;
      await this.release(s);
    }
    for (let s = 0; s < this.o.shardCount && this.owned.size < target && !this.stopped; s++) {
      if (!this.owned.has(s)) await this.tryAcquire(kv, s);
    }
  }

  private async renewAll(kv: KV, now: number): Promise<void> {
    await Promise.all(
      this.shards.map(async (s) => {
        const lease = this.owned.get(s) as Owned;
        try {
          lease.revision = await kv.update(`shard.${s}`, this.o.engineId, lease.revision);
          lease.renewedAtMs = now;
        } catch (err) {
          const silentMs = Date.now() - lease.renewedAtMs;
          if (silentMs >= this.fenceAfterMs || !isTransient(err)) {
            this.o.log.warn({ shard: s, silentMs, err: (err as Error).message }, 'shard lease lost; stopping the shard');
            await this.stopShard(s);
          }
        }
      }),
    );
  }

  private async liveEngines(kv: KV): Promise<number> {
    let n = 0;
    const keys = await kv.keys('engine.*');
    for await (const _k of keys) n++;
    return n;
  }

  private async tryAcquire(kv: KV, shard: number): Promise<void> {
    let revision: number;
    try {
      revision = await kv.create(`shard.${shard}`, this.o.engineId);
    } catch {
      return; // owned by another engine
    }
    this.owned.set(shard, { revision, renewedAtMs: Date.now() });
    this.o.log.info({ shard, event: 'lease_taken' }, 'shard lease taken');
    try {
      await this.o.onAcquire(shard);
      this.o.log.info({ shard }, 'shard acquired');
    } catch (err) {
      this.o.log.error({ shard, err }, 'shard failed to start; giving it back');
      await this.release(shard);
    }
  }

  private async stopShard(shard: number): Promise<void> {
    this.owned.delete(shard);
    await this.o.onRelease(shard);
    this.o.log.info({ shard, event: 'shard_stopped' }, 'shard stopped');
  }

  private async release(shard: number): Promise<void> {
    const lease = this.owned.get(shard);
    if (!lease) return;
    await this.stopShard(shard);
    await this.kv?.delete(`shard.${shard}`, { previousSeq: lease.revision }).catch(() => undefined);
    this.o.log.info({ shard }, 'shard released');
  }
}

/** A timeout or lost connection may heal before the fence; a wrong revision never does. */
function isTransient(err: unknown): boolean {
  const msg = String((err as Error)?.message ?? err);
  return !/wrong last sequence|revision|sequence mismatch/i.test(msg);
}
