// EventPublisher on a real nats-server: a shard's events coalesced while one message awaits its
// PubAck, stored in the order they were handed over, each command's events whole in one message;
// a message JetStream refuses fails exactly the commands in it. A message goes to the shard's
// notify subject when one of its commands may notify, else to its quiet subject.
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../engine/config.ts';
import { connectNats } from '../../engine/infra.ts';
import { decodeEventBatch } from '../../engine/protocol/codec.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import { EVENTS_PER_MESSAGE_MAX, type EngineEvent } from '../../engine/protocol/events.ts';
import { names, type Names } from '../../engine/protocol/subjects.ts';
import { ensureStreams } from '../../engine/streams.ts';
import { EVENT_MESSAGE_BYTES_MAX, eventMessageId, EventPublisher, isEventPublishError } from '../../engine/shards/event-out.ts';
import { dropStreams, testConfig, uniqueId } from '../helpers.ts';

let config: Config;
let n: Names;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  config = testConfig();
  n = names(config.namespace, 4);
  nc = await connectNats(config, 'test-event-out');
  jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, n);
});
afterAll(async () => {
  await nc?.close();
  if (config) await dropStreams(config);
});

const eventsOf = (cmdId: string, count: number): EngineEvent[] =>
  Array.from({ length: count }, (_, i) => ({
    v: PROTOCOL_VERSION, id: `${cmdId}_e${i}`, type: 'account.credited', merchant_id: 'm_evo', cmd_id: cmdId, ts_ms: Date.now(),
    payment: null, account: null, postings: [], memo: 'test',
  }) as unknown as EngineEvent);

async function readAll(subject: string): Promise<EngineEvent[][]> {
  const out: EngineEvent[][] = [];
  const info = await jsm.streams.info(n.evtStream);
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(n.evtStream, { seq }).catch(() => null);
    if (m && m.subject === subject) out.push(decodeEventBatch(m.data).events);
  }
  return out;
}

describe('EventPublisher', () => {
  const subjectsOf = (shard: number) => ({ subject: n.evtSubjectShard(shard), quietSubject: n.evtQuietSubjectShard(shard) });

  it('coalesces while a message is in flight, keeps the order, never splits a command', async () => {
    // account.credited events cannot notify: every message goes to the quiet subject.
    const subject = n.evtQuietSubjectShard(1);
    const pub = new EventPublisher(nc, subjectsOf(1), `${n.replyPrefix}.evt`);
    pub.start();
    const cmds = Array.from({ length: 400 }, (_, i) => ({ id: uniqueId(`c${i}`), count: 1 + (i % 3) }));
    await Promise.all(cmds.map((c) => pub.publish(eventsOf(c.id, c.count), c.id)));
    const messages = await readAll(subject);
    const flat = messages.flat();
    expect(flat.map((e) => e.id)).toEqual(cmds.flatMap((c) => eventsOf(c.id, c.count).map((e) => e.id)));
    // 400 commands, ~800 events handed over in one turn: a few messages, none over the cap.
    expect(messages.length).toBeLessThan(cmds.length / 4);
    for (const m of messages) {
      expect(m.length).toBeLessThanOrEqual(EVENTS_PER_MESSAGE_MAX);
      const ids = [...new Set(m.map((e) => e.cmd_id))];
      for (const id of ids) expect(m.filter((e) => e.cmd_id === id).length).toBe(cmds.find((c) => c.id === id)?.count);
    }
    pub.stop();
  });

  it(`keeps every message under ${EVENT_MESSAGE_BYTES_MAX} bytes`, async () => {
    const subject = n.evtQuietSubjectShard(2);
    const pub = new EventPublisher(nc, subjectsOf(2), `${n.replyPrefix}.evt`);
    pub.start();
    const big = (cmdId: string) => eventsOf(cmdId, 1).map((e) => ({ ...e, payment_record: { raw: 'x'.repeat(60_000) } }));
    const ids = Array.from({ length: 40 }, (_, i) => uniqueId(`big${i}`));
    await Promise.all(ids.map((id) => pub.publish(big(id), id)));
    const info = await jsm.streams.info(n.evtStream);
    let count = 0;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(n.evtStream, { seq }).catch(() => null);
      if (m?.subject !== subject) continue;
      count++;
      expect(m.data.length).toBeLessThanOrEqual(EVENT_MESSAGE_BYTES_MAX + 64);
    }
    expect(count).toBeGreaterThanOrEqual(Math.ceil((40 * 60_000) / EVENT_MESSAGE_BYTES_MAX));
    expect((await readAll(subject)).flat().map((e) => e.cmd_id)).toEqual(ids);
    pub.stop();
  });

  it('sends a message to the notify subject when one of its commands may notify, else to the quiet one', async () => {
    const pub = new EventPublisher(nc, subjectsOf(3), `${n.replyPrefix}.evt`);
    pub.start();
    const notifying = (cmdId: string, url: string): EngineEvent[] => eventsOf(cmdId, 1).map((e) => ({
      ...e, type: 'payment.succeeded', payment_record: { id: `pay_${cmdId}`, notify_url: url },
    }) as unknown as EngineEvent);
    // One at a time, so that each command is a message of its own.
    const quietId = uniqueId('q');
    await pub.publish(eventsOf(quietId, 2), quietId);
    const emptyUrlId = uniqueId('e');
    await pub.publish(notifying(emptyUrlId, ''), emptyUrlId);
    const loudId = uniqueId('l');
    await pub.publish(notifying(loudId, 'https://shop.example/notify'), loudId);
    // Coalesced: a quiet command and a notifying one in the same message go to the notify subject.
    const mixed = [uniqueId('mq'), uniqueId('ml')] as const;
    await Promise.all([pub.publish(eventsOf(mixed[0], 1), mixed[0]), pub.publish(notifying(mixed[1], 'https://shop.example/n2'), mixed[1])]);
    const cmdsOn = async (subject: string) => (await readAll(subject)).map((m) => [...new Set(m.map((e) => e.cmd_id))]);
    expect(await cmdsOn(n.evtQuietSubjectShard(3))).toEqual([[quietId], [emptyUrlId]]);
    expect((await cmdsOn(n.evtSubjectShard(3))).flat()).toEqual([loudId, ...mixed]);
    pub.stop();
  });

  it('derives the message id from the commands it carries', () => {
    expect(eventMessageId(['c1'])).toBe('evb_c1');
    expect(eventMessageId(['c1', 'c2'])).toBe(eventMessageId(['c1', 'c2']));
    expect(eventMessageId(['c1', 'c2'])).not.toBe(eventMessageId(['c1', 'c3']));
    expect(eventMessageId(['c1', 'c2'])).not.toBe(eventMessageId(['c2', 'c1']));
  });

  it('fails the commands of a message no stream takes, and goes on with the next', async () => {
    const pub = new EventPublisher(nc, { subject: `nostream${config.namespace}.evt.0`, quietSubject: `nostream${config.namespace}.evq.0` }, `${n.replyPrefix}.evt`);
    pub.start();
    const err = await pub.publish(eventsOf(uniqueId('c'), 2), 'c').then(() => null, (e: unknown) => e);
    expect(isEventPublishError(err), String(err)).toBe(true);
    const again = await pub.publish(eventsOf(uniqueId('c'), 1), 'c2').then(() => null, (e: unknown) => e);
    expect(isEventPublishError(again), String(again)).toBe(true);
    pub.stop();
    const stopped = await pub.publish(eventsOf(uniqueId('c'), 1), 'c3').then(() => null, (e: unknown) => e);
    expect(isEventPublishError(stopped)).toBe(true);
  });
});
