// /v1/notify/{channel}: callbacks from the payment channels. No merchant auth: the channel's own
// signature, verified by its adapter over the raw bytes within its time window, is the
// authentication. A verified payment callback becomes a payment.channel_notify command whose id is
// derived from the channel's notification id, so a re-sent callback is a no-op; a refund callback
// becomes refund.channel_result, one command id per refund. The engine cross-checks channel,
// amount and currency against the order (or refund). Anything else changes nothing, is counted
// (peakpay_channel_notify_total) and is answered in the channel's failure format so a real
// channel retries, and a forger learns nothing.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { isEngineUnavailableError } from '../../engine/client/index.ts';
import { isChannelError, isChannelNotifyError, type ChannelAdapter, type ChannelName, type ChannelNotification, type NotifyAnswer } from '../../engine/channels/types.ts';
import { PROTOCOL_VERSION, paymentChannelNotifySchema, refundChannelResultSchema, type Command, type CommandOf } from '../../engine/protocol/commands.ts';
import { SAFE_ID } from '../../engine/protocol/ids.ts';
import type { Currency } from '../../engine/protocol/money.ts';
import { channelIndexKey, notifyCmdId, refundResultCmdId } from '../../engine/shards/channel-work.ts';
import type { IngressContext } from '../context.ts';
import type { ChannelNotifyResult } from '../../engine/metrics.ts';
import { ApiError } from '../errors.ts';

type NotifyResult = ChannelNotifyResult;

function sendAnswer(reply: FastifyReply, a: NotifyAnswer): FastifyReply {
  return reply.code(a.status).headers(a.headers).send(a.body);
}

export function notifyRoutes(app: FastifyInstance, ctx: IngressContext): void {
  app.post('/v1/notify/:channel', async (req, reply) => {
    const { channel } = req.params as { channel: string };
    const adapter = ctx.channels?.[channel as ChannelName];
    if (!adapter) throw new ApiError('route.not_found', `no channel ${channel}`);
    const count = (result: NotifyResult) => ctx.channelMetrics?.notify.labels(channel, result).inc();

    let n: ChannelNotification;
    try {
      n = await adapter.verifyNotify(req.rawBody, req.headers, Date.now());
    } catch (err) {
      if (isChannelError(err)) {
        // We could not verify (e.g. PayPal's certificate could not be fetched): not the sender's
        // fault, so not counted as a rejection; the channel re-sends.
        req.log.warn({ channel, err: err.message }, 'channel callback could not be verified now');
        return sendAnswer(reply, adapter.notifyAnswer(false));
      }
      if (!isChannelNotifyError(err)) throw err;
      count(err.reason);
      req.log.warn({ channel, reason: err.reason }, 'channel callback rejected');
      return sendAnswer(reply, adapter.notifyAnswer(false));
    }
    const outcome = await apply(ctx, adapter, n);
    count(outcome.result);
    if (outcome.result !== 'accepted' && outcome.result !== 'duplicate') {
      req.log.warn({ channel, result: outcome.result, payment_id: SAFE_ID.test(n.out_trade_no) ? n.out_trade_no : null }, 'channel callback changed nothing');
    }
    return sendAnswer(reply, adapter.notifyAnswer(outcome.ok));
  });
}

/**
 * Channels whose refund callbacks state the trade's running total rather than the single refund's
 * amount (Alipay's refund_fee): the engine cannot cross-check the amount of those.
 */
const REFUND_NOTIFY_AMOUNT_IS_RUNNING_TOTAL: ReadonlySet<ChannelName> = new Set(['alipay']);

