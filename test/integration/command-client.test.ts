// CommandClient on a real nats-server: the PubAck read on the client's own subscription decides
// between "stored, the engine has not answered yet" (timeout → 202) and "not stored" (503), and the
// command's cmd_id de-duplicates it in the stream.
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandClient, isEngineUnavailableError, PUBACK_WAIT_MS_MIN } from '../../engine/client/index.ts';
import type { Config } from '../../engine/config.ts';
import { connectNats } from '../../engine/infra.ts';
import { encode, unpackRaw } from '../../engine/protocol/codec.ts';
import { PROTOCOL_VERSION, type Command } from '../../engine/protocol/commands.ts';
import { REPLY_HEADER } from '../../engine/protocol/headers.ts';
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

  it('answers timeout once the command is stored and the deadline passed; the same cmd_id is stored once', async () => {
    await ensureStreams(jsm, n);
    const client = new CommandClient(nc, null, n);
    client.start();
    const cmd = command();
    expect(await client.send(cmd, 200)).toEqual({ kind: 'timeout' });
    expect(await client.send(cmd, 200)).toEqual({ kind: 'timeout' });
    expect((await jsm.streams.info(n.cmdStream)).state.messages).toBe(1);
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
    const sub = nc.subscribe(n.cmdSubjectAll, {
      callback: (_err, msg) => {
        const cmd = unpackRaw(msg.data) as Command;
        nc.publish(String(msg.headers?.get(REPLY_HEADER)), encode({ v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: false, replayed: false, code: 'account.exists', message: 'x', payment_id: null }));
      },
    });
    const client = new CommandClient(nc, null, n);
    client.start();
    const cmd = command();
    expect(await client.send(cmd, 5_000)).toMatchObject({ kind: 'reply', reply: { cmd_id: cmd.cmd_id, ok: false, code: 'account.exists' } });
    sub.unsubscribe();
    client.stop();
  });
});
