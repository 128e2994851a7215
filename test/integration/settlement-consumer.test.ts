// The settlement consumer over a real JetStream and Postgres: a backlog of full event messages is
// written in transactions of at most WRITE_EVENTS_MAX events (a message is never split), and
// every event exactly once; the quiet event subject (<ns>.evq.<shard>) is read as well, also by a
// consumer created with the earlier layout's filter.
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../engine/config.ts';
import { connectNats, pgPool } from '../../engine/infra.ts';
import { encode } from '../../engine/protocol/codec.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import { EVENTS_PER_MESSAGE_MAX, type EngineEvent } from '../../engine/protocol/events.ts';
import { names } from '../../engine/protocol/subjects.ts';
import { startSettlement, WRITE_EVENTS_MAX } from '../../engine/settlement/consumer.ts';
import { packEventBatch } from '../../engine/shards/event-out.ts';
import { ensureStreams } from '../../engine/streams.ts';
import { dropStreams, testConfig, uniqueId } from '../helpers.ts';

let config: Config;
let pool: pg.Pool;
let nc: NatsConnection;
beforeAll(async () => {
  config = testConfig();
  pool = pgPool(config, 2);
  nc = await connectNats(config, 'test');
});
afterAll(async () => {
  await nc.close();
  await pool.end();
  await dropStreams(config);
});

function credit(merchant: string, cmd: string, amount: number): EngineEvent {
  return {
    v: PROTOCOL_VERSION, id: `evt_${cmd}_0`, type: 'account.credited', merchant_id: merchant, cmd_id: cmd, ts_ms: Date.now(), payment: null,
    account: { account_id: 'acc', currency: 'CNY', available: amount, held: 0 },
    postings: [
      { kind: 'adjustment', ledger_account: 'merchant:adjustments', amount: -amount, currency: 'CNY' },
      { kind: 'adjustment', ledger_account: 'wallet:acc:available', amount, currency: 'CNY' },
    ],
    memo: 'test',
  };
}

