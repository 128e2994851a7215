// /openapi.json, generated from the same zod schemas that validate requests and responses.
import { CHANNELS } from '../engine/channels/types.ts';
import { z } from 'zod';
import { paymentSchema } from '../engine/protocol/payment.ts';
import { accountSnapshotSchema } from '../engine/protocol/events.ts';
import { ERRORS } from './errors.ts';
import { RISK_REFUSAL_REASONS } from '../engine/risk/rules.ts';
import { refundSchema } from '../engine/protocol/refund.ts';
import { capturePaymentBody, createAccountBody, createPaymentBody, createTopupBody, refundPaymentBody, verifyPaymentBody } from './schemas.ts';

const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
const json = (s: z.ZodType) => ({ content: { 'application/json': { schema: schema(s) } } });
const problem = { content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };

const errorsFor = (...codes: (keyof typeof ERRORS)[]) => {
  const out: Record<string, unknown> = {};
  for (const c of codes) {
    const status = String(ERRORS[c].status);
    const prev = (out[status] as { description: string } | undefined)?.description;
    out[status] = { description: prev ? `${prev}, ${c}` : c, ...problem, ...(c === 'rate_limited' ? { headers: { 'Retry-After': retryAfter } } : {}) };
  }
  return out;
};
const retryAfter = { description: 'Seconds to wait before retrying', schema: { type: 'integer', minimum: 1 } };

/** Every merchant call can be refused before it reaches its route. */
const AUTH_ERRORS = [
  'auth.missing', 'auth.malformed', 'auth.unknown_merchant', 'auth.invalid_signature', 'auth.timestamp_out_of_window', 'auth.nonce_reused',
  'auth.merchant_disabled', 'rate_limited',
] as const;
const POST_ERRORS = [
  ...AUTH_ERRORS, 'request.malformed_json', 'request.too_large', 'request.unsupported_media_type', 'validation.failed',
  'idempotency.key_missing', 'idempotency.key_invalid', 'idempotency.key_reused', 'idempotency.in_progress', 'engine.unavailable',
] as const;

