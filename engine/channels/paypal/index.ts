// PayPal (Orders v2, cross-border): the adapter, its config, webhook verification and the sandbox.
export {
  createPaypalAdapter,
  memoryOrderIdStore,
  PAYPAL_CERT_ORIGINS_LIVE,
  type PaypalAdapter,
  type PaypalConfig,
  type PaypalDeps,
  type PaypalOrderIdStore,
  type PaypalRefundRequest,
} from './adapter.ts';
export { paypalNotifyAnswer, verifyPaypalWebhook } from './notify.ts';
export { startPaypalSandbox, paypalSandboxFee, type PaypalSandbox } from './sandbox.ts';
export { fromPaypalValue, toPaypalValue, paypalDecimals, mapOrderStatus, mapCaptureStatus, mapRefundStatus } from './transformers.ts';
export type * from './wire.ts';
