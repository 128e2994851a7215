// Which open holds of a shard are due, so the engine releases expired holds by itself.
//
// Kept in memory per shard owner (a min-heap by deadline with lazy deletion), fed by the outcome
// of every command the shard applies, and rebuilt when a shard is acquired from Redis: the shard's
// merchant set (<ns>:{shard-N}:merchants, written in the same round-trip as a merchant's first
// command) and each merchant's holds:exp sorted set, which the Lua scripts keep exact.
// The expiry itself is a payment.expire command published to the stream, so it is ordered with
// the merchant's other commands and as durable as they are; the script decides, this only nudges.
import type { Redis } from 'ioredis';
import { merchantKeys, type MerchantKeys } from '../redis/keys.ts';
import type { Payment } from '../protocol/payment.ts';

type Entry = { deadlineMs: number; merchantId: string; paymentId: string };

/** A published expiry is not re-published before this long (its result normally arrives first). */
export const EXPIRE_RETRY_MS = 30_000;
/** Page size of the Redis scan when a shard is acquired. */
export const REBUILD_PAGE = 500;

export const shardMerchantsKey = (prefix: string, shard: number) => `${prefix}:{shard-${shard}}:merchants`;

export class HoldTracker {
  private readonly heap: Entry[] = [];
  private readonly retryMs: number;
  private readonly keyOf: (k: MerchantKeys) => string;

  /**
   * The same tracker watches pending channel payments (补单, engine/shards/channel-work.ts) with
   * their own sorted set and look-again interval.
   */
  constructor(opts: { retryMs?: number; key?: (k: MerchantKeys) => string } = {}) {
    this.retryMs = opts.retryMs ?? EXPIRE_RETRY_MS;
    this.keyOf = opts.key ?? ((k) => k.holdsExpiring);
  }
  /** paymentId → current deadline; absent = not open (entries in the heap for it are stale). */
  private readonly open = new Map<string, number>();

  get size(): number {
    return this.open.size;
  }

  /** Record the payment's state after a command: open holds are tracked, resolved ones dropped. */
  observe(merchantId: string, p: Payment): void {
    if (p.hold_expires_at === null) {
      this.open.delete(p.id);
      return;
    }
    this.add(merchantId, p.id, Date.parse(p.hold_expires_at));
  }

  add(merchantId: string, paymentId: string, deadlineMs: number): void {
    if (this.open.get(paymentId) === deadlineMs) return;
    this.open.set(paymentId, deadlineMs);
    this.push({ deadlineMs, merchantId, paymentId });
  }

  /** Stops tracking a payment (resolved). */
  drop(paymentId: string): void {
    this.open.delete(paymentId);
  }

  has(paymentId: string): boolean {
    return this.open.has(paymentId);
  }

  /** Removes and returns up to max holds due at nowMs; each is re-armed retryMs later. */
  takeDue(nowMs: number, max: number): Entry[] {
    const out: Entry[] = [];
    while (out.length < max && this.heap.length > 0 && (this.heap[0] as Entry).deadlineMs <= nowMs) {
      const e = this.pop();
      if (this.open.get(e.paymentId) !== e.deadlineMs) continue; // stale: resolved or re-armed
      out.push(e);
      const retryAt = nowMs + this.retryMs;
      this.open.set(e.paymentId, retryAt);
      this.push({ ...e, deadlineMs: retryAt });
    }
    return out;
  }

  /** Loads every open hold of the shard's merchants from Redis (on acquiring the shard). */
  async load(redis: Redis, prefix: string, shard: number): Promise<void> {
    let cursor = '0';
    do {
      const [next, merchants] = await redis.sscan(shardMerchantsKey(prefix, shard), cursor, 'COUNT', String(REBUILD_PAGE));
      cursor = next;
      const pages = await Promise.all(
        merchants.map((m) => redis.zrange(this.keyOf(merchantKeys(prefix, m)), '0', '-1', 'WITHSCORES')),
      );
      merchants.forEach((m, i) => {
        const flat = pages[i] as string[];
        for (let j = 0; j + 1 < flat.length; j += 2) this.add(m, flat[j] as string, Number(flat[j + 1]));
      });
    } while (cursor !== '0');
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((h[parent] as Entry).deadlineMs <= e.deadlineMs) break;
      h[i] = h[parent] as Entry;
      i = parent;
    }
    h[i] = e;
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0] as Entry;
    const last = h.pop() as Entry;
    const n = h.length;
    if (n === 0) return top;
    // Sift `last` down from the root.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      let value = last.deadlineMs;
      if (l < n && (h[l] as Entry).deadlineMs < value) {
        smallest = l;
        value = (h[l] as Entry).deadlineMs;
      }
      if (r < n && (h[r] as Entry).deadlineMs < value) smallest = r;
      if (smallest === i) break;
      h[i] = h[smallest] as Entry;
      i = smallest;
    }
    h[i] = last;
    return top;
  }
}