async function apply(ctx: IngressContext, adapter: ChannelAdapter, n: ChannelNotification): Promise<{ ok: boolean; result: NotifyResult }> {
  // "Still waiting for the buyer" (or for the refund) changes nothing.
  if (n.status === 'pending') return { ok: true, result: 'accepted' };
  if (!SAFE_ID.test(n.out_trade_no)) return { ok: false, result: 'unknown_order' };
  const index = await ctx.redis.get(channelIndexKey(ctx.names.redisPrefix, n.out_trade_no));
  if (!index) return { ok: false, result: 'unknown_order' };
  const { m, w } = JSON.parse(index) as { m: string; w: string | null };
  let cmd: Command;
  if (n.kind === 'refund') {
    // A refund of ours (its id is the channel's out_refund_no): one command id per refund, so
    // whichever answer reaches the engine first (this callback, or the answer to our own call) decides.
    if (!SAFE_ID.test(n.out_refund_no)) return { ok: false, result: 'unknown_order' };
    const refundCmd: CommandOf<'refund.channel_result'> = {
      v: PROTOCOL_VERSION, type: 'refund.channel_result', cmd_id: refundResultCmdId(m, n.out_refund_no), merchant_id: m,
      ts_ms: Date.now(), payment_id: n.out_trade_no, refund_id: n.out_refund_no, channel: adapter.name, source: 'callback',
      status: n.status, amount: REFUND_NOTIFY_AMOUNT_IS_RUNNING_TOTAL.has(adapter.name) ? null : n.amount, currency: n.currency as Currency,
      channel_refund_id: null,
    };
    if (!refundChannelResultSchema.safeParse(refundCmd).success) return { ok: false, result: 'mismatch' };
    cmd = refundCmd;
  } else {
    const notifyCmd: CommandOf<'payment.channel_notify'> = {
      v: PROTOCOL_VERSION, type: 'payment.channel_notify', cmd_id: notifyCmdId(adapter.name, n.notification_id), merchant_id: m,
      ts_ms: Date.now(), payment_id: n.out_trade_no, channel: adapter.name, source: 'callback',
      notification_id: n.notification_id.slice(0, 256), status: n.status, amount: n.amount, currency: n.currency as Currency,
      channel_trade_no: n.channel_trade_no?.slice(0, 128) ?? null, wallet_id: w,
    };
    // A notification that cannot be a command (unknown currency, zero amount …) matches no order of ours.
    if (!paymentChannelNotifySchema.safeParse(notifyCmd).success) return { ok: false, result: 'mismatch' };
    cmd = notifyCmd;
  }
  let sent;
  try {
    sent = await ctx.client.send(cmd, ctx.config.ingressDeadlineMs, { returnDuplicate: true });
  } catch (err) {
    if (isEngineUnavailableError(err)) return { ok: false, result: 'deferred' };
    throw err;
  }
  // Not decided in time: the channel re-sends, and the command id makes that a no-op.
  if (sent.kind === 'timeout') return { ok: false, result: 'deferred' };
  // The same notification id within JetStream's duplicate window: stored once already, a no-op.
  if (sent.kind === 'duplicate') return { ok: true, result: 'duplicate' };
  const r = sent.reply;
  if (r.ok) {
    // A re-sent notification (same id: replayed op) or another one about a payment already in that
    // state (the script changed nothing, so the payment was last updated before this command).
    const unchanged = r.replayed || (r.payment !== null && r.payment !== undefined && Date.parse(r.payment.updated_at) < cmd.ts_ms);
    if (n.kind === 'refund' && r.refund && r.refund.status !== n.status) {
      // The first answer decided the refund; the channel now says otherwise: for an operator.
      ctx.log.error({ channel: adapter.name, refund_id: n.out_refund_no, merchant_id: m, ours: r.refund.status, channel_says: n.status }, 'the channel contradicts a decided refund');
    }
    return { ok: true, result: unchanged ? 'duplicate' : 'accepted' };
  }
  switch (r.code) {
    case 'channel.notification_mismatch':
      return { ok: false, result: 'mismatch' };
    case 'payment.not_found':
    case 'account.not_found':
      return { ok: false, result: 'unknown_order' };
    case 'channel.late_payment':
      // No money booked; recorded on the payment with a payment.late_paid event (ledger, webhook)
      // for an operator to refund at the channel (docs/CHANNELS.md). Acknowledged: we have it.
      ctx.log.error({ channel: adapter.name, payment_id: n.out_trade_no, merchant_id: m }, 'paid at the channel after the payment was closed: refund it at the channel');
      return { ok: true, result: 'accepted' };
    default:
      return { ok: false, result: 'malformed' };
  }
}
