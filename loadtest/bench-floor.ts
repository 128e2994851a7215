// `npm run bench:floor`: what each step every payment must take costs on this machine, done alone
// and at its cheapest, in CPU µs per operation (client and server together, from /proc), so that a
// target of N payments/s on C cores can be held against the sum (docs/BENCHMARKS.md, "The floor").
// Starts the local stack if it is not up (and stops what it started). Prints one JSON line per step,
// then the sum.
//
//   http       node:http parsing the body and answering 202 (loadtest/ceiling), driven by our undici
//              generator with signed payment requests: the request and its answer
//   lua        one Redis Lua call from Node (ioredis auto-pipelining): an idempotency check, a hold
//              (two HINCRBY) and a key set with a TTL — the shape of the hold and of the claim
//   set        one SET of a 600-byte value with a TTL from Node: storing a response for replay
//   jetstream  a 300-byte message published to a stream (PubAcks on one shared inbox) and pulled
//              and acknowledged by a consumer: a command, or an event batch, made durable and read
//   core       a 600-byte core NATS message to one subscriber: the decision back to the ingress
//   pg-row     one row of a double-entry ledger, inserted in batches of 500 (`unnest`) on 4
//              connections: the payment row, the event row and each posting
//
//   npm run bench:floor -- --duration 5
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager, AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfig } from '../engine/config.ts';
import { connectNats } from '../engine/infra.ts';
import { localEnv } from '../scripts/local-env.ts';
import { stackDown, stackUp } from '../scripts/stack.ts';
import { cpuBetween, cpuSnapshot } from './lib/cpu.ts';
import { runLoad } from './lib/generator.ts';
import { automaticPayment, PaymentRequests, roundRobin, type BenchMerchant, type Ledger } from './lib/payments.ts';
import { deleteNamespaceKeys } from './lib/peakpay.ts';
import { killChildren, listeningPort, spawnTs } from './lib/procs.ts';

// The ceiling server leads a session of its own (spawnTs): Ctrl-C reaches this script, whose exit stops it.
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => process.exit(130));

const { values } = parseArgs({ options: { duration: { type: 'string', default: '5' } } });
const DURATION_S = Number(values.duration);
if (!(DURATION_S >= 1 && DURATION_S <= 600)) throw new Error('--duration must be 1–600 s');
/** Operations in flight at once (the client's window): enough to keep the server busy. */
const WINDOW = 1_000;
const PG_BATCH_ROWS = 500;
const PG_CONNECTIONS = 4;

type Step = 'http' | 'lua' | 'set' | 'jetstream' | 'core' | 'pg-row';
const results = new Map<Step, number>();
const round = (x: number) => Math.round(x);

/**
 * Runs a step for DURATION_S (after a second of warm-up) and prints its CPU per operation: of this
 * process (the client) and of the servers named (`ours`: processes of ours to count, by pid).
 */
