// Loads the Lua scripts the way BullMQ does: one script per file named <verbNoun>-<numKeys>.lua,
// shared code pulled in by `--@include "includes/x.lua"` (resolved once, here), and each script
// registered in ioredis under a versioned name so an old and a new engine never run each other's
// code during a rolling deploy.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';

/** Bump when any script's contract (KEYS, ARGV or result) changes. */
export const SCRIPTS_VERSION = 9;

const LUA_DIR = join(dirname(fileURLToPath(import.meta.url)), 'lua');
const INCLUDE = /^--@include "([^"]+)"\s*$/m;

export type ScriptName =
  | 'paymentCreate'
  | 'paymentCapture'
  | 'paymentCancel'
  | 'paymentExpire'
  | 'paymentVerify'
  | 'paymentRefund'
  | 'refundChannelResult'
  | 'riskConfigure'
  | 'riskBlacklist'
  | 'accountCreate'
  | 'accountCredit'
  | 'idempotencyBegin'
  | 'idempotencyFinish'
  | 'rateLimit'
  | 'rateLimitNonce'
  | 'admitClaim';

export type LoadedScript = { name: ScriptName; numberOfKeys: number; lua: string; command: string };

function resolveIncludes(source: string, seen: Set<string>): string {
  let out = source;
  for (let guard = 0; guard < 32; guard++) {
    const m = INCLUDE.exec(out);
    if (!m) return out;
    const file = m[1] as string;
    const body = seen.has(file) ? '' : readFileSync(join(LUA_DIR, file), 'utf8');
    seen.add(file);
    out = out.replace(m[0], body);
  }
  throw new Error('assertion: include nesting deeper than 32');
}

export function loadScripts(): LoadedScript[] {
  return readdirSync(LUA_DIR)
    .filter((f) => f.endsWith('.lua'))
    .map((file) => {
      const m = /^([a-zA-Z]+)-(\d+)\.lua$/.exec(file);
      if (!m) throw new Error(`assertion: Lua file name must be verbNoun-<numKeys>.lua: ${file}`);
      const name = m[1] as ScriptName;
      return {
        name,
        numberOfKeys: Number(m[2]),
        lua: resolveIncludes(readFileSync(join(LUA_DIR, file), 'utf8'), new Set()),
        command: `${name}:${SCRIPTS_VERSION}`,
      };
    });
}

let cache: LoadedScript[] | undefined;

/** Registers every script on the client (idempotent). Returns the loaded definitions. */
export function registerScripts(redis: Redis): LoadedScript[] {
  cache ??= loadScripts();
  for (const s of cache) {
    if (!(s.command in redis)) redis.defineCommand(s.command, { numberOfKeys: s.numberOfKeys, lua: s.lua });
  }
  return cache;
}
