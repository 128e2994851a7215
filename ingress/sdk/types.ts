// Wire types of API.md, with the wire's own snake_case names. Written out here rather than
// imported from engine/protocol so the SDK can be copied into a storefront without zod or the
// engine; test/unit/sdk.test.ts checks at compile time that they equal the server's schemas.

/** ISO 4217 codes peakpay settles; amounts are in each one's minor unit (fen, cent; yen and won have none). */
export type Currency = 'CNY' | 'HKD' | 'USD' | 'EUR' | 'GBP' | 'SGD' | 'TWD' | 'MOP' | 'JPY' | 'KRW';
export type PaymentStatus = 'processing' | 'requires_action' | 'pending' | 'authorized' | 'succeeded' | 'failed' | 'canceled' | 'expired';
export type PaymentMethod = 'balance' | 'wechat_pay' | 'alipay' | 'unionpay' | 'stripe' | 'paypal' | 'auto';
export type Scene = 'pc' | 'app' | 'mini_program' | 'h5';

export type Buyer = { user_id?: string | undefined; device_id?: string | undefined; ip?: string | undefined };

export type NextAction = { type: 'qr_code'; code_url: string } | { type: 'redirect'; url: string } | { type: 'verify' };

export type Payment = {
  id: string;
  merchant_id: string;
  out_trade_no: string;
  /** Integer minor units (fen for CNY); never a float. */
  amount: number;
  currency: Currency;
  amount_captured: number;
  amount_refunded: number;
  method: PaymentMethod;
  channel: string | null;
  scene: Scene;
  subject: string | null;
  account_id: string | null;
  status: PaymentStatus;
  failure: { code: string; message: string } | null;
  next_action: NextAction | null;
  buyer: Buyer | null;
  metadata: Record<string, string> | null;
  hold_expires_at: string | null;
  created_at: string;
  updated_at: string;
  version: number;
};

export type CreatePaymentParams = {
  /** 1–64 of [A-Za-z0-9_-], unique per merchant for ever. */
  out_trade_no: string;
  amount: number;
  currency: Currency;
  method: PaymentMethod;
  /** Required for method `balance`: the wallet to hold the amount on. */
  account_id?: string | undefined;
  capture?: 'manual' | 'automatic' | undefined;
  hold_ttl_s?: number | undefined;
  scene: Scene;
  subject?: string | undefined;
  buyer?: Buyer | undefined;
  notify_url?: string | undefined;
  metadata?: Record<string, string> | undefined;
};

/** A wallet top-up through a channel (not `balance`): the wallet is credited once the channel reports it paid. */
export type CreateTopupParams = {
  out_trade_no: string;
  account_id: string;
  amount: number;
  currency: Currency;
  method: Exclude<PaymentMethod, 'balance'>;
  scene: Scene;
  buyer?: Buyer | undefined;
  subject?: string | undefined;
  /** How long the buyer has to pay at the channel. */
  hold_ttl_s?: number | undefined;
  notify_url?: string | undefined;
  metadata?: Record<string, string> | undefined;
};

export type CapturePaymentParams = { amount?: number | undefined };

export type RefundStatus = 'processing' | 'pending' | 'succeeded' | 'failed';
export type Refund = {
  id: string;
  payment_id: string;
  amount: number;
  currency: Currency;
  status: RefundStatus;
  reason: string | null;
  created_at: string;
};
export type CreateRefundParams = { amount: number; reason?: string | undefined };

export type Account = { account_id: string; currency: Currency; available: number; held: number };
export type CreateAccountParams = { account_id: string; currency: Currency };
