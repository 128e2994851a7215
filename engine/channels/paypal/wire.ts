// PayPal REST (OAuth2 client credentials, Orders v2, Payments v2, Webhooks, Transaction Search)
// in PayPal's own field names. Amounts are decimal strings with the currency's PayPal decimals.

export type PaypalMoney = { currency_code: string; value: string };
export type PaypalLink = { href: string; rel: string; method?: string };

export type PaypalTokenResponse = { scope?: string; access_token: string; token_type: 'Bearer'; app_id?: string; expires_in: number; nonce?: string };

export type PaypalExperienceContext = {
  return_url?: string;
  cancel_url?: string;
  user_action?: 'PAY_NOW' | 'CONTINUE';
  shipping_preference?: 'NO_SHIPPING' | 'GET_FROM_FILE' | 'SET_PROVIDED_ADDRESS';
  brand_name?: string;
};

export type PaypalPurchaseUnitRequest = {
  reference_id: string;
  /** Ours: out_trade_no, replaced by `closed:<out_trade_no>` when we close the order (see adapter.ts). */
  custom_id: string;
  /** Ours: out_trade_no. Unique per PayPal account, so a second order can never be captured for it. */
  invoice_id: string;
  description?: string;
  amount: PaypalMoney;
};

export type PaypalCreateOrderRequest = {
  intent: 'CAPTURE';
  purchase_units: PaypalPurchaseUnitRequest[];
  payment_source?: { paypal: { experience_context: PaypalExperienceContext } };
};

export const PAYPAL_ORDER_STATUSES = ['CREATED', 'SAVED', 'APPROVED', 'VOIDED', 'COMPLETED', 'PAYER_ACTION_REQUIRED'] as const;
export type PaypalOrderStatus = (typeof PAYPAL_ORDER_STATUSES)[number];

export const PAYPAL_CAPTURE_STATUSES = ['COMPLETED', 'DECLINED', 'PARTIALLY_REFUNDED', 'PENDING', 'REFUNDED', 'FAILED'] as const;
export type PaypalCaptureStatus = (typeof PAYPAL_CAPTURE_STATUSES)[number];

export const PAYPAL_REFUND_STATUSES = ['CANCELLED', 'FAILED', 'PENDING', 'COMPLETED'] as const;
export type PaypalRefundStatus = (typeof PAYPAL_REFUND_STATUSES)[number];

export type PaypalCapture = {
  id: string;
  status: PaypalCaptureStatus;
  amount: PaypalMoney;
  final_capture?: boolean;
  invoice_id?: string;
  custom_id?: string;
  seller_receivable_breakdown?: { gross_amount: PaypalMoney; paypal_fee?: PaypalMoney; net_amount?: PaypalMoney };
  supplementary_data?: { related_ids?: { order_id?: string } };
  create_time?: string;
  update_time?: string;
  links?: PaypalLink[];
};

export type PaypalRefund = {
  id: string;
  status: PaypalRefundStatus;
  amount?: PaypalMoney;
  invoice_id?: string;
  custom_id?: string;
  note_to_payer?: string;
  create_time?: string;
  update_time?: string;
  links?: PaypalLink[];
};

export type PaypalPurchaseUnit = {
  reference_id: string;
  custom_id?: string;
  invoice_id?: string;
  description?: string;
  amount: PaypalMoney;
  payments?: { captures?: PaypalCapture[]; refunds?: PaypalRefund[] };
};

export type PaypalOrder = {
  id: string;
  intent?: 'CAPTURE' | 'AUTHORIZE';
  status: PaypalOrderStatus;
  purchase_units?: PaypalPurchaseUnit[];
  payment_source?: Record<string, unknown>;
  payer?: Record<string, unknown>;
  create_time?: string;
  update_time?: string;
  links?: PaypalLink[];
};

export type PaypalPatchOp = { op: 'replace' | 'add' | 'remove'; path: string; value?: unknown };

export type PaypalRefundRequest = { amount: PaypalMoney; invoice_id: string; custom_id?: string; note_to_payer?: string };

/** PayPal's error body (4xx/5xx); `details[].issue` is the stable code, e.g. ORDER_ALREADY_CAPTURED. */
export type PaypalErrorBody = { name: string; message?: string; debug_id?: string; details?: Array<{ issue: string; description?: string; field?: string }> };

/** Webhook event types this adapter maps; any other is refused as unsupported_event. */
export const PAYPAL_EVENT_TYPES = [
  'CHECKOUT.ORDER.APPROVED',
  'CHECKOUT.ORDER.COMPLETED',
  'PAYMENT.CAPTURE.COMPLETED',
  'PAYMENT.CAPTURE.PENDING',
  'PAYMENT.CAPTURE.DENIED',
  'PAYMENT.CAPTURE.REFUNDED',
] as const;
export type PaypalEventType = (typeof PAYPAL_EVENT_TYPES)[number];

export type PaypalWebhookEvent = {
  id: string;
  event_version?: string;
  create_time: string;
  resource_type: string;
  resource_version?: string;
  event_type: string;
  summary?: string;
  resource: Record<string, unknown>;
  links?: PaypalLink[];
};

/** The webhook's transmission headers (lower-case, as node gives them). */
export const PAYPAL_WEBHOOK_HEADERS = ['paypal-transmission-id', 'paypal-transmission-time', 'paypal-transmission-sig', 'paypal-cert-url', 'paypal-auth-algo'] as const;

/** POST /v1/notifications/webhooks: a listener URL and the events it wants. */
export type PaypalWebhookRegistration = { id?: string; url: string; event_types: Array<{ name: string }> };

/** GET /v1/reporting/transactions: one transaction of the Transaction Search API. */
export type PaypalTransactionInfo = {
  transaction_id: string;
  /** T0006: a PayPal Checkout payment; T1107: a refund the merchant made. */
  transaction_event_code: string;
  transaction_initiation_date: string;
  transaction_updated_date?: string;
  transaction_amount: PaypalMoney;
  fee_amount?: PaypalMoney;
  transaction_status: 'S' | 'P' | 'V' | 'F' | 'D';
  invoice_id?: string;
  custom_field?: string;
  /** A refund's original transaction (the capture). */
  paypal_reference_id?: string;
  paypal_reference_id_type?: string;
};
export type PaypalTransactionSearchResponse = {
  transaction_details: Array<{ transaction_info: PaypalTransactionInfo }>;
  account_number?: string;
  start_date: string;
  end_date: string;
  page: number;
  total_items: number;
  total_pages: number;
};
