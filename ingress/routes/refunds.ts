// Refunds: POST /v1/payments/{id}/refunds (one engine command, payment.refund) and
// GET /v1/refunds/{id}. The sum of a payment's refunds never exceeds what was captured: the engine
// decides that in the same Redis call that credits the wallet, or, for a channel payment, that
// reserves the amount while the channel refunds it (paymentRefund-4.lua). A channel refund is
// answered once the channel decided it (201, succeeded or failed) when that happens within the
// deadline, else 202 with status pending (or processing when the engine has not recorded it yet).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Command } from '../../engine/protocol/commands.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import { SAFE_ID } from '../../engine/protocol/ids.ts';
import { refundSchema, type Refund } from '../../engine/protocol/refund.ts';
import { toRefund } from '../../engine/protocol/view.ts';
import type { Merchant } from '../../engine/merchants/index.ts';
import { ApiError, isErrorCode } from '../errors.ts';
import type { IngressContext } from '../context.ts';
import { errorResult, idempotent, jsonResult, parseBody, send } from '../http.ts';
import { refundPaymentBody } from '../schemas.ts';
import { findPayment } from './payments.ts';
import { countUndecided } from '../metrics.ts';

const refundLocation = (id: string) => `/v1/refunds/${id}`;

function merchantOf(req: FastifyRequest): Merchant {
  if (!req.merchant) throw new Error('assertion: route reached without authentication');
  return req.merchant;
}

/** The refund from Redis, or from Postgres when Redis no longer has it (evicted, or being rebuilt). */
export async function findRefund(ctx: IngressContext, merchantId: string, refundId: string): Promise<Refund | null> {
  if (!SAFE_ID.test(refundId)) return null;
  const raw = await ctx.store.readRefund(merchantId, refundId);
  if (raw) return toRefund(raw);
  const r = await ctx.pool.query<{ id: string; payment_id: string; amount: number; currency: string; status: string; reason: string | null; created_at: Date }>(
    'SELECT id, payment_id, amount, currency, status, reason, created_at FROM refunds WHERE merchant_id = $1 AND id = $2',
    [merchantId, refundId],
  );
  const row = r.rows[0];
  return row ? refundSchema.parse({ ...row, created_at: row.created_at.toISOString() }) : null;
}

export function refundRoutes(app: FastifyInstance, ctx: IngressContext): void {
  const deadlineMs = ctx.config.ingressDeadlineMs;

  app.post('/v1/payments/:id/refunds', { config: { claimsNonce: true } }, async (req, reply) => {
    const merchant = merchantOf(req);
    const { id: paymentId } = req.params as { id: string };
    const body = parseBody(req, refundPaymentBody);
    if (!SAFE_ID.test(paymentId)) throw new ApiError('payment.not_found', `no payment ${paymentId}`);
    return idempotent(ctx, req, reply, merchant, async ({ cmdId, derive }) => {
      // Derived like payment ids: a retry with the same key and body is the same refund, even after a 503.
      const refundId = derive('re');
      const cmd: Command = {
        v: PROTOCOL_VERSION, type: 'payment.refund', cmd_id: cmdId, merchant_id: merchant.id, ts_ms: Date.now(),
        payment_id: paymentId, refund_id: refundId, amount: body.amount,
        ...(body.reason !== undefined && { reason: body.reason }),
      };
      const sent = await ctx.client.send(cmd, deadlineMs);
      if (sent.kind !== 'reply') {
        countUndecided(ctx.metrics, sent);
        const done = await findRefund(ctx, merchant.id, refundId);
        if (done) return jsonResult(done.status === 'pending' ? 202 : 201, done, { location: refundLocation(refundId) });
        const payment = await findPayment(ctx, merchant.id, paymentId);
        if (!payment) throw new ApiError('engine.unavailable', 'the engine did not answer in time');
        const processing: Refund = {
          id: refundId, payment_id: paymentId, amount: body.amount, currency: payment.currency, status: 'processing',
          reason: body.reason ?? null, created_at: new Date().toISOString(),
        };
        return jsonResult(202, processing, { location: refundLocation(refundId) });
      }
      const r = sent.reply;
      if (r.ok) {
        if (!r.refund) throw new Error('assertion: payment.refund replied without a refund');
        // Pending: the channel has not decided yet; the client polls Location or waits for the webhook.
        return jsonResult(r.refund.status === 'pending' ? 202 : 201, r.refund, { location: refundLocation(r.refund.id) });
      }
      const code = isErrorCode(r.code) ? r.code : 'internal';
      if (code === 'internal') req.log.error({ engine_code: r.code }, 'unmapped engine error code');
      return errorResult(code, r.message, req.id, r.payment_id ? { payment_id: r.payment_id } : undefined);
    });
  });

  app.get('/v1/refunds/:id', async (req, reply) => {
    const merchant = merchantOf(req);
    const { id } = req.params as { id: string };
    const refund = await findRefund(ctx, merchant.id, id);
    if (!refund) throw new ApiError('refund.not_found', `no refund ${id}`);
    return send(reply, jsonResult(200, refund));
  });
}
