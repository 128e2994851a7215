// The contract every payment channel adapter implements (engine/channels/<name>/adapter.ts).
// Pure mapping lives in transformers.ts, the channel's wire shapes in wire.ts (the channel's own
// field names), callback verification in notify.ts, and a local server speaking the channel's real
// signing scheme in sandbox.ts. The engine talks to channels only through this interface, so
// routing, failover, 补单 and reconciliation are written once.
//
// Identifiers: the channel's out_trade_no is OUR payment id (unique across all merchants on our
// channel account, and deterministic, so a retried create maps to the same channel order); the
// channel's out_refund_no is our refund id.

export const CHANNELS = ['wechat_pay', 'alipay', 'unionpay', 'stripe', 'paypal'] as const;
export type ChannelName = (typeof CHANNELS)[number];

export type Scene = 'pc' | 'app' | 'mini_program' | 'h5';

export type NextAction = { type: 'qr_code'; code_url: string } | { type: 'redirect'; url: string };

/** What the engine asks a channel to open. Amount is integer minor units of `currency`. */
export type ChannelOrderRequest = {
  out_trade_no: string;
  amount: number;
  currency: string;
  subject: string;
  scene: Scene;
  /** The buyer's IP (WeChat Pay payer_client_ip, UnionPay customerIp …); 127.0.0.1 when unknown. */
  client_ip: string;
  /** Our callback URL for this channel: <public base>/v1/notify/<channel>. */
  notify_url: string;
  /** The order closes itself at the channel after this (WeChat time_expire, Alipay time_expire …). */
  expires_at_ms: number;
  /** Where a redirect flow returns the buyer (PayPal/Stripe/UnionPay/Alipay page pay). */
  return_url?: string;
};

export type ChannelOrder = {
  /** The channel's id of the order (prepay_id, trade_no, tn, PaymentIntent id, PayPal order id) when it gives one. */
  channel_order_id: string | null;
  next_action: NextAction;
};

/** A channel order's state, mapped from the channel's own statuses by an exhaustive switch. */
export type ChannelOrderStatus = 'pending' | 'succeeded' | 'failed' | 'closed';

export type ChannelOrderState = {
  out_trade_no: string;
  status: ChannelOrderStatus;
  /** What the channel says was (or is to be) paid, in minor units of `currency`. */
  amount: number;
  currency: string;
  /** The channel's transaction id once paid (transaction_id, trade_no, queryId, charge id, capture id). */
  channel_trade_no: string | null;
  paid_at_ms: number | null;
};

export type ChannelRefundRequest = {
  out_trade_no: string;
  out_refund_no: string;
  /** Refund amount and the original order amount, minor units of `currency`. */
  amount: number;
  total_amount: number;
  currency: string;
  reason?: string;
  notify_url: string;
  /** What createOrder returned for the payment, for channels that need it to find the paid order (PayPal, UnionPay). */
  channel_order_id?: string | null;
};

export type ChannelRefundStatus = 'pending' | 'succeeded' | 'failed';
export type ChannelRefundState = { out_refund_no: string; status: ChannelRefundStatus; channel_refund_id: string | null; amount: number };

/** A verified callback, reduced to what the engine needs. */
export type ChannelNotification =
  | {
      kind: 'payment';
      /** The channel's id of this notification (WeChat id, Alipay notify_id, Stripe event id …): dedup key. */
      notification_id: string;
      out_trade_no: string;
      status: ChannelOrderStatus;
      amount: number;
      currency: string;
      channel_trade_no: string | null;
      paid_at_ms: number | null;
    }
  | {
      kind: 'refund';
      notification_id: string;
      out_trade_no: string;
      out_refund_no: string;
      status: ChannelRefundStatus;
      amount: number;
      currency: string;
    };

/** The HTTP answer the channel expects to a callback (WeChat v3 JSON, Alipay plain `success` …). */
export type NotifyAnswer = { status: number; headers: Record<string, string>; body: string };

/** One line of the channel's daily bill (对账单), for reconciliation. */
export type BillLine = {
  out_trade_no: string;
  channel_trade_no: string;
  /** 'payment' lines carry the paid amount; 'refund' lines the refunded amount (positive). */
  kind: 'payment' | 'refund';
  out_refund_no: string | null;
  amount: number;
  currency: string;
  /** The channel's fee for this line, minor units (the channel's own rounding). */
  fee: number;
  at_ms: number;
};

