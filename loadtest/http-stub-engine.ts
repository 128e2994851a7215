// The stub engine of `npm run bench:http`: answers every command at once, so the benchmark
// measures the ingress alone. It is a plain core-NATS subscriber on the namespace's command
// subjects (<ns>.cmd.>): the ingress still publishes each command to JetStream and waits for the
// PubAck (the stream stores it as in production), and still waits for the reply on its reply
// subscription and validates it. The stub only skips the engine's work (shard consumer, actor,
// Redis Lua) and its acks, which would compete with the ingress for the two cores.
//   PEAKPAY_NAMESPACE=… NATS_URL=… node --import tsx loadtest/http-stub-engine.ts   prints {"ready":true}
import { connect } from '@nats-io/transport-node';
import { encode, unpackRaw } from '../engine/protocol/codec.ts';
import { PROTOCOL_VERSION, type Command, type CommandBatch } from '../engine/protocol/commands.ts';
import { REPLY_BATCH_TOKEN, type Reply } from '../engine/protocol/events.ts';
import { BATCH_HEADER, REPLY_HEADER } from '../engine/protocol/headers.ts';
import type { Payment } from '../engine/protocol/payment.ts';

const namespace = process.env.PEAKPAY_NAMESPACE ?? 'pp';

/** What the real engine answers for a balance payment whose hold succeeded. */
function authorized(cmd: Extract<Command, { type: 'payment.create' }>): Payment {
  const now = new Date(cmd.ts_ms).toISOString();
  return {
    id: cmd.payment_id, merchant_id: cmd.merchant_id, out_trade_no: cmd.out_trade_no, amount: cmd.amount, currency: cmd.currency,
    amount_captured: 0, amount_refunded: 0, method: cmd.method, channel: 'balance', scene: cmd.scene, subject: cmd.subject ?? null,
    account_id: cmd.account_id ?? null, status: 'authorized', failure: null, next_action: null, buyer: cmd.buyer ?? null,
    metadata: cmd.metadata ?? null, hold_expires_at: new Date(cmd.ts_ms + cmd.hold_ttl_s * 1000).toISOString(),
    created_at: now, updated_at: now, version: 1,
  };
}

const nc = await connect({ servers: process.env.NATS_URL ?? 'nats://127.0.0.1:24222', name: 'bench-stub-engine', noAsyncTraces: true });
let answered = 0;
nc.subscribe(`${namespace}.cmd.>`, {
  callback: (err, msg) => {
    if (err) return;
    const replyTo = msg.headers?.get(REPLY_HEADER);
    if (!replyTo) return;
    // Trusted input (our own ingress): unpacked without the zod validation the engine does.
    const raw = unpackRaw(msg.data);
    const batch = msg.headers?.has(BATCH_HEADER) ? (raw as CommandBatch) : null;
    const cmds = batch ? batch.cmds : [raw as Command];
    const replies = cmds.map((cmd): Reply => cmd.type === 'payment.create'
      ? { v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: true, replayed: false, payment: authorized(cmd), account: null }
      : { v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: false, replayed: false, code: 'internal', message: `stub: ${cmd.type} not handled`, payment_id: null });
    // As the engine does: a batch's replies in one ReplyBatch message, a single command's alone.
    if (batch) nc.publish(`${replyTo}.${REPLY_BATCH_TOKEN}`, encode({ v: PROTOCOL_VERSION, tokens: batch.replies, replies }));
    else nc.publish(replyTo, encode(replies[0]));
    answered += cmds.length;
  },
});
await nc.flush();
console.log(JSON.stringify({ ready: true }));
process.on('SIGTERM', () => {
  console.error(JSON.stringify({ stub_answered: answered }));
  void nc.drain().then(() => process.exit(0));
});
