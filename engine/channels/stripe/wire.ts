// Stripe's request, response and event shapes in Stripe's own field names (API reference,
// https://docs.stripe.com/api), reduced to the fields we send or read. Requests are
// application/x-www-form-urlencoded with bracketed keys (metadata[out_trade_no]=…); answers and
// webhook events are JSON. Amounts are integers in Stripe's unit of the currency (see
// transformers.ts for where that differs from ISO 4217) and currencies are lower-case.
import { z } from 'zod';

/** The API version our requests pin (Stripe-Version header): the one stripe-node 23 is generated from. */
export const STRIPE_API_VERSION = '2026-10-28.endive';

export const STRIPE_PAYMENT_INTENT_STATUSES = [
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'processing',
  'requires_capture',
  'canceled',
  'succeeded',
] as const;
export type StripePaymentIntentStatus = (typeof STRIPE_PAYMENT_INTENT_STATUSES)[number];

export const STRIPE_SESSION_STATUSES = ['open', 'complete', 'expired'] as const;
export type StripeSessionStatus = (typeof STRIPE_SESSION_STATUSES)[number];

export const STRIPE_SESSION_PAYMENT_STATUSES = ['paid', 'unpaid', 'no_payment_required'] as const;
export type StripeSessionPaymentStatus = (typeof STRIPE_SESSION_PAYMENT_STATUSES)[number];

export const STRIPE_REFUND_STATUSES = ['pending', 'requires_action', 'succeeded', 'failed', 'canceled'] as const;
export type StripeRefundStatus = (typeof STRIPE_REFUND_STATUSES)[number];

/** POST /v1/checkout/sessions (mode=payment, one line with inline price_data). */
export type StripeCheckoutSessionCreate = {
  mode: 'payment';
  line_items: Array<{
    quantity: number;
    price_data: { currency: string; unit_amount: number; product_data: { name: string } };
  }>;
  client_reference_id: string;
  metadata: { out_trade_no: string };
  payment_intent_data: { metadata: { out_trade_no: string } };
  success_url: string;
  cancel_url?: string;
  /** Unix seconds, 30 min … 24 h after creation. */
  expires_at: number;
  payment_method_types?: string[];
  payment_method_options?: { wechat_pay?: { client: 'web' | 'mobile' | 'android' | 'ios' } };
};

/** POST /v1/refunds. */
export type StripeRefundCreate = {
  payment_intent: string;
  amount: number;
  metadata: { out_trade_no: string; out_refund_no: string; reason?: string };
};

const metadataSchema = z.record(z.string(), z.string()).nullable().optional();
const idOrObject = <T extends z.ZodType>(obj: T) => z.union([z.string(), obj]).nullable().optional();

export const stripeChargeSchema = z.looseObject({
  id: z.string(),
  object: z.literal('charge'),
  amount: z.number(),
  currency: z.string(),
  created: z.number(),
  metadata: metadataSchema,
  payment_intent: z.union([z.string(), z.looseObject({ id: z.string(), metadata: metadataSchema })]).nullable().optional(),
});
export type StripeCharge = z.infer<typeof stripeChargeSchema>;

export const stripePaymentIntentSchema = z.looseObject({
  id: z.string(),
  object: z.literal('payment_intent'),
  amount: z.number(),
  amount_received: z.number().optional(),
  currency: z.string(),
  status: z.string(),
  created: z.number(),
  metadata: metadataSchema,
  latest_charge: idOrObject(z.looseObject({ id: z.string(), created: z.number() })),
});
export type StripePaymentIntent = z.infer<typeof stripePaymentIntentSchema>;

export const stripeCheckoutSessionSchema = z.looseObject({
  id: z.string(),
  object: z.literal('checkout.session'),
  amount_total: z.number().nullable(),
  currency: z.string().nullable(),
  client_reference_id: z.string().nullable().optional(),
  created: z.number(),
  expires_at: z.number(),
  metadata: metadataSchema,
  mode: z.string(),
  payment_intent: idOrObject(stripePaymentIntentSchema),
  payment_status: z.string(),
  status: z.string().nullable(),
  url: z.string().nullable().optional(),
});
export type StripeCheckoutSession = z.infer<typeof stripeCheckoutSessionSchema>;

export const stripeRefundSchema = z.looseObject({
  id: z.string(),
  object: z.literal('refund'),
  amount: z.number(),
  currency: z.string(),
  created: z.number(),
  status: z.string().nullable(),
  charge: z.union([z.string(), z.looseObject({ id: z.string() })]).nullable().optional(),
  payment_intent: z.union([z.string(), z.looseObject({ id: z.string() })]).nullable().optional(),
  metadata: metadataSchema,
});
export type StripeRefund = z.infer<typeof stripeRefundSchema>;

export const stripeBalanceTransactionSchema = z.looseObject({
  id: z.string(),
  object: z.literal('balance_transaction'),
  amount: z.number(),
  currency: z.string(),
  created: z.number(),
  fee: z.number(),
  net: z.number(),
  type: z.string(),
  reporting_category: z.string().optional(),
  source: z.union([z.string(), z.looseObject({ id: z.string(), object: z.string() })]).nullable(),
});
export type StripeBalanceTransaction = z.infer<typeof stripeBalanceTransactionSchema>;

export const stripeListSchema = <T extends z.ZodType>(item: T) =>
  z.looseObject({ object: z.literal('list'), data: z.array(item), has_more: z.boolean() });
export const stripeSearchResultSchema = <T extends z.ZodType>(item: T) =>
  z.looseObject({ object: z.literal('search_result'), data: z.array(item), has_more: z.boolean(), next_page: z.string().nullable().optional() });

/** Every error answer: {"error": {"type", "code"?, "message"?, …}}. */
export const stripeErrorSchema = z.looseObject({
  error: z.looseObject({
    type: z.string(),
    code: z.string().nullable().optional(),
    decline_code: z.string().nullable().optional(),
    message: z.string().nullable().optional(),
    param: z.string().nullable().optional(),
  }),
});
export type StripeErrorBody = z.infer<typeof stripeErrorSchema>;
export const STRIPE_ERROR_TYPES = ['api_error', 'card_error', 'idempotency_error', 'invalid_request_error'] as const;

/** A webhook event (snapshot payload). */
export const stripeEventSchema = z.looseObject({
  id: z.string().regex(/^evt_[A-Za-z0-9_]+$/),
  object: z.literal('event'),
  api_version: z.string().nullable().optional(),
  created: z.number().int(),
  livemode: z.boolean(),
  type: z.string(),
  data: z.looseObject({ object: z.looseObject({ id: z.string(), object: z.string() }) }),
});
export type StripeEvent = z.infer<typeof stripeEventSchema>;

/** The event types notify.ts maps; a webhook endpoint should enable exactly these. */
export const STRIPE_HANDLED_EVENTS = [
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'checkout.session.async_payment_failed',
  'checkout.session.expired',
  'payment_intent.succeeded',
  'payment_intent.payment_failed',
  'payment_intent.processing',
  'payment_intent.canceled',
  'refund.created',
  'refund.updated',
  'refund.failed',
  'charge.refund.updated',
] as const;
export type StripeHandledEvent = (typeof STRIPE_HANDLED_EVENTS)[number];

/** Header Stripe signs webhooks with: t=<unix s>,v1=<hex HMAC-SHA256(whsec, `${t}.${body}`)>[,v1=…]. */
export const STRIPE_SIGNATURE_HEADER = 'stripe-signature';
