// CommandClient on a real nats-server: the PubAck read on the client's own subscription decides
// between "stored, the engine has not answered yet" (timeout → 202) and "not stored" (503), and the
// command's cmd_id de-duplicates it in the stream when the sender asks JetStream about duplicates.
// Commands to one shard sent while its previous message awaits its PubAck leave together, as one
// CommandBatch message, each answered on its own token.
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandClient, isEngineUnavailableError, PUBACK_WAIT_MS_MIN, type SendResult } from '../../engine/client/index.ts';
import type { Config } from '../../engine/config.ts';
import { connectNats } from '../../engine/infra.ts';
import { encode, unpackRaw } from '../../engine/protocol/codec.ts';
import { COMMANDS_PER_MESSAGE_MAX, PROTOCOL_VERSION, type Command, type CommandBatch } from '../../engine/protocol/commands.ts';
import { BATCH_HEADER, REPLY_HEADER } from '../../engine/protocol/headers.ts';
import { REPLY_BATCH_TOKEN } from '../../engine/protocol/events.ts';
import { names, type Names } from '../../engine/protocol/subjects.ts';
import { ensureStreams } from '../../engine/streams.ts';
import { dropStreams, testConfig, uniqueId } from '../helpers.ts';

let config: Config;
let n: Names;
let nc: NatsConnection;
let jsm: JetStreamManager;

const command = (merchantId = 'm_cc'): Command => ({
  v: PROTOCOL_VERSION, type: 'account.create', cmd_id: uniqueId('cmd'), merchant_id: merchantId, ts_ms: Date.now(), account_id: 'acc_1', currency: 'CNY',
});

beforeAll(async () => {
  config = testConfig();
  n = names(config.namespace, config.shardCount);
  nc = await connectNats(config, 'test-command-client');
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  await nc?.close();
  if (config) await dropStreams(config);
});

