// Before Redis is rebuilt: no engine may be applying commands (it would decide against a Redis that
// is empty or half written), and Postgres must hold every event of the event log.
import type { JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Names } from '../protocol/subjects.ts';

export class RebuildError extends Error {
  override name = 'RebuildError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isRebuildError = (err: unknown): err is RebuildError => err instanceof RebuildError;

/** How long to wait, by default, for the settlement consumer to write every event. */
export const SETTLE_WAIT_MS_DEFAULT = 60_000;
const SETTLE_POLL_MS = 200;
/** At most this many lease keys are listed in a refusal. */
const LEASE_KEYS_SHOWN_MAX = 20;

const isNotFound = (err: unknown) => /not found/i.test(String((err as Error)?.message ?? err));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The live keys of the shard-lease bucket (engine presence `engine.<id>`, owners `shard.<n>`).
 * Keys expire with the lease TTL, so a SIGKILLed engine stops counting after a few seconds.
 */
export async function liveLeases(nc: NatsConnection, jsm: JetStreamManager, n: Names): Promise<string[]> {
  try {
    await jsm.streams.info(`KV_${n.leaseBucket}`);
  } catch (err) {
    if (isNotFound(err)) return []; // no engine of this namespace has ever run
    throw err;
  }
  const kv = await new Kvm(nc).open(n.leaseBucket);
  const keys: string[] = [];
  for await (const k of await kv.keys()) {
    keys.push(k);
    if (keys.length >= LEASE_KEYS_SHOWN_MAX) break;
  }
  return keys.sort();
}

/**
 * Waits until the settlement consumer has written every event of <NS>_EVT into Postgres: nothing
 * left to deliver and nothing delivered but unacknowledged (it acknowledges after its commit).
 * Returns the stream's last sequence at that moment.
 */
export async function waitForSettlement(jsm: JetStreamManager, n: Names, timeoutMs = SETTLE_WAIT_MS_DEFAULT): Promise<{ lastSeq: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let lastSeq: number;
    let messages: number;
    try {
      const s = await jsm.streams.info(n.evtStream);
      lastSeq = s.state.last_seq;
      messages = s.state.messages;
    } catch (err) {
      if (isNotFound(err)) return { lastSeq: 0 }; // no event was ever published
      throw err;
    }
    let pending: number;
    let ackPending: number;
    try {
      const c = await jsm.consumers.info(n.evtStream, n.settlementConsumer);
      pending = c.num_pending;
      ackPending = c.num_ack_pending;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      if (messages === 0) return { lastSeq };
      throw new RebuildError(
        `the event stream ${n.evtStream} holds ${messages} events but the settlement consumer ${n.settlementConsumer} does not exist: ` +
          'start the settlement process (npm run settlement) and run the rebuild again',
      );
    }
    if (pending === 0 && ackPending === 0) return { lastSeq };
    if (Date.now() >= deadline) {
      throw new RebuildError(
        `Postgres is behind the event log after ${timeoutMs} ms: ${pending} events not yet delivered and ${ackPending} ` +
          `delivered but not acknowledged by ${n.settlementConsumer}. Is the settlement process running (npm run settlement)? ` +
          'Rebuilding now would lose those events from Redis; wait or raise --settle-timeout-ms',
      );
    }
    await sleep(SETTLE_POLL_MS);
  }
}