async function measure(step: Step, servers: string[], run: (untilMs: number) => Promise<number>, ours: Record<string, number> = {}): Promise<void> {
  await run(performance.now() + 1_000); // warm-up: JIT, connections, script cache
  const cpu0 = cpuSnapshot(ours);
  const t0 = performance.now();
  const ops = await run(t0 + DURATION_S * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const cores = cpuBetween(cpu0, cpuSnapshot(ours));
  const perOp = (c: number | undefined) => round(((c ?? 0) * seconds * 1e6) / ops);
  const client = perOp(cores.generator);
  const server = servers.reduce((n, s) => n + perOp(cores[s]), 0);
  results.set(step, client + server);
  console.log(JSON.stringify({ step, ops, ops_per_s: round(ops / seconds), cpu_us_per_op: { client, server, total: client + server }, other_cores: cores.other }));
}

/** Keeps WINDOW calls of `op` in flight until the deadline; resolves with how many completed. */
async function windowed(untilMs: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let done = 0;
  let next = 0;
  await Promise.all(Array.from({ length: WINDOW }, async () => {
    while (performance.now() < untilMs) {
      await op(next++);
      done++;
    }
  }));
  return done;
}

/**
 * Publishes with `publish` while fewer than WINDOW are unanswered, until the deadline, then waits
 * for every answer. `track(onAnswer)` subscribes to the answers and returns how to unsubscribe.
 * Resolves with how many were sent.
 */
async function pumped(untilMs: number, publish: () => void, track: (onAnswer: () => void) => () => void): Promise<number> {
  let answered = 0;
  let sent = 0;
  let wake: (() => void) | null = null;
  const untrack = track(() => {
    answered++;
    wake?.();
  });
  while (performance.now() < untilMs) {
    while (sent - answered < WINDOW) {
      publish();
      sent++;
    }
    await new Promise<void>((r) => { wake = r; });
    wake = null;
  }
  while (answered < sent) await new Promise((r) => setTimeout(r, 5));
  untrack();
  return sent;
}

const stack = await stackUp({ log: (l) => console.error(`[stack] ${l}`) });
const env = localEnv({ ...process.env, NATS_URL: stack.natsUrl, REDIS_URL: stack.redisUrl, DATABASE_URL: stack.databaseUrl });
const config = loadConfig(env);
const tag = `fl${randomBytes(4).toString('hex')}`;

try {
  // http: the benchmark's ceiling server and generator.
  {
    const proc = spawnTs('ceiling', 'loadtest/ceiling/server.ts', env);
    try {
      const url = `http://127.0.0.1:${await listeningPort(proc)}`;
      const merchants: BenchMerchant[] = Array.from({ length: 100 }, (_, i) => ({ id: `m${i}`, secret: randomBytes(16).toString('hex'), accounts: ['w0', 'w1'] }));
      const ledger: Ledger = { acknowledged: [], unacknowledged: [] };
      const iteration = automaticPayment(new PaymentRequests(), roundRobin(merchants), ledger);
      await measure('http', ['ceiling'], async (untilMs) => {
        const r = await runLoad(url, { kind: 'closed', connections: 128, durationS: Math.max(1, (untilMs - performance.now()) / 1000) }, iteration);
        return r.acknowledged;
      }, { ceiling: proc.pid });
    } finally {
      await proc.stop();
    }
  }

  // lua and set: Redis from Node.
  {
    const redis = new Redis(config.redisUrl, { enableAutoPipelining: true });
    redis.defineCommand('floorHold', {
      numberOfKeys: 2,
      lua: `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
  redis.call('HINCRBY', KEYS[2], 'available', -tonumber(ARGV[1]))
  redis.call('HINCRBY', KEYS[2], 'held', tonumber(ARGV[1]))
  redis.call('SET', KEYS[1], '1', 'EX', 3600)
  return 1`,
    });
    const hold = (redis as unknown as { floorHold: (...a: (string | number)[]) => Promise<number> }).floorHold.bind(redis);
    let seq = 0;
    await measure('lua', ['redis-server'], (untilMs) => windowed(untilMs, (i) => hold(`${tag}:{m${i % 1000}}:op:${++seq}`, `${tag}:{m${i % 1000}}:acct:w${i % 2}`, 109)));
    const body = 'x'.repeat(600);
    await measure('set', ['redis-server'], (untilMs) => windowed(untilMs, () => redis.set(`${tag}:{m}:resp:${++seq}`, body, 'EX', 3600)));
    // Cleaned up: the keys expire anyway, but the stack's Redis is shared with everything else.
    await deleteNamespaceKeys(redis, tag);
    redis.disconnect();
  }

  // jetstream and core: NATS.
  {
    const nc = await connectNats(config, 'bench-floor');
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const stream = tag.toUpperCase();
    await jsm.streams.add({ name: stream, subjects: [`${tag}.s`], max_msgs: 10_000_000 });
    await jsm.consumers.add(stream, { durable_name: 'c', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: 20_000 });
    const payload = randomBytes(300);
    try {
      await measure('jetstream', ['nats-server'], async (untilMs) => {
        // PubAcks on one shared inbox, as the ingress and the engine publish (engine/client).
        const inbox = `${tag}.ack`;
        const consumer = await js.consumers.get(stream, 'c');
        const messages = await consumer.consume({ max_messages: 1_000 });
        let consumed = 0;
        const reading = (async () => {
          for await (const m of messages) {
            m.ack();
            consumed++;
          }
        })();
        const sent = await pumped(untilMs, () => nc.publish(`${tag}.s`, payload, { reply: inbox }), (onAnswer) => {
          const sub = nc.subscribe(inbox, { callback: onAnswer });
          return () => sub.unsubscribe();
        });
        while (consumed < sent) await new Promise((r) => setTimeout(r, 5));
        await messages.close();
        await reading;
        return consumed;
      });
      const reply = randomBytes(600);
      await measure('core', ['nats-server'], async (untilMs) => {
        let onMessage = () => {};
        const sub = nc.subscribe(`${tag}.r`, { callback: () => onMessage() });
        await nc.flush(); // the subscription is in place before the first publish
        return pumped(untilMs, () => nc.publish(`${tag}.r`, reply), (onAnswer) => {
          onMessage = onAnswer;
          return () => sub.unsubscribe();
        });
      });
    } finally {
      await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close();
    }
  }

  // pg-row: ledger rows in batches.
  {
    const pool = new pg.Pool({ connectionString: config.databaseUrl, max: PG_CONNECTIONS });
    const table = `floor_${tag}`;
    await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, event_id text NOT NULL, merchant_id text NOT NULL, ledger_account text NOT NULL,
      currency text NOT NULL, amount bigint NOT NULL, kind text NOT NULL, created_at timestamptz NOT NULL)`);
    await pool.query(`CREATE INDEX ON ${table} (merchant_id, ledger_account)`);
    try {
      let seq = 0;
      await measure('pg-row', ['postgres'], async (untilMs) => {
        let rows = 0;
        await Promise.all(Array.from({ length: PG_CONNECTIONS }, async () => {
          while (performance.now() < untilMs) {
            const ids = Array.from({ length: PG_BATCH_ROWS }, () => `evt_${tag}_${++seq}`);
            await pool.query(
              `INSERT INTO ${table} (event_id, merchant_id, ledger_account, currency, amount, kind, created_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[])`,
              [ids, ids.map((_, i) => `m${i % 1000}`), ids.map((_, i) => `wallet:w${i % 2}:available`), ids.map(() => 'CNY'),
                ids.map((_, i) => (i % 2 === 0 ? -109 : 109)), ids.map(() => 'capture'), ids.map(() => new Date().toISOString())],
            );
            rows += PG_BATCH_ROWS;
          }
        }));
        return rows;
      });
    } finally {
      await pool.query(`DROP TABLE ${table}`);
      await pool.end();
    }
  }

  // A payment: one request; a claim, a hold and a stored response in Redis; a command and an event
  // batch through JetStream; a decision back; a payment row, an event row and two postings.
  const at = (s: Step) => results.get(s) ?? 0;
  const floor = at('http') + 2 * at('lua') + at('set') + 2 * at('jetstream') + at('core') + 4 * at('pg-row');
  console.log(JSON.stringify({
    summary: true, duration_s: DURATION_S, cores: cpus().length,
    floor_us_per_payment: floor,
    composition: 'http + 2 lua + set + 2 jetstream + core + 4 pg-row',
    payments_per_s_at_the_floor: Math.floor((cpus().length * 1_000_000) / floor),
  }));
} finally {
  await stackDown(stack.started);
}
process.exit(0);
