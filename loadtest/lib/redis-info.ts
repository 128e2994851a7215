// What Redis did besides our commands while a scenario ran. An AOF rewrite forks Redis and writes
// the whole dataset on the same two cores (docs/BENCHMARKS.md, session 13): a scenario during which
// one ran reports Redis, and everything beside it, dearer than one without. The benchmark says so
// in each line instead of hiding it.
import type { Redis } from 'ioredis';

/** `started`: INFO's aof_rewrites, which Redis 7 counts when it forks a rewrite, not when it ends. */
export type AofState = { started: number; inProgress: boolean };

function infoField(info: string, name: string): number | null {
  const m = new RegExp(`^${name}:(\\d+)\\r?$`, 'm').exec(info);
  return m ? Number(m[1]) : null;
}

/** Rewrites started since the server started and whether one runs now; null when AOF is off. */
export async function aofState(redis: Redis): Promise<AofState | null> {
  const info = await redis.info('persistence');
  if (infoField(info, 'aof_enabled') !== 1) return null;
  const started = infoField(info, 'aof_rewrites');
  const inProgress = infoField(info, 'aof_rewrite_in_progress');
  if (started === null || inProgress === null) throw new Error('assertion: INFO persistence without aof_rewrites / aof_rewrite_in_progress');
  return { started, inProgress: inProgress === 1 };
}

/**
 * How many rewrites ran, wholly or partly, between two states: those started meanwhile, plus one
 * already running at the start (a rewrite running at both ends counts once).
 */
export function aofRewritesBetween(before: AofState | null, after: AofState | null): number | null {
  if (before === null || after === null) return null;
  return after.started - before.started + (before.inProgress ? 1 : 0);
}
