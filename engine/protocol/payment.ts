// The Payment as the public API shows it (API.md). Field names are the wire's (snake_case).
import { z } from 'zod';
import { amountSchema, currencySchema } from './money.ts';
import { safeIdSchema } from './ids.ts';

export const PAYMENT_STATUSES = [
  'processing', 'requires_action', 'pending', 'authorized', 'succeeded', 'failed', 'canceled', 'expired',
] as const;
export const paymentStatusSchema = z.enum(PAYMENT_STATUSES);
export type PaymentStatus = z.infer<typeof paymentStatusSchema>;

export const METHODS = ['balance', 'wechat_pay', 'alipay', 'unionpay', 'stripe', 'paypal', 'auto'] as const;
export const methodSchema = z.enum(METHODS);
export const SCENES = ['pc', 'app', 'mini_program', 'h5'] as const;
export const sceneSchema = z.enum(SCENES);

export const buyerSchema = z.strictObject({
  user_id: z.string().min(1).max(64).optional(),
  device_id: z.string().min(1).max(128).optional(),
  ip: z.union([z.ipv4(), z.ipv6()]).optional(),
});
export type Buyer = z.infer<typeof buyerSchema>;

export const metadataSchema = z
  .record(z.string().min(1).max(40), z.string().max(500))
  .refine((m) => Object.keys(m).length <= 20, { message: 'at most 20 keys' });

export const outTradeNoSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 of [A-Za-z0-9_-]');

export const paymentSchema = z.object({
  id: safeIdSchema,
  merchant_id: safeIdSchema,
  out_trade_no: outTradeNoSchema,
  amount: amountSchema,
  currency: currencySchema,
  amount_captured: z.number().int().min(0),
  amount_refunded: z.number().int().min(0),
  method: methodSchema,
  channel: z.string().nullable(),
  scene: sceneSchema,
  subject: z.string().nullable(),
  account_id: z.string().nullable(),
  status: paymentStatusSchema,
  failure: z.object({ code: z.string(), message: z.string() }).nullable(),
  next_action: z
    .union([
      z.object({ type: z.literal('qr_code'), code_url: z.string() }),
      z.object({ type: z.literal('redirect'), url: z.string() }),
      z.object({ type: z.literal('verify') }),
    ])
    .nullable(),
  buyer: buyerSchema.nullable(),
  metadata: z.record(z.string(), z.string()).nullable(),
  hold_expires_at: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  version: z.number().int().min(1),
});
export type Payment = z.infer<typeof paymentSchema>;