export function openApiDocument() {
  const paymentResponse = (description: string) => ({ description, ...json(paymentSchema) });
  const refundResponse = (description: string) => ({ description, ...json(refundSchema) });
  const idempotencyKey = { name: 'Idempotency-Key', in: 'header', required: true, schema: { type: 'string', minLength: 1, maxLength: 255 } };
  const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  return {
    openapi: '3.1.0',
    info: { title: 'peakpay API', version: '1.0.0', description: 'Money is integer minor units with an ISO 4217 currency. See API.md.' },
    components: {
      securitySchemes: { peakpayHmac: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'PEAKPAY-HMAC-SHA256 merchant_id,timestamp,nonce,signature' } },
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'code', 'detail', 'request_id', 'errors'],
          properties: {
            type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' },
            code: { type: 'string', enum: Object.keys(ERRORS) }, detail: { type: 'string' }, request_id: { type: 'string' },
            errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
          },
        },
      },
    },
    security: [{ peakpayHmac: [] }],
    paths: {
      '/v1/payments': {
        post: {
          summary: 'Create a payment', parameters: [idempotencyKey], requestBody: { required: true, ...json(createPaymentBody) },
          responses: {
            201: paymentResponse(
              'Decided: authorized, succeeded, requires_action (unusual hours: next_action {type: verify}, funds held; POST '
              + `/v1/payments/{id}/verify) or failed with failure.code one of ${RISK_REFUSAL_REASONS.join(', ')} (risk rules, `
              + 'docs/RISK.md) or balance.insufficient_funds',
            ),
            202: paymentResponse('Not decided within the deadline, or the engine is behind: status processing; poll Location no sooner than Retry-After (seconds; it reads processing until the engine decides) or wait for the webhook'),
            ...errorsFor(...POST_ERRORS, 'validation.amount_above_maximum', 'payment.duplicate_out_trade_no', 'account.not_found', 'account.currency_mismatch', 'payment.method_unavailable'),
          },
        },
        get: {
          summary: 'Find a payment by out_trade_no',
          parameters: [{ name: 'out_trade_no', in: 'query', required: true, schema: { type: 'string' } }],
          responses: { 200: paymentResponse('The payment'), ...errorsFor(...AUTH_ERRORS, 'validation.failed', 'payment.not_found') },
        },
      },
      '/v1/payments/{id}': {
        get: { summary: 'Read a payment', parameters: [idParam], responses: { 200: paymentResponse('The payment (status processing while a create answered 202 waits for the engine)'), ...errorsFor(...AUTH_ERRORS, 'payment.not_found') } },
      },
      '/v1/payments/{id}/capture': {
        post: {
          summary: 'Capture an authorized payment, in full or in part (the rest of the hold is released)',
          parameters: [idParam, idempotencyKey], requestBody: { required: false, ...json(capturePaymentBody) },
          responses: { 200: paymentResponse('Captured'), 202: paymentResponse('Not decided within the deadline'), ...errorsFor(...POST_ERRORS, 'payment.not_found', 'payment.invalid_transition') },
        },
      },
      '/v1/payments/{id}/cancel': {
        post: {
          summary: 'Cancel: void a hold or close an unpaid channel order', parameters: [idParam, idempotencyKey],
          responses: { 200: paymentResponse('Canceled'), 202: paymentResponse('Not decided within the deadline'), ...errorsFor(...POST_ERRORS, 'payment.not_found', 'payment.invalid_transition') },
        },
      },
      '/v1/payments/{id}/verify': {
        post: {
          summary: 'Verify a payment the risk rules challenged (status requires_action, next_action {type: verify})',
          description:
            'Call after the buyer passed your second verification (for example an SMS code). The funds are already held, so '
            + 'this cannot fail for lack of funds: capture manual → authorized, capture automatic → succeeded. Idempotent '
            + 'like every POST (Idempotency-Key). A payment not in requires_action → 409 payment.invalid_transition; a hold '
            + 'past its deadline is expired instead (409 payment.invalid_transition, the payment reads expired).',
          parameters: [idParam, idempotencyKey], requestBody: { required: false, ...json(verifyPaymentBody) },
          responses: {
            200: paymentResponse('Verified: authorized, or succeeded for capture automatic'),
            202: paymentResponse('Not decided within the deadline'),
            ...errorsFor(...POST_ERRORS, 'payment.not_found', 'payment.invalid_transition'),
          },
        },
      },
      '/v1/payments/{id}/refunds': {
        post: {
          summary: 'Refund a succeeded payment, in full or in part, back to the buyer\'s wallet or through its channel',
          description:
            'Any number of refunds per payment while their sum stays within amount_captured; one that would exceed it, or a '
            + 'payment that is not succeeded, → 409 payment.invalid_transition and nothing changes. A wallet (method balance) '
            + 'refund is decided at once: 201 with status succeeded, the wallet\'s available balance credited, the payment\'s '
            + 'amount_refunded increased. The payment keeps status succeeded even when refunded in full (amount_refunded = '
            + 'amount_captured). A channel payment (WeChat Pay, Alipay …) is refunded through its channel: the amount is reserved '
            + 'at once (amount_refunded) and the refund is pending until the channel decides; 201 with status succeeded or failed '
            + 'when it does within the deadline, else 202 with status pending (a failed refund gives its amount back to '
            + 'amount_refunded). A payment converted into its channel\'s currency (cross-border) is refunded in full, in one '
            + 'refund; a top-up is not refunded through its channel. Idempotent like every POST: the same Idempotency-Key and body is the same refund (the refund '
            + 'id is derived from them), replayed byte for byte. amount is bounded by what is left to refund, not by the '
            + 'per-payment maximum. Another merchant\'s payment is 404. On 202 (not decided within the deadline) poll '
            + 'GET /v1/refunds/{id}: it reads 404 refund.not_found until the refund exists, and stays so if it was refused. '
            + 'Webhooks: refund.succeeded, refund.failed.',
          parameters: [idParam, idempotencyKey], requestBody: { required: true, ...json(refundPaymentBody) },
          responses: {
            201: refundResponse('Decided: status succeeded, or failed when the channel refused it'),
            202: refundResponse('Not decided within the deadline: status pending (at the channel) or processing; poll Location'),
            ...errorsFor(...POST_ERRORS, 'payment.not_found', 'payment.invalid_transition'),
          },
        },
      },
      '/v1/refunds/{id}': {
        get: {
          summary: 'Read a refund', parameters: [idParam],
          responses: { 200: refundResponse('The refund'), ...errorsFor(...AUTH_ERRORS, 'refund.not_found') },
        },
      },
      '/v1/accounts': {
        post: {
          summary: 'Open a wallet account', parameters: [idempotencyKey], requestBody: { required: true, ...json(createAccountBody) },
          responses: { 201: { description: 'The account', ...json(accountSnapshotSchema) }, ...errorsFor(...POST_ERRORS, 'account.exists') },
        },
      },
      '/v1/accounts/{id}': {
        get: { summary: 'Read a wallet balance', parameters: [idParam], responses: { 200: { description: 'The account', ...json(accountSnapshotSchema) }, ...errorsFor(...AUTH_ERRORS, 'account.not_found') } },
      },
      '/v1/topups': {
        post: {
          summary: 'Top up a wallet through a channel',
          description:
            'A channel payment (method wechat_pay, alipay, unionpay, stripe, paypal or auto) whose success credits account_id. '
            + 'Answers like a payment: 201 status pending with next_action (qr_code or redirect) for the buyer, or failed '
            + '(risk.daily_cap_exceeded when the buyer\'s daily top-ups would pass the cap, channel.unavailable when no channel '
            + 'opened the order). The wallet is credited once the channel reports the payment paid (callback or query).',
          parameters: [idempotencyKey], requestBody: { required: true, ...json(createTopupBody) },
          responses: {
            201: paymentResponse('The top-up: pending with next_action, or failed'),
            202: paymentResponse('Not decided within the deadline: status processing; poll Location'),
            ...errorsFor(...POST_ERRORS, 'payment.duplicate_out_trade_no', 'account.not_found', 'account.currency_mismatch', 'payment.method_unavailable'),
          },
        },
      },
      '/v1/notify/{channel}': {
        post: {
          security: [],
          summary: 'Channel callbacks (for the channels, not for merchants)',
          description:
            'Each channel\'s own signature scheme, verified over the raw bytes within its time window, deduplicated by its '
            + 'notification id, cross-checked against the order (channel, amount, currency). Answered in the channel\'s own '
            + 'format (WeChat Pay v3 JSON, Alipay plain success/fail, UnionPay ok, Stripe/PayPal 200). docs/CHANNELS.md.',
          parameters: [{ name: 'channel', in: 'path', required: true, schema: { type: 'string', enum: [...CHANNELS] } }],
          responses: { 200: { description: 'Accepted (the channel\'s success answer)' }, 400: { description: 'Rejected (the channel\'s failure answer)' }, 404: { description: 'No such channel configured' } },
        },
      },
      '/healthz': { get: { security: [], summary: 'Process alive', responses: { 200: { description: 'ok' } } } },
      '/readyz': { get: { security: [], summary: 'NATS and Redis reachable, engine consuming', responses: { 200: { description: 'ready' }, 503: { description: 'not ready' } } } },
      '/metrics': { get: { security: [], summary: 'Prometheus metrics', responses: { 200: { description: 'text exposition format' } } } },
      '/openapi.json': { get: { security: [], summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1 JSON' } } } },
    },
  };
}
