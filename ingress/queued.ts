// A create answered 202 before the engine decided it (its deadline passed, or the engine lagged on
// the shard): the payment exists nowhere the engine writes yet, so GET on the 202's Location would
// say 404 until the engine gets to the command. The ingress keeps what it answered, with the
// command's id, for as long as the answer itself is kept (the idempotency record, 24 h). GET then
// shows the payment `processing` while the command's op record is absent (not decided yet), and
// 404 once the engine decided without creating it (an unknown account, an out_trade_no in use).
// GET by out_trade_no finds it the same way, through a second key naming its payment id.
import { z } from 'zod';
import { merchantKeys } from '../engine/redis/keys.ts';
import { paymentSchema, type Payment } from '../engine/protocol/payment.ts';
import { IDEMPOTENCY_TTL_S } from './idempotency.ts';
import type { IngressContext } from './context.ts';

const queuedSchema = z.object({ cmd_id: z.string().min(1), payment: paymentSchema });

/** Remembers the `processing` payment of a 202 and returns it. */
export async function rememberQueued(ctx: IngressContext, cmdId: string, payment: Payment): Promise<Payment> {
  if (payment.status !== 'processing') throw new Error('assertion: only a processing payment is remembered as queued');
  const keys = merchantKeys(ctx.names.redisPrefix, payment.merchant_id);
  // NX on the out_trade_no: of two creates with the same one, the first answered names it; once the
  // engine has decided, its own out_trade_no index (written with the payment) answers first.
  // Two plain SETs, auto-pipelined into one write: neither needs the other to be atomic with it.
  await Promise.all([
    ctx.redis.set(keys.queued(payment.id), JSON.stringify({ cmd_id: cmdId, payment }), 'EX', IDEMPOTENCY_TTL_S),
    ctx.redis.set(keys.queuedOutTradeNo(payment.out_trade_no), payment.id, 'EX', IDEMPOTENCY_TTL_S, 'NX'),
  ]);
  return payment;
}

/** The payment id a 202 answered for this out_trade_no, if any (see rememberQueued). */
export async function queuedIdByOutTradeNo(ctx: IngressContext, merchantId: string, outTradeNo: string): Promise<string | null> {
  return ctx.redis.get(merchantKeys(ctx.names.redisPrefix, merchantId).queuedOutTradeNo(outTradeNo));
}

/**
 * The remembered `processing` payment while the engine has not decided its command; null when
 * there is none, or when the engine has decided (then the payment is wherever the engine put it,
 * or nowhere). `readAgain` reads the engine's copy, for a decision that lands between the caller's
 * own read and this one.
 */
export async function readQueued(ctx: IngressContext, merchantId: string, paymentId: string, readAgain: () => Promise<Payment | null>): Promise<Payment | null> {
  const keys = merchantKeys(ctx.names.redisPrefix, merchantId);
  const raw = await ctx.redis.get(keys.queued(paymentId));
  if (raw === null) return null;
  const parsed = queuedSchema.safeParse(JSON.parse(raw));
  if (!parsed.success || parsed.data.payment.id !== paymentId || parsed.data.payment.merchant_id !== merchantId) {
    throw new Error(`assertion: the queued record of ${paymentId} is not what the ingress wrote`);
  }
  if ((await ctx.redis.exists(keys.op(parsed.data.cmd_id))) === 0) return parsed.data.payment;
  return readAgain();
}
