// /v1/payments: create, read, capture, cancel, verify. Each POST becomes one engine command.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { SendResult } from '../../engine/client/index.ts';
import type { Command } from '../../engine/protocol/commands.ts';
import { PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import { SAFE_ID } from '../../engine/protocol/ids.ts';
import type { Payment } from '../../engine/protocol/payment.ts';
import { ScriptCode } from '../../engine/redis/errors.ts';
import { toPayment } from '../../engine/protocol/view.ts';
import type { Merchant } from '../../engine/merchants/index.ts';
import { ApiError, isErrorCode } from '../errors.ts';
import type { IngressContext } from '../context.ts';
import { errorResult, idempotent, jsonResult, parseBody, send, type HttpResult, type IdempotentOptions } from '../http.ts';
import { cancelPaymentBody, capturePaymentBody, createPaymentBody, verifyPaymentBody } from '../schemas.ts';
import { readPaymentFromLedger } from './ledger-read.ts';
import { countUndecided } from '../metrics.ts';
import { queuedIdByOutTradeNo, readQueued, rememberQueued } from '../queued.ts';

const paymentLocation = (id: string) => `/v1/payments/${id}`;

export function merchantOf(req: FastifyRequest): Merchant {
  if (!req.merchant) throw new Error('assertion: route reached without authentication');
  return req.merchant;
}

export async function findPayment(ctx: IngressContext, merchantId: string, paymentId: string): Promise<Payment | null> {
  if (!SAFE_ID.test(paymentId)) return null;
  const fromEngine = async () => {
    const raw = await ctx.store.readPayment(merchantId, paymentId);
    return raw ? toPayment(raw) : null;
  };
  return (await fromEngine())
    ?? (await readPaymentFromLedger(ctx.pool, merchantId, paymentId))
    ?? readQueued(ctx, merchantId, paymentId, fromEngine); // answered 202, not decided yet
}

/** 201 with the payment: the first answer of a create, and its replay from the op record (replayCreated). */
const created = (payment: Payment): HttpResult => jsonResult(201, payment, { location: paymentLocation(payment.id) });

/**
 * The first answer of a create the engine completed the Idempotency-Key of, again: the op record is
 * the script's result, and the reply carried its view (paymentViewOf) validated on receipt by the
 * payment schema, which is toPayment(), so this renders the same bytes
 * (test/integration/ingress-idempotency.test.ts compares them).
 */
async function replayCreated(ctx: IngressContext, merchantId: string, cmdId: string): Promise<HttpResult | null> {
  const result = await ctx.store.readOpResult(merchantId, cmdId);
  if (!result) return null;
  if (result.code !== ScriptCode.Ok || !result.payment) throw new Error(`assertion: the engine completed a key whose op ${cmdId} is not a payment`);
  return created(toPayment(result.payment));
}

// A module-level object, not a closure per request (tsx names each closure it creates: docs/ARCHITECTURE.md).
const CREATE_OPTIONS: IdempotentOptions = { replayOp: replayCreated };

/**
 * A payment still `processing` (answered 202, waiting in JetStream's backlog) is answered with
 * Retry-After: poll no sooner than this. A storefront polling every 250 ms during a spike asks four
 * times a second per payment the engine has not reached, and those reads alone can saturate the
 * ingress the backlog was meant to relieve (docs/BENCHMARKS.md, session 18).
 */
export const PROCESSING_RETRY_AFTER_S = '1';

/** Engine reply → HTTP. `processing` answers 202 when the engine did not decide in time. */
export async function answer(
  ctx: IngressContext,
  req: FastifyRequest,
  sent: SendResult,
  okStatus: number,
  processing: () => Promise<Payment | null>,
): Promise<HttpResult> {
  if (sent.kind !== 'reply') {
    countUndecided(ctx.metrics, sent);
    const p = await processing();
    if (!p) throw new ApiError('engine.unavailable', 'the engine did not answer in time');
    return jsonResult(202, p, { location: paymentLocation(p.id), 'retry-after': PROCESSING_RETRY_AFTER_S });
  }
  const r = sent.reply;
  if (r.ok) {
    if (!r.payment) throw new Error('assertion: payment command replied without a payment');
    if (okStatus !== 201) return jsonResult(okStatus, r.payment);
    const res = created(r.payment);
    if (r.idempotency_completed) res.completedByEngine = true;
    return res;
  }
  const code = isErrorCode(r.code) ? r.code : 'internal';
  if (code === 'internal') req.log.error({ engine_code: r.code }, 'unmapped engine error code');
  return errorResult(code, r.message, req.id, r.payment_id ? { payment_id: r.payment_id } : undefined);
}

export function paymentRoutes(app: FastifyInstance, ctx: IngressContext): void {
  const deadlineMs = ctx.config.ingressDeadlineMs;

  app.post('/v1/payments', { config: { claimsNonce: true } }, async (req, reply) => {
    const merchant = merchantOf(req);
    const body = parseBody(req, createPaymentBody);
    if (body.amount > merchant.paymentAmountMax) {
      throw new ApiError('validation.amount_above_maximum', `amount must not exceed ${merchant.paymentAmountMax}`, {
        errors: [{ path: 'amount', message: `above the per-payment maximum ${merchant.paymentAmountMax}` }],
      });
    }
    return idempotent(ctx, req, reply, merchant, async ({ cmdId, keySha256, derive }) => {
      const paymentId = derive('pay');
      const cmd: Command = {
        v: PROTOCOL_VERSION, type: 'payment.create', cmd_id: cmdId, merchant_id: merchant.id, ts_ms: Date.now(),
        payment_id: paymentId, out_trade_no: body.out_trade_no, amount: body.amount, currency: body.currency,
        method: body.method, capture: body.capture, hold_ttl_s: body.hold_ttl_s, scene: body.scene,
        ...(body.account_id !== undefined && { account_id: body.account_id }),
        ...(body.subject !== undefined && { subject: body.subject }),
        ...(body.buyer !== undefined && { buyer: body.buyer }),
        ...(body.notify_url !== undefined && { notify_url: body.notify_url }),
        ...(body.metadata !== undefined && { metadata: body.metadata }),
        idempotency_key_sha256: keySha256,
      };
      const sent = await ctx.client.send(cmd, deadlineMs);
      return answer(ctx, req, sent, 201, async () => {
        const now = new Date().toISOString();
        return rememberQueued(ctx, cmdId, {
          id: paymentId, merchant_id: merchant.id, out_trade_no: body.out_trade_no, amount: body.amount, currency: body.currency,
          amount_captured: 0, amount_refunded: 0, method: body.method, channel: null, scene: body.scene,
          subject: body.subject ?? null, account_id: body.account_id ?? null, status: 'processing', failure: null,
          next_action: null, buyer: body.buyer ?? null, metadata: body.metadata ?? null, hold_expires_at: null,
          created_at: now, updated_at: now, version: 1,
        });
      });
    }, CREATE_OPTIONS);
  });

  app.get('/v1/payments/:id', async (req, reply) => {
    const merchant = merchantOf(req);
    const { id } = req.params as { id: string };
    const p = await findPayment(ctx, merchant.id, id);
    if (!p) throw new ApiError('payment.not_found', `no payment ${id}`);
    return send(reply, jsonResult(200, p, p.status === 'processing' ? { 'retry-after': PROCESSING_RETRY_AFTER_S } : {}));
  });

  app.get('/v1/payments', async (req, reply) => {
    const merchant = merchantOf(req);
    const q = req.query as Record<string, unknown>;
    const otn = q.out_trade_no;
    if (typeof otn !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(otn) || Object.keys(q).length !== 1) {
      throw new ApiError('validation.failed', 'query must be exactly out_trade_no=<1-64 of [A-Za-z0-9_-]>', {
        errors: [{ path: 'out_trade_no', message: 'required, 1-64 of [A-Za-z0-9_-]' }],
      });
    }
    const id = (await ctx.store.paymentIdByOutTradeNo(merchant.id, otn))
      ?? (await paymentIdFromLedger(ctx, merchant.id, otn))
      ?? (await queuedIdByOutTradeNo(ctx, merchant.id, otn)); // answered 202, not decided yet
    const p = id ? await findPayment(ctx, merchant.id, id) : null;
    if (!p) throw new ApiError('payment.not_found', `no payment with out_trade_no ${otn}`);
    return send(reply, jsonResult(200, p));
  });

  const transition = (path: 'capture' | 'cancel' | 'verify') =>
    app.post(`/v1/payments/:id/${path}`, { config: { claimsNonce: true } }, async (req, reply) => {
      const merchant = merchantOf(req);
      const { id } = req.params as { id: string };
      const body = path === 'capture' ? parseBody(req, capturePaymentBody)
        : (parseBody(req, path === 'cancel' ? cancelPaymentBody : verifyPaymentBody), {});
      if (!SAFE_ID.test(id)) throw new ApiError('payment.not_found', `no payment ${id}`);
      return idempotent(ctx, req, reply, merchant, async ({ cmdId }) => {
        const base = { v: PROTOCOL_VERSION, cmd_id: cmdId, merchant_id: merchant.id, ts_ms: Date.now(), payment_id: id };
        const cmd: Command =
          path === 'capture'
            ? { ...base, type: 'payment.capture', ...('amount' in body && body.amount !== undefined && { amount: body.amount }) }
            : { ...base, type: path === 'cancel' ? 'payment.cancel' : 'payment.verify' };
        const sent = await ctx.client.send(cmd, deadlineMs);
        return answer(ctx, req, sent, 200, () => findPayment(ctx, merchant.id, id));
      });
    });
  transition('capture');
  transition('cancel');
  transition('verify');
}

async function paymentIdFromLedger(ctx: IngressContext, merchantId: string, outTradeNo: string): Promise<string | null> {
  const r = await ctx.pool.query<{ id: string }>('SELECT id FROM payments WHERE merchant_id = $1 AND out_trade_no = $2', [merchantId, outTradeNo]);
  return r.rows[0]?.id ?? null;
}
