// /v1/topups: a buyer or agent tops up a wallet through a channel. The same engine command as a
// channel payment (kind topup): the wallet is credited when the channel reports it paid; the
// daily cap of the risk rules applies (risk.daily_cap_exceeded).
import type { FastifyInstance } from 'fastify';
import type { Command } from '../../engine/protocol/commands.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import type { IngressContext } from '../context.ts';
import { idempotent, parseBody } from '../http.ts';
import { createTopupBody } from '../schemas.ts';
import { answer, merchantOf } from './payments.ts';
import { rememberQueued } from '../queued.ts';

export function topupRoutes(app: FastifyInstance, ctx: IngressContext): void {
  app.post('/v1/topups', { config: { claimsNonce: true } }, async (req, reply) => {
    const merchant = merchantOf(req);
    const body = parseBody(req, createTopupBody);
    return idempotent(ctx, req, reply, merchant, async ({ cmdId, derive }) => {
      const paymentId = derive('pay');
      const cmd: Command = {
        v: PROTOCOL_VERSION, type: 'payment.create', kind: 'topup', cmd_id: cmdId, merchant_id: merchant.id, ts_ms: Date.now(),
        payment_id: paymentId, out_trade_no: body.out_trade_no, amount: body.amount, currency: body.currency,
        method: body.method, capture: 'automatic', hold_ttl_s: body.hold_ttl_s, scene: body.scene, account_id: body.account_id,
        ...(body.subject !== undefined && { subject: body.subject }),
        ...(body.buyer !== undefined && { buyer: body.buyer }),
        ...(body.notify_url !== undefined && { notify_url: body.notify_url }),
        ...(body.metadata !== undefined && { metadata: body.metadata }),
      };
      const sent = await ctx.client.send(cmd, ctx.config.ingressDeadlineMs);
      return answer(ctx, req, sent, 201, async () => {
        const now = new Date().toISOString();
        return rememberQueued(ctx, cmdId, {
          id: paymentId, merchant_id: merchant.id, out_trade_no: body.out_trade_no, amount: body.amount, currency: body.currency,
          amount_captured: 0, amount_refunded: 0, method: body.method, channel: null, scene: body.scene,
          subject: body.subject ?? null, account_id: body.account_id, status: 'processing', failure: null,
          next_action: null, buyer: body.buyer ?? null, metadata: body.metadata ?? null, hold_expires_at: null,
          created_at: now, updated_at: now, version: 1,
        });
      });
    });
  });
}
