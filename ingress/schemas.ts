// Request bodies of the public API, in zod: the same schemas validate requests and generate
// /openapi.json. Unknown fields are rejected (strict objects).
import { z } from 'zod';
import { AMOUNT_MAX, currencySchema } from '../engine/protocol/money.ts';
import { safeIdSchema } from '../engine/protocol/ids.ts';
import { HOLD_TTL_S_MAX } from '../engine/protocol/commands.ts';
import { buyerSchema, metadataSchema, methodSchema, outTradeNoSchema, sceneSchema } from '../engine/protocol/payment.ts';
import { refundReasonSchema } from '../engine/protocol/refund.ts';

const amount = z.number().int('must be an integer count of minor units (fen)').positive('must be greater than zero').max(AMOUNT_MAX);

export const createPaymentBody = z
  .strictObject({
    out_trade_no: outTradeNoSchema,
    amount,
    currency: currencySchema,
    method: methodSchema,
    account_id: safeIdSchema.optional(),
    capture: z.enum(['manual', 'automatic']).default('automatic'),
    hold_ttl_s: z.number().int().min(1).max(HOLD_TTL_S_MAX).default(900),
    scene: sceneSchema,
    subject: z.string().min(1).max(128).optional(),
    buyer: buyerSchema.optional(),
    notify_url: z.url({ protocol: /^https?$/ }).max(512).optional(),
    metadata: metadataSchema.optional(),
  })
  .refine((b) => b.method !== 'balance' || b.account_id !== undefined, {
    path: ['account_id'],
    message: 'required for method balance',
  });
export type CreatePaymentBody = z.infer<typeof createPaymentBody>;

/** A top-up: a channel payment whose success credits the wallet (API.md /v1/topups). */
export const createTopupBody = z.strictObject({
  out_trade_no: outTradeNoSchema,
  account_id: safeIdSchema,
  amount,
  currency: currencySchema,
  method: methodSchema.exclude(['balance']),
  scene: sceneSchema,
  buyer: buyerSchema.optional(),
  subject: z.string().min(1).max(128).optional(),
  /** How long the buyer has to pay at the channel before the order closes. */
  hold_ttl_s: z.number().int().min(60).max(HOLD_TTL_S_MAX).default(900),
  notify_url: z.url({ protocol: /^https?$/ }).max(512).optional(),
  metadata: metadataSchema.optional(),
});

export const capturePaymentBody = z.strictObject({ amount: amount.optional() });
export const cancelPaymentBody = z.strictObject({});
/** The merchant's word that the buyer passed its second verification (SMS, face …): no fields. */
export const verifyPaymentBody = z.strictObject({});
/** A refund of (part of) the captured amount; the bound is what is left to refund (409 beyond it). */
export const refundPaymentBody = z.strictObject({ amount, reason: refundReasonSchema.optional() });

export const createAccountBody = z.strictObject({ account_id: safeIdSchema, currency: currencySchema });

export const idempotencyKeySchema = z.string().regex(/^[\x21-\x7e]{1,255}$/);
