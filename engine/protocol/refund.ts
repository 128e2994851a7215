// The Refund as the public API shows it (API.md: "Refund { id, payment_id, amount, status }").
// Field names are the wire's (snake_case). A wallet (method balance) refund is decided in the same
// Redis call that credits the wallet, so it is `succeeded` at once; `processing` appears only in a
// 202 (the engine did not answer within the ingress deadline). `pending` and `failed` are reserved
// for channel refunds (WeChat Pay, Alipay …), which complete asynchronously.
import { z } from 'zod';
import { amountSchema, currencySchema } from './money.ts';
import { safeIdSchema } from './ids.ts';

export const REFUND_STATUSES = ['processing', 'pending', 'succeeded', 'failed'] as const;
export const refundStatusSchema = z.enum(REFUND_STATUSES);

/** Free text the merchant gives for the refund (shown back, never interpreted). */
export const REFUND_REASON_CHARS_MAX = 200;
export const refundReasonSchema = z.string().min(1).max(REFUND_REASON_CHARS_MAX);

export const refundSchema = z.object({
  id: safeIdSchema,
  payment_id: safeIdSchema,
  amount: amountSchema,
  currency: currencySchema,
  status: refundStatusSchema,
  reason: z.string().nullable(),
  created_at: z.string(),
});
export type Refund = z.infer<typeof refundSchema>;
