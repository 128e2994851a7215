// A message on the command stream that is not a valid command (garbage, wrong version, a float
// amount) is terminated and answered with command.invalid; it changes nothing and never blocks the
// merchant's shard: the next valid command is applied at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectNats } from '../../engine/infra.ts';
import { decodeReply, encode } from '../../engine/protocol/codec.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import { REPLY_HEADER } from '../../engine/protocol/headers.ts';
import { shardOf } from '../../engine/protocol/subjects.ts';
import { startHarness, type Harness } from '../harness.ts';
import { uniqueId, waitFor } from '../helpers.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ settlement: false });
});
afterAll(async () => {
  await h?.stop();
});

describe('poison commands', () => {
  it('terminates undecodable commands, answers command.invalid, and keeps the shard going', async () => {
    const nc = await connectNats(h.config, 'poison-test');
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const merchant = uniqueId('m');
    const replies: unknown[] = [];
    const inbox = `${h.names.replyPrefix}.poison.${uniqueId('r')}`;
    nc.subscribe(inbox, { callback: (_e, m) => void replies.push(decodeReply(m.data)) });
    await nc.flush();
    const hdr = headers();
    hdr.set(REPLY_HEADER, inbox);
    const base = { v: PROTOCOL_VERSION, merchant_id: merchant, ts_ms: Date.now() };
    const bad = [
      new TextEncoder().encode('not msgpack at all'),
      encode({ ...base, v: 2, type: 'account.create', cmd_id: uniqueId('c'), account_id: 'a', currency: 'CNY' }),
      encode({ ...base, type: 'account.credit', cmd_id: uniqueId('c'), account_id: 'a', amount: 19.99, currency: 'CNY', reason: 'x' }),
    ];
    for (const [i, data] of bad.entries()) await js.publish(h.names.cmdSubject(merchant), data, { msgID: uniqueId(`bad${i}`), headers: hdr });
    await waitFor('three refusals', async () => replies.length === 3);
    expect(replies).toEqual(Array(3).fill(expect.objectContaining({ ok: false, code: 'command.invalid' })));

    const ok = await h.ingress.ctx.client.send({ ...base, type: 'account.create', cmd_id: uniqueId('c'), account_id: 'a', currency: 'CNY' }, 5_000);
    expect(ok.kind).toBe('reply');
    expect(ok.kind === 'reply' && ok.reply.ok).toBe(true);
    expect(await h.ingress.ctx.store.readAccount(merchant, 'a')).toMatchObject({ available: 0, held: 0 });

    // Terminated, not redelivered: nothing of the shard is left pending.
    const info = await jsm.consumers.info(h.names.cmdStream, h.names.shardConsumer(shardOf(merchant, h.names.shardCount)));
    expect(info.num_pending + info.num_ack_pending).toBe(0);
    await nc.close();
  });
});
