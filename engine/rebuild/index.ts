// Rebuilds Redis — the engine's fast state — from Postgres (the ledger of record) and the event log
// (MISSION §4.4), after Redis lost data (a power loss past the AOF fsync, a replaced server, …).
//
//   1. Refuse while engines run (live shard leases), unless forced: an engine deciding against a
//      Redis that is empty or half written would decide wrongly.
//   2. Wait (bounded) until the settlement consumer has written every event of <NS>_EVT to Postgres.
//   3. Delete the keys the rebuilders own (all merchants, or only the named ones), then, merchant by
//      merchant, run each rebuilder of REBUILDERS: pipelined writes, Postgres read page by page.
//
// Not rebuilt, and not deleted: ingress idempotency records (24 h) and nonces (10 min). See
// docs/OPERATIONS.md for the procedure around it. scripts/rebuild.ts is the command line.
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Config } from '../config.ts';
import { SAFE_ID } from '../protocol/ids.ts';
import { names } from '../protocol/subjects.ts';
import { merchantKeys } from '../redis/keys.ts';
import { RedisBatch } from './batch.ts';
import { liveLeases, RebuildError, SETTLE_WAIT_MS_DEFAULT, waitForSettlement } from './preflight.ts';
import { incompleteCommands, PAGE_ROWS, REBUILDERS, type RebuildContext, type Rebuilder } from './rebuilders.ts';

export { PIPELINE_COMMANDS_MAX } from './batch.ts';
export { isRebuildError, liveLeases, RebuildError, SETTLE_WAIT_MS_DEFAULT, waitForSettlement } from './preflight.ts';
export { opResultOf, recordFromView, type OpResult } from './records.ts';
export { PAGE_ROWS, REBUILDERS, type RebuildContext, type Rebuilder } from './rebuilders.ts';

/** Keys per SCAN step while deleting the old state. */
export const SCAN_COUNT = 1_000;

export type RebuildDeps = { nc: NatsConnection; redis: Redis; pool: pg.Pool };

export type RebuildOptions = {
  config: Pick<Config, 'namespace' | 'shardCount' | 'opTtlS'>;
  /** Only these merchants (their keys are replaced, no other key is touched). Default: every merchant. */
  merchantIds?: readonly string[];
  /** Skip the running-engine check (the operator knows the lease holders are dead). */
  force?: boolean;
  settleTimeoutMs?: number;
  rebuilders?: readonly Rebuilder[];
  now?: () => number;
  log?: (line: string) => void;
};

export type RebuildReport = {
  merchants: number;
  /** Keys deleted before writing. */
  cleared: number;
  /** Records written per rebuilder. */
  counts: Record<string, number>;
  /**
   * Per kind, records rebuilt approximately from events older than payment_record/result_code
   * ('payment', 'op'), and op records left to another rebuilder ('op_of_other_kind': risk.*).
   */
  inexact: Record<string, number>;
  /** Commands whose events were incomplete: left out, to be applied by their redelivery. */
  incompleteCommands: string[];
  /** Last sequence of the event stream that Postgres had caught up with. */
  eventsLastSeq: number;
  redisCommands: number;
  tookMs: number;
};

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function deleteMatching(redis: Redis, batch: RedisBatch, match: string, doomed: (key: string) => boolean): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT);
    cursor = next;
    for (const key of keys) {
      if (!doomed(key)) continue;
      await batch.add((p) => p.del(key));
      deleted++;
    }
  } while (cursor !== '0');
  await batch.flush();
  return deleted;
}

async function* everyMerchant(pool: pg.Pool): AsyncGenerator<string> {
  let after = '';
  for (;;) {
    const r = await pool.query<{ id: string }>('SELECT id FROM merchants WHERE id > $1 ORDER BY id LIMIT $2', [after, PAGE_ROWS]);
    for (const row of r.rows) yield row.id;
    const last = r.rows[r.rows.length - 1];
    if (!last || r.rows.length < PAGE_ROWS) return;
    after = last.id;
  }
}

