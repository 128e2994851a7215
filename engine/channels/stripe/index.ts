// The Stripe channel's one public entry: Checkout Sessions (card, Alipay, WeChat Pay through
// Stripe), PaymentIntent search, refunds, balance-transaction bills and signed webhooks.
export { createStripeAdapter, parseStripeConfig, registerStripeWebhookEndpoint, stripeConfigSchema, type StripeConfig } from './adapter.ts';
export { parseSignatureHeader, stripeNotifyAnswer, stripeSignature, stripeSignatureHeader, verifyStripeEvent, verifyStripeNotify } from './notify.ts';
export { startStripeSandbox, STRIPE_WEBHOOK_EVENTS } from './sandbox.ts';
export { fromStripeAmount, toStripeAmount } from './transformers.ts';
export { STRIPE_API_VERSION, STRIPE_HANDLED_EVENTS } from './wire.ts';