describe('settlement consumer', () => {
  it('writes a backlog of full messages in transactions of at most WRITE_EVENTS_MAX events, each event once', async () => {
    const n = names(config.namespace, config.shardCount);
    await ensureStreams(await jetstreamManager(nc), n);
    const m = uniqueId('m');
    const perMessage = EVENTS_PER_MESSAGE_MAX; // full messages, as the engine sends under load
    const messages = Math.ceil((3 * WRITE_EVENTS_MAX) / perMessage); // three transactions' worth at least
    const js = jetstream(nc);
    let expected = 0;
    for (let i = 0; i < messages; i++) {
      const events = Array.from({ length: perMessage }, (_, k) => credit(m, `${m}_${i}_${k}`, 1 + k));
      expected += events.reduce((s, e) => s + (e.account?.available ?? 0), 0);
      const packed = events.map((e) => encode(e));
      await js.publish(n.evtSubjectShard(0), packEventBatch(events[0] as EngineEvent, packed, packed.reduce((s, b) => s + b.length, 0)));
    }
    // Started on a backlog: without the bound, the first pull's messages would make one transaction.
    const settlement = await startSettlement(config, { pool });
    try {
      const balance = async () =>
        Number((await pool.query<{ b: string }>(`SELECT coalesce(sum(amount), 0) AS b FROM postings WHERE merchant_id = $1 AND ledger_account = 'wallet:acc:available'`, [m])).rows[0]?.b);
      for (let i = 0; i < 200 && (await balance()) < expected; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await balance()).toBe(expected);
      const events = await pool.query<{ c: string }>('SELECT count(*) AS c FROM events WHERE merchant_id = $1', [m]);
      expect(Number(events.rows[0]?.c)).toBe(messages * perMessage);

      // A histogram's values carry their series name (prom-client's type leaves it out).
      const sizes = ((await settlement.registry.getSingleMetric('peakpay_settlement_batch_size')?.get())?.values ?? []) as {
        metricName?: string; labels: Record<string, string | number>; value: number;
      }[];
      const bucket = (le: number) => sizes.find((v) => v.metricName === 'peakpay_settlement_batch_size_bucket' && v.labels.le === le)?.value;
      const count = sizes.find((v) => v.metricName === 'peakpay_settlement_batch_size_count')?.value ?? 0;
      expect(sizes.find((v) => v.metricName === 'peakpay_settlement_batch_size_sum')?.value).toBe(messages * perMessage);
      expect(count).toBeGreaterThanOrEqual(3);
      expect(bucket(WRITE_EVENTS_MAX)).toBe(count); // no transaction above the bound
    } finally {
      await settlement.stop();
    }
  });

  it('terminates an undecodable message, counts it, and writes the messages around it', async () => {
    const n = names(config.namespace, config.shardCount);
    await ensureStreams(await jetstreamManager(nc), n);
    const js = jetstream(nc);
    const m = uniqueId('m');
    const message = (events: EngineEvent[]) => {
      const packed = events.map((e) => encode(e));
      return packEventBatch(events[0] as EngineEvent, packed, packed.reduce((s, b) => s + b.length, 0));
    };
    await js.publish(n.evtSubjectShard(0), message([credit(m, `${m}_a`, 5)]));
    await js.publish(n.evtSubjectShard(0), new TextEncoder().encode('not msgpack at all'));
    await js.publish(n.evtSubjectShard(0), encode({ v: PROTOCOL_VERSION, cmd_id: 'x', merchant_id: m, events: [{ id: 'no-shape' }] }));
    await js.publish(n.evtSubjectShard(0), message([credit(m, `${m}_b`, 7)]));
    const settlement = await startSettlement(config, { pool });
    try {
      const balance = async () =>
        Number((await pool.query<{ b: string }>(`SELECT coalesce(sum(amount), 0) AS b FROM postings WHERE merchant_id = $1 AND ledger_account = 'wallet:acc:available'`, [m])).rows[0]?.b);
      for (let i = 0; i < 200 && (await balance()) < 12; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await balance()).toBe(12);
      const terminated = (await settlement.registry.getSingleMetric('peakpay_settlement_messages_terminated_total')?.get())?.values[0]?.value;
      expect(terminated).toBe(2);
      // Nothing of the bad messages reached the ledger: only the two credits' events.
      const events = await pool.query<{ c: string }>('SELECT count(*) AS c FROM events WHERE merchant_id = $1', [m]);
      expect(Number(events.rows[0]?.c)).toBe(2);
    } finally {
      await settlement.stop();
    }
  });

  it('reads the quiet subject too, after recreating from its ack floor a consumer of the earlier layout (filter <ns>.evt.>)', async () => {
    const own = testConfig();
    const n = names(own.namespace, own.shardCount);
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    try {
      await ensureStreams(jsm, n);
      await jsm.consumers.add(n.evtStream, {
        durable_name: n.settlementConsumer, filter_subject: `${own.namespace}.evt.>`, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
      });
      const m = uniqueId('m');
      const message = (e: EngineEvent) => {
        const packed = [encode(e)];
        return packEventBatch(e, packed, packed[0]?.length ?? 0);
      };
      // The earlier settlement wrote and acknowledged the first message; then it stopped.
      await js.publish(n.evtSubjectShard(1), message(credit(m, `${m}_a`, 5)));
      const old = await (await js.consumers.get(n.evtStream, n.settlementConsumer)).next({ expires: 5_000 });
      expect(old?.subject).toBe(n.evtSubjectShard(1));
      await old?.ackAck();
      await js.publish(n.evtQuietSubjectShard(1), message(credit(m, `${m}_b`, 7)));
      await js.publish(n.evtSubjectShard(2), message(credit(m, `${m}_c`, 11)));
      const settlement = await startSettlement(own, { pool });
      try {
        const ids = async () => (await pool.query<{ id: string }>('SELECT id FROM events WHERE merchant_id = $1 ORDER BY id', [m])).rows.map((r) => r.id);
        for (let i = 0; i < 200 && (await ids()).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
        // From the ack floor on: the quiet message and the one after it; the acknowledged one is not read again.
        expect(await ids()).toEqual([`evt_${m}_b_0`, `evt_${m}_c_0`]);
        const info = await jsm.consumers.info(n.evtStream, n.settlementConsumer);
        expect(info.config.filter_subject ?? '').toBe('');
      } finally {
        await settlement.stop();
      }
    } finally {
      await dropStreams(own);
    }
  });
});