export async function rebuildRedis(deps: RebuildDeps, opts: RebuildOptions): Promise<RebuildReport> {
  const t0 = Date.now();
  const log = opts.log ?? (() => undefined);
  const { config } = opts;
  const rebuilders = opts.rebuilders ?? REBUILDERS;
  const n = names(config.namespace, config.shardCount);
  const prefix = n.redisPrefix;
  const jsm = await jetstreamManager(deps.nc);
  for (const id of opts.merchantIds ?? []) {
    if (!SAFE_ID.test(id)) throw new RebuildError(`not a merchant id: ${JSON.stringify(id)}`);
  }

  if (!opts.force) {
    const leases = await liveLeases(deps.nc, jsm, n);
    if (leases.length > 0) {
      throw new RebuildError(
        `engines of namespace ${config.namespace} are running (live keys in ${n.leaseBucket}: ${leases.join(', ')}): ` +
          'stop every engine process first (leases expire a few seconds after a kill); pass --force only if you know them dead',
      );
    }
  }
  log(`waiting for the settlement consumer to write every event of ${n.evtStream} …`);
  const { lastSeq } = await waitForSettlement(jsm, n, opts.settleTimeoutMs ?? SETTLE_WAIT_MS_DEFAULT);
  log(`Postgres holds the event log up to sequence ${lastSeq}`);

  const batch = new RedisBatch(deps.redis);
  const merchantKey = new RegExp(`^${escapeRegex(prefix)}:\\{([^}]+)\\}:(.*)$`);
  const ownedByMerchant = (rest: string) => rebuilders.some((r) => r.owns.some((kind) => rest.startsWith(kind)));
  let cleared = 0;
  if (opts.merchantIds) {
    for (const m of opts.merchantIds) {
      cleared += await deleteMatching(deps.redis, batch, `${merchantKeys(prefix, m).base}*`, (key) => {
        const rest = merchantKey.exec(key)?.[2];
        return rest !== undefined && ownedByMerchant(rest);
      });
    }
  } else {
    cleared += await deleteMatching(deps.redis, batch, `${prefix}:{*`, (key) => {
      if (rebuilders.some((r) => r.ownsShared?.(key, prefix))) return true;
      const rest = merchantKey.exec(key)?.[2];
      return rest !== undefined && ownedByMerchant(rest);
    });
  }
  log(`deleted ${cleared} keys of the old state`);

  const nowMs = (opts.now ?? Date.now)();
  const windowStartMs = nowMs - config.opTtlS * 1000;
  const counts: Record<string, number> = Object.fromEntries(rebuilders.map((r) => [r.name, 0]));
  const inexact: Record<string, number> = {};
  const incomplete: string[] = [];
  let merchants = 0;
  const source = opts.merchantIds ?? everyMerchant(deps.pool);
  for await (const merchantId of source) {
    const skipped = await incompleteCommands(deps.pool, merchantId, windowStartMs);
    incomplete.push(...skipped.cmdIds);
    const ctx: RebuildContext = {
      pool: deps.pool, redis: deps.redis, batch, prefix, shardCount: config.shardCount, merchantId,
      keys: merchantKeys(prefix, merchantId), nowMs, opTtlS: config.opTtlS, windowStartMs, incomplete: skipped,
      inexact: (what) => (inexact[what] = (inexact[what] ?? 0) + 1),
    };
    for (const r of rebuilders) counts[r.name] = (counts[r.name] ?? 0) + (await r.rebuild(ctx));
    await batch.flush();
    merchants++;
    if (merchants % 100 === 0) log(`${merchants} merchants rebuilt …`);
  }
  if (incomplete.length > 0) log(`left out ${incomplete.length} commands with missing events (applied on redelivery): ${incomplete.slice(0, 20).join(', ')}`);
  return { merchants, cleared, counts, inexact, incompleteCommands: incomplete, eventsLastSeq: lastSeq, redisCommands: batch.sent, tookMs: Date.now() - t0 };
}
