// A message on the command stream that is not a valid command (garbage, wrong version, a float
// amount) is terminated and answered with command.invalid; it changes nothing and never blocks the
// merchant's shard: the next valid command is applied at once. In a batch, only the invalid
// commands are refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectNats } from '../../engine/infra.ts';
import { decodeReply, decodeReplyBatch, encode } from '../../engine/protocol/codec.ts';
import { REPLY_BATCH_TOKEN } from '../../engine/protocol/events.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import { BATCH_HEADER, REPLY_HEADER } from '../../engine/protocol/headers.ts';
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

  it('in a batch, refuses the invalid commands and applies their neighbours in order; an unreadable batch is terminated', async () => {
    const nc = await connectNats(h.config, 'poison-batch-test');
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const merchant = uniqueId('m');
    const replies = new Map<string, { ok: boolean; code?: string }>();
    const prefix = `${h.names.replyPrefix}.poisonb.${uniqueId('r')}`;
    // Replies to a batch come in ReplyBatch messages on <prefix>.r.
    nc.subscribe(`${prefix}.${REPLY_BATCH_TOKEN}`, {
      callback: (_e, m) => {
        for (const { token, reply } of decodeReplyBatch(m.data)) replies.set(token, reply as { ok: boolean; code?: string });
      },
    });
    await nc.flush();
    const hdr = headers();
    hdr.set(REPLY_HEADER, prefix);
    hdr.set(BATCH_HEADER, '4');
    const base = { v: PROTOCOL_VERSION, merchant_id: merchant, ts_ms: Date.now() };
    const cmds = [
      { ...base, type: 'account.create', cmd_id: uniqueId('c'), account_id: 'a', currency: 'CNY' },
      { ...base, type: 'account.credit', cmd_id: uniqueId('c'), account_id: 'a', amount: 19.99, currency: 'CNY', reason: 'float' },
      { ...base, type: 'account.credit', cmd_id: uniqueId('c'), account_id: 'a', amount: 1999, currency: 'CNY', reason: 'ok' },
      { ...base, type: 'account.credit', cmd_id: uniqueId('c'), account_id: 'a', amount: 1, currency: 'CNY', reason: 'ok', extra: 1 },
    ];
    const perMessage = async () => {
      const v = (await h.engine?.metrics.commandsPerMessage.get())?.values ?? [];
      return { sum: v.find((x) => x.metricName?.endsWith('_sum'))?.value ?? 0, count: v.find((x) => x.metricName?.endsWith('_count'))?.value ?? 0 };
    };
    const before = await perMessage();
    await js.publish(h.names.cmdSubject(merchant), encode({ v: PROTOCOL_VERSION, cmds, replies: ['t0', 't1', 't2', 't3'] }), { headers: hdr });
    await waitFor('four answers', async () => replies.size === 4);
    // One message of four commands, seen as such by peakpay_engine_commands_per_message.
    const after = await perMessage();
    expect({ sum: after.sum - before.sum, count: after.count - before.count }).toEqual({ sum: 4, count: 1 });
    expect(replies.get('t0')).toMatchObject({ ok: true });
    expect(replies.get('t1')).toMatchObject({ ok: false, code: 'command.invalid' });
    expect(replies.get('t2')).toMatchObject({ ok: true });
    expect(replies.get('t3')).toMatchObject({ ok: false, code: 'command.invalid' });
    expect(await h.ingress.ctx.store.readAccount(merchant, 'a')).toMatchObject({ available: 1999, held: 0 });

    // Envelope unreadable (replies and cmds differ in length): nothing applied, terminated.
    const lost = { ...base, type: 'account.credit', cmd_id: uniqueId('c'), account_id: 'a', amount: 5, currency: 'CNY', reason: 'x' };
    await js.publish(h.names.cmdSubject(merchant), encode({ v: PROTOCOL_VERSION, cmds: [lost], replies: ['t4', 't5'] }), { headers: hdr });
    const shard = shardOf(merchant, h.names.shardCount);
    await waitFor('batch handled', async () => {
      const info = await jsm.consumers.info(h.names.cmdStream, h.names.shardConsumer(shard));
      return info.num_pending + info.num_ack_pending === 0;
    });
    expect(await h.ingress.ctx.store.readAccount(merchant, 'a')).toMatchObject({ available: 1999, held: 0 });
    await nc.close();
  });
});