describe('CommandClient', () => {
  it('fails with EngineUnavailableError at once when no stream takes the subject', async () => {
    const client = new CommandClient(nc, null, names(`nostream${config.namespace}`.slice(0, 16), 4));
    client.start();
    const t0 = Date.now();
    const err = await client.send(command(), 10_000).then(() => null, (e: unknown) => e);
    expect(isEngineUnavailableError(err), String(err)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(10_000); // answered by nats-server's no-responders status, not the deadline
    client.stop();
  });

  it('answers timeout once the command is stored and the deadline passed; asked about duplicates, the same cmd_id is stored once', async () => {
    await ensureStreams(jsm, n);
    const client = new CommandClient(nc, null, n);
    client.start();
    const before = (await jsm.streams.info(n.cmdStream)).state.messages;
    const cmd = command();
    expect(await client.send(cmd, 200, { returnDuplicate: true })).toEqual({ kind: 'timeout' });
    expect(await client.send(cmd, 200, { returnDuplicate: true })).toEqual({ kind: 'duplicate' });
    expect((await jsm.streams.info(n.cmdStream)).state.messages).toBe(before + 1);
    // Without the question it is stored again: the engine's op record makes the second a replay.
    expect(await client.send(cmd, 200)).toEqual({ kind: 'timeout' });
    expect((await jsm.streams.info(n.cmdStream)).state.messages).toBe(before + 2);
    client.stop();
  });

  it(`waits for the PubAck up to ${PUBACK_WAIT_MS_MIN} ms even when the deadline is shorter`, async () => {
    await ensureStreams(jsm, n);
    const client = new CommandClient(nc, null, n);
    client.start();
    const before = (await jsm.streams.info(n.cmdStream)).state.messages;
    expect(await client.send(command(), 1)).toEqual({ kind: 'timeout' });
    expect((await jsm.streams.info(n.cmdStream)).state.messages).toBe(before + 1);
    client.stop();
  });

  it('returns the reply sent to the Pp-Reply subject', async () => {
    await ensureStreams(jsm, n);
    const sub = nc.subscribe(n.cmdSubjectAll, { callback: (_err, msg) => answer(msg) });
    const client = new CommandClient(nc, null, n);
    client.start();
    const cmd = command();
    expect(await client.send(cmd, 5_000)).toMatchObject({ kind: 'reply', reply: { cmd_id: cmd.cmd_id, ok: false, code: 'account.exists' } });
    sub.unsubscribe();
    client.stop();
  });

  it('coalesces commands to one shard while a message is in flight: fewer messages than commands, each answered on its own', async () => {
    await ensureStreams(jsm, n);
    let messages = 0;
    const sub = nc.subscribe(n.cmdSubjectAll, { callback: (_err, msg) => { messages++; answer(msg); } });
    const client = new CommandClient(nc, null, n);
    client.start();
    const cmds = Array.from({ length: 300 }, () => command('m_cc_hot'));
    const before = (await jsm.streams.info(n.cmdStream)).state.messages;
    const results = await Promise.all(cmds.map((c) => client.send(c, 5_000)));
    expect(results.map((r) => (r.kind === 'reply' ? r.reply.cmd_id : r.kind))).toEqual(cmds.map((c) => c.cmd_id));
    const stored = (await jsm.streams.info(n.cmdStream)).state.messages - before;
    expect(stored).toBe(messages);
    // 300 sent in one turn: the first message has at most COMMANDS_PER_MESSAGE_MAX, the rest wait for its PubAck.
    expect(stored).toBeGreaterThanOrEqual(Math.ceil(300 / COMMANDS_PER_MESSAGE_MAX));
    expect(stored).toBeLessThan(300 / 4);
    sub.unsubscribe();
    client.stop();
  });

  it('takes many replies in one ReplyBatch; a reply that does not validate is a timeout for its sender only', async () => {
    await ensureStreams(jsm, n);
    const sub = nc.subscribe(n.cmdSubjectAll, {
      callback: (_err, msg) => {
        const prefix = String(msg.headers?.get(REPLY_HEADER));
        const batch = unpackRaw(msg.data) as CommandBatch;
        const replies = batch.cmds.map((cmd, i) => (i === 1 ? { v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: 'maybe' } : { v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: false, replayed: false, code: 'account.exists', message: 'x', payment_id: null }));
        nc.publish(`${prefix}.${REPLY_BATCH_TOKEN}`, encode({ v: PROTOCOL_VERSION, tokens: batch.replies, replies }));
      },
    });
    const client = new CommandClient(nc, null, n);
    client.start();
    const cmds = Array.from({ length: 3 }, () => command('m_cc_rb'));
    const results = await Promise.all(cmds.map((c) => client.send(c, 1_000)));
    expect(results.map((r) => (r.kind === 'reply' ? r.reply.cmd_id : r.kind))).toEqual([cmds[0]?.cmd_id, 'timeout', cmds[2]?.cmd_id]);
    sub.unsubscribe();
    client.stop();
  });

  it("a PubAck that comes after the shard's slot was given up still tells the waiter its command is stored", async () => {
    await ensureStreams(jsm, n);
    const client = new CommandClient(nc, null, n, { batchAckWaitMs: 1 });
    client.start();
    const before = (await jsm.streams.info(n.cmdStream)).state.messages;
    const sent = client.send(command('m_cc_late'), 300);
    await new Promise((r) => setImmediate(r)); // the batch is published and its 1 ms slot timer set
    // Hold the loop past that timer: it runs (timers phase) before the PubAck is read (poll phase).
    const until = Date.now() + 5;
    while (Date.now() < until) { /* hold the event loop */ }
    // Stored, and the late PubAck says so: "processing" (202) at the deadline, not 503.
    expect(await sent).toEqual({ kind: 'timeout' });
    expect((await jsm.streams.info(n.cmdStream)).state.messages).toBe(before + 1);
    client.stop();
  });

  it('answers 202 at the PubAck while the engine lags on the shard, watches one probe, and waits again once it has caught up', async () => {
    const { delay, engine, client } = await lagging(800, 300);
    const before = (await jsm.streams.info(n.cmdStream)).state.messages;
    // Nothing seen yet: the first waits for its (slow) decision.
    expect(kindOf(await client.send(command('m_cc_lag'), 5_000))).toBe('reply');
    // Its decision came 800 ms after its PubAck: the next is answered as soon as JetStream has it.
    expect(kindOf(await client.send(command('m_cc_lag'), 5_000))).toBe('timeout-backlog');
    // That one is the probe. Another shard does not lag (its first command waits, 800 ms); by
    // then the probe's slow decision is in too (replies arrive in the order they were sent), and
    // says the shard still lags.
    expect(kindOf(await client.send(command('m_cc_other_shard_0'), 5_000))).toBe('reply');
    delay.ms = 0; // the engine catches up
    expect(kindOf(await client.send(command('m_cc_lag'), 5_000))).toBe('timeout-backlog'); // the new probe, answered fast
    await new Promise((r) => setTimeout(r, 100));
    expect(kindOf(await client.send(command('m_cc_lag'), 5_000))).toBe('reply');
    // Every command answered early was stored: the engine applies it later.
    expect((await jsm.streams.info(n.cmdStream)).state.messages - before).toBe(5);
    engine.stop();
    client.stop();
  });

  it('a deadline passed without a decision counts as lag; a sight of lag goes stale after a quiet spell', async () => {
    const { delay, engine, client } = await lagging(1_000, 150);
    // No decision within 300 ms of the PubAck: the engine lags at least that much.
    expect(kindOf(await client.send(command('m_cc_stale'), 300))).toBe('timeout');
    expect(kindOf(await client.send(command('m_cc_stale'), 5_000))).toBe('timeout-backlog'); // the probe
    // The probe's decision comes ~1 s later; then nothing is out, and after more than the setting
    // without traffic, that sight is stale: the next command waits and looks again.
    delay.ms = 0;
    await new Promise((r) => setTimeout(r, 1_000 + 150 + 700));
    expect(kindOf(await client.send(command('m_cc_stale'), 5_000))).toBe('reply');
    engine.stop();
    client.stop();
  });

  it('while the front door is behind: answers 202 at the PubAck, releases those already waiting, and waits again after', async () => {
    const { delay, engine, client } = await lagging(1_000, 0); // engine lag alone would never answer early
    const before = (await jsm.streams.info(n.cmdStream)).state.messages;
    const held = client.send(command('m_cc_door'), 5_000);
    await new Promise((r) => setTimeout(r, 200)); // stored; its decision is 800 ms away
    client.frontDoorBehind(400);
    // Released at once, not at its decision nor at its deadline.
    expect(kindOf(await held)).toBe('timeout-frontdoor');
    expect(kindOf(await client.send(command('m_cc_door'), 5_000))).toBe('timeout-frontdoor');
    // A caller that needs the decision (the operator CLI) still gets it.
    expect(kindOf(await client.send(command('m_cc_door'), 5_000, { waitThroughBacklog: true }))).toBe('reply');
    await new Promise((r) => setTimeout(r, 400)); // the front door caught up
    delay.ms = 0;
    expect(kindOf(await client.send(command('m_cc_door'), 5_000))).toBe('reply');
    expect((await jsm.streams.info(n.cmdStream)).state.messages - before).toBe(4);
    expect(() => client.frontDoorBehind(Number.NaN)).toThrow(/assertion/);
    engine.stop();
    client.stop();
  });

  it('never publishes a queued command whose caller was already answered 503 at its deadline', async () => {
    await ensureStreams(jsm, n);
    const client = new CommandClient(nc, null, n);
    client.start();
    const before = (await jsm.streams.info(n.cmdStream)).state.messages;
    // The first fills the shard's slot (sent at the end of this turn); the second queues behind it.
    // The loop is held past the second's 1 ms deadline, so its timer (timers phase) runs before
    // the first's PubAck can be read (poll phase): it is answered 503 while still queued.
    const first = client.send(command('m_cc_q'), 1_000);
    await new Promise((r) => setImmediate(r));
    const second = client.send(command('m_cc_q'), 1);
    const until = Date.now() + 5;
    while (Date.now() < until) { /* hold the event loop */ }
    const err = await second.then(() => null, (e: unknown) => e);
    expect(isEngineUnavailableError(err), String(err)).toBe(true);
    expect(await first).toEqual({ kind: 'timeout' });
    await new Promise((r) => setTimeout(r, 200));
    expect((await jsm.streams.info(n.cmdStream)).state.messages).toBe(before + 1);
    client.stop();
  });
});

/** The result's kind, telling an early (backlog, front door) "processing" from one at the deadline. */
const kindOf = (r: SendResult) => (r.kind === 'timeout' ? `timeout${r.backlog ? '-backlog' : ''}${r.frontDoor ? '-frontdoor' : ''}` : r.kind);

/** A slow stand-in engine (its delay changeable while it runs) and a started client with this backlog setting. */
async function lagging(delayMs: number, backlogLagMs: number) {
  await ensureStreams(jsm, n);
  const delay = { ms: delayMs };
  const engine = slowEngine(delay);
  const client = new CommandClient(nc, null, n, { backlogLagMs });
  client.start();
  return { delay, engine, client };
}

/** A stand-in engine that answers each command after `delay.ms` (changeable while it runs). */
function slowEngine(delay: { ms: number }): { stop: () => void } {
  const sub = nc.subscribe(n.cmdSubjectAll, { callback: (_err, msg) => { const d = delay.ms; setTimeout(() => answer(msg), d); } });
  return { stop: () => sub.unsubscribe() };
}

/** A stand-in engine on core NATS: answers every command, single or batched, account.exists. */
function answer(msg: Msg): void {
  const refuse = (cmd: Command) => encode({ v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: false, replayed: false, code: 'account.exists', message: 'x', payment_id: null });
  const replyTo = String(msg.headers?.get(REPLY_HEADER));
  if (msg.headers?.has(BATCH_HEADER)) {
    const batch = unpackRaw(msg.data) as CommandBatch;
    batch.cmds.forEach((cmd, i) => nc.publish(`${replyTo}.${batch.replies[i]}`, refuse(cmd)));
  } else nc.publish(replyTo, refuse(unpackRaw(msg.data) as Command));
}