/** Request headers as node gives them (lower-case names). */
export type RawHeaders = Record<string, string | string[] | undefined>;

export interface ChannelAdapter {
  readonly name: ChannelName;
  createOrder(req: ChannelOrderRequest): Promise<ChannelOrder>;
  /**
   * channelOrderId: what createOrder returned (the engine keeps it on the payment), for channels
   * that cannot find an order by our number alone (PayPal); the others ignore it.
   */
  queryOrder(outTradeNo: string, channelOrderId?: string | null): Promise<ChannelOrderState>;
  /** Closes an unpaid order; a closed or unknown order is fine; a paid one throws ChannelError('order_paid'). */
  closeOrder(outTradeNo: string, channelOrderId?: string | null): Promise<void>;
  refund(req: ChannelRefundRequest): Promise<ChannelRefundState>;
  /**
   * Verifies a callback over its raw bytes and headers (signature, timestamp window, decryption)
   * and maps it. Throws ChannelNotifyError for anything that must be rejected. Pure of side
   * effects: deduplication and the cross-check against our order are the engine's.
   */
  verifyNotify(raw: Buffer, headers: RawHeaders, nowMs: number): Promise<ChannelNotification>;
  /** The channel's expected answer to a callback we accepted (ok) or rejected. */
  notifyAnswer(ok: boolean): NotifyAnswer;
  /** The bill of one day (YYYY-MM-DD in the channel's time zone, Asia/Shanghai for CN rails). */
  downloadBill(day: string): Promise<BillLine[]>;
}

/** RSA work goes through this so the engine can run it in the piscina pool (engine/workers). */
export interface ChannelCrypto {
  /** base64 SHA256withRSA signature of `data` (UTF-8) with a PKCS#8/PKCS#1 PEM private key. */
  rsaSign(privateKeyPem: string, data: string): Promise<string>;
  rsaVerify(publicKeyPem: string, data: string, signatureB64: string): Promise<boolean>;
}

export type ChannelErrorCode =
  | 'timeout' // no answer within the request timeout
  | 'unavailable' // connection refused/reset, 5xx, the channel's SYSTEM_ERROR
  | 'rejected' // the channel refused the request (4xx, business error): retrying will not help
  | 'order_paid' // close/cancel of an order that is already paid
  | 'not_found' // query of an order the channel does not know
  | 'bad_response'; // an answer we cannot parse or whose signature does not verify

export class ChannelError extends Error {
  readonly code: ChannelErrorCode;
  readonly channel: ChannelName;
  /** The channel's own error code (e.g. ORDERPAID, ACQ.TRADE_HAS_SUCCESS), for logs; never secret. */
  readonly channelCode: string | null;

  constructor(channel: ChannelName, code: ChannelErrorCode, message: string, opts: { cause?: unknown; channelCode?: string | null } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ChannelError';
    this.channel = channel;
    this.code = code;
    this.channelCode = opts.channelCode ?? null;
  }

  /** Timeouts and outages count against the circuit breaker and allow failover; rejections do not. */
  get retryable(): boolean {
    return this.code === 'timeout' || this.code === 'unavailable' || this.code === 'bad_response';
  }
}
export const isChannelError = (e: unknown): e is ChannelError => e instanceof ChannelError;

export type NotifyRejection = 'invalid_signature' | 'timestamp_out_of_window' | 'malformed' | 'unsupported_event';

export class ChannelNotifyError extends Error {
  readonly reason: NotifyRejection;
  readonly channel: ChannelName;

  constructor(channel: ChannelName, reason: NotifyRejection, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ChannelNotifyError';
    this.channel = channel;
    this.reason = reason;
  }
}
export const isChannelNotifyError = (e: unknown): e is ChannelNotifyError => e instanceof ChannelNotifyError;

/** Limits shared by the adapters. */
export const CHANNEL_REQUEST_TIMEOUT_MS_DEFAULT = 3_000;
/** Callbacks older or newer than this (by the channel's own timestamp) are rejected. */
export const NOTIFY_WINDOW_MS = 300_000;
export const NOTIFY_BODY_BYTES_MAX = 64 * 1024;
