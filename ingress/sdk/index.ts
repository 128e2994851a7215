// peakpay's TypeScript client for storefronts: the one public entry of ingress/sdk/.
// Self-contained at run time (node:crypto and the global fetch only, no engine code), so the
// folder can be copied into another project as it is.
//
//   const pp = new PeakpayClient({ baseUrl, merchantId, secret });
//   const payment = await pp.payments.create({ out_trade_no: 'T1', amount: 1999, currency: 'CNY', method: 'balance', account_id: 'acc_42', scene: 'pc' });
export {
  ATTEMPT_TIMEOUT_MS_DEFAULT, PeakpayClient, POLL_INTERVAL_MS_MAX, POLL_INTERVAL_MS_MIN, SDK_VERSION, WAIT_TIMEOUT_MS_DEFAULT,
  type CallOptions, type PeakpayClientOptions, type PeakpayResponse, type RequestOptions, type WaitOptions,
} from './client.ts';
export { CLIENT_ERROR_CODES, isPeakpayApiError, PeakpayApiError, type FieldError } from './errors.ts';
export { backoffMs, decide, parseRetryAfterMs, RETRY_POLICY_DEFAULT, type RetryPolicy } from './retry.ts';
export { AUTH_SCHEME, authorizationHeader, newNonce, signature, type SignInput } from './signing.ts';
export { signWebhook, verifyWebhook, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TOLERANCE_S_DEFAULT, type WebhookVerifyOptions } from './webhooks.ts';
export type * from './types.ts';
