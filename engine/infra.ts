// Connections to NATS, Redis and Postgres, configured the same way in every process.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import pg from 'pg';
import pino, { type Logger } from 'pino';
import type { Config } from './config.ts';

/**
 * ioredis defines `class VerbatimString extends String` (its RESP3 decoder) when it loads, and V8
 * then keeps String.prototype in dictionary mode: every string method call (charCodeAt, slice,
 * indexOf …) looks its method up the slow way. msgpackr writes each string under 64 characters
 * with charCodeAt, so packing an event took 2.5–3× as long in any process that loaded ioredis
 * (docs/BENCHMARKS.md). Looking up a missing property on a String object often enough makes V8
 * optimise the prototype back into fast mode; test/unit/string-prototype.test.ts checks it did.
 * Runs once, here, after ioredis was loaded (this module imports it), in every process.
 */
export function restoreStringPrototypeFastMode(): void {
  const probe = new String('') as unknown as Record<string, unknown>;
  let seen = 0;
  for (let i = 0; i < STRING_PROTOTYPE_PROBES; i++) if (probe.peakpayAbsentProperty !== undefined) seen++;
  if (seen !== 0) throw new Error('assertion: String.prototype has a property it must not have');
}
/** V8 11.3 (Node 20) needed ~1,000 lookups; 4,000 leave room and take ~50 µs, once. */
const STRING_PROTOTYPE_PROBES = 4_000;
restoreStringPrototypeFastMode();

// int8 (bigint) columns hold money: parse them as numbers, refusing any that is not exact.
pg.types.setTypeParser(20, (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`assertion: int8 beyond 2^53: ${v}`);
  return n;
});

/** `destination` defaults to stdout; tests pass a stream to read what would be logged. */
export function logger(config: Config, name: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    name,
    level: config.logLevel,
    // Defence in depth: never let a secret reach a log line even if someone logs a request.
    redact: { paths: ['secret', '*.secret', 'req.headers.authorization', 'headers.authorization', 'secret_enc'], censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

export function connectNats(config: Config, name: string): Promise<NatsConnection> {
  return connect({
    servers: config.natsUrl,
    name,
    noAsyncTraces: true, // no stack capture per request: ~1.6x JetStream publish rate (ceilings)
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  });
}

export function connectRedis(config: Config, name: string): Redis {
  return new Redis(config.redisUrl, {
    connectionName: name,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 3,
    // Commands issued while disconnected wait (bounded by maxRetriesPerRequest), not fail at once.
    enableOfflineQueue: true,
  });
}

export function pgPool(config: Config, max = 8, log?: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max, idleTimeoutMillis: 30_000 });
  // An idle client's connection can end under it (Postgres restarted, an administrator terminated
  // its backend). node-postgres then emits 'error' on the pool, and an 'error' event nobody listens
  // to ends the process. The pool has already dropped that client; the next query connects anew.
  pool.on('error', (err) => {
    if (log) log.warn({ err: err.message }, 'an idle Postgres connection was lost; the pool reconnects');
    else process.stderr.write(`an idle Postgres connection was lost; the pool reconnects: ${err.message}\n`);
  });
  return pool;
}

/** A process's stop must end, even when a server it talks to has gone away. */
export const PROCESS_STOP_MS_MAX = 20_000;

/**
 * Lowers this process's scheduling priority to `nice` (0: leaves it). On Linux a niceness belongs
 * to each thread, so every thread already running (V8's and libuv's) is set; threads started later
 * (piscina workers) inherit it from the main thread. Lowering needs no privilege.
 *
 * Linux's autogroups (CONFIG_SCHED_AUTOGROUP, on in Debian's kernels) divide the CPU between
 * sessions first and only then between the threads of a session by their niceness. The local
 * stack's servers each lead a session of their own (nats-server, redis-server, and every
 * PostgreSQL backend), so a niceness alone only ranks this process against its own session. A
 * process that leads its session (`npm start` and the benchmark start each service so) therefore
 * sets its session's niceness too; one that shares its parent's session leaves it, as that would
 * lower its parent and siblings with it.
 */
export function setNiceness(nice: number, log: Logger): void {
  if (!(Number.isInteger(nice) && nice >= 0 && nice <= 19)) throw new Error(`assertion: niceness ${nice} is not an integer 0-19`);
  if (nice === 0) return;
  let tids: number[] = [];
  try {
    tids = readdirSync('/proc/self/task').map(Number);
  } catch {
    tids = [0]; // no /proc: elsewhere the niceness is the process's
  }
  for (const tid of tids) {
    try {
      setPriority(tid, nice);
    } catch (err) {
      log.warn({ err, tid }, 'could not lower the priority of a thread');
    }
  }
  const autogroup = leadsOwnSession() ? setAutogroupNice(nice, log) : false;
  log.info({ nice, autogroup }, 'running at a lower scheduling priority (PEAKPAY_BACKGROUND_NICE)');
}

/** Whether this process is its session's leader (Linux: /proc/self/stat field 6); false elsewhere. */
export function leadsOwnSession(): boolean {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // After "pid (comm) ": state, ppid, pgrp, session. comm may hold spaces and parentheses.
    const session = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
    return session === process.pid;
  } catch {
    return false;
  }
}

/**
 * Without CAP_SYS_ADMIN the kernel takes one autogroup change a tenth of a second, machine-wide
 * (EAGAIN otherwise), and services starting together ask at once: a few bounded retries.
 */
const AUTOGROUP_TRIES_MAX = 5;
const AUTOGROUP_RETRY_MS = 120;

/** Sets the niceness of this process's autogroup; false where there are none (not Linux, or a kernel without them). */
function setAutogroupNice(nice: number, log: Logger): boolean {
  for (let attempt = 1; ; attempt++) {
    try {
      writeFileSync('/proc/self/autogroup', String(nice));
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' && attempt < AUTOGROUP_TRIES_MAX) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, AUTOGROUP_RETRY_MS); // once, at start-up
        continue;
      }
      if (code !== 'ENOENT') log.warn({ err, nice }, "could not lower the priority of this process's session (autogroup)");
      return false;
    }
  }
}

/** Runs a service as the process's main: SIGINT/SIGTERM stop it once, bounded, then exit. */
export function stopOnSignals(service: { stop(): Promise<void> }): void {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      setTimeout(() => process.exit(1), PROCESS_STOP_MS_MAX).unref();
      service.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          console.error(err);
          process.exit(1);
        },
      );
    });
  }
}
