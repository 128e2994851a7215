// WeChat Pay API v3 on the wire, in WeChat's own field names (pay.weixin.qq.com/doc/v3/merchant).
// Amounts are integer fen (amount.total), currency "CNY"; times are RFC 3339 with +08:00.

export const WX_API_BASE_DEFAULT = 'https://api.mch.weixin.qq.com';

export const WX_PATH_NATIVE = '/v3/pay/transactions/native';
export const WX_PATH_H5 = '/v3/pay/transactions/h5';
export const WX_PATH_REFUNDS = '/v3/refund/domestic/refunds';
export const WX_PATH_TRADEBILL = '/v3/bill/tradebill';
export const WX_PATH_BILLDOWNLOAD = '/v3/billdownload/file';
export const wxPathQuery = (outTradeNo: string, mchid: string) =>
  `/v3/pay/transactions/out-trade-no/${encodeURIComponent(outTradeNo)}?mchid=${encodeURIComponent(mchid)}`;
export const wxPathClose = (outTradeNo: string) => `/v3/pay/transactions/out-trade-no/${encodeURIComponent(outTradeNo)}/close`;

/** The scheme word of the Authorization header and of Wechatpay-Signature-Type. */
export const WX_AUTH_SCHEMA = 'WECHATPAY2-SHA256-RSA2048';
/** Signature probes: WeChat sends callbacks whose signature starts with this to test that merchants verify. */
export const WX_SIGNTEST_PREFIX = 'WECHATPAY/SIGNTEST/';

/** Response and callback headers (node gives them lower-cased). */
export const WX_H_TIMESTAMP = 'wechatpay-timestamp';
export const WX_H_NONCE = 'wechatpay-nonce';
export const WX_H_SIGNATURE = 'wechatpay-signature';
export const WX_H_SERIAL = 'wechatpay-serial';

export type WxAmountRequest = { total: number; currency: 'CNY' };

/** POST /v3/pay/transactions/native */
export type WxNativeRequest = {
  appid: string;
  mchid: string;
  description: string;
  out_trade_no: string;
  time_expire: string;
  attach?: string;
  notify_url: string;
  amount: WxAmountRequest;
  scene_info?: { payer_client_ip: string };
};
export type WxNativeResponse = { code_url: string };

/** POST /v3/pay/transactions/h5 */
export type WxH5Request = Omit<WxNativeRequest, 'scene_info'> & {
  scene_info: { payer_client_ip: string; h5_info: { type: 'Wap' | 'iOS' | 'Android' } };
};
export type WxH5Response = { h5_url: string };

/** trade_state, the full enum of the order query and the payment callback. */
export const WX_TRADE_STATES = ['SUCCESS', 'REFUND', 'NOTPAY', 'CLOSED', 'REVOKED', 'USERPAYING', 'PAYERROR'] as const;
export type WxTradeState = (typeof WX_TRADE_STATES)[number];

/** GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid= and the decrypted TRANSACTION.* resource. */
export type WxTransaction = {
  appid: string;
  mchid: string;
  out_trade_no: string;
  transaction_id?: string;
  trade_type?: 'JSAPI' | 'NATIVE' | 'APP' | 'MICROPAY' | 'MWEB' | 'FACEPAY';
  trade_state: WxTradeState;
  trade_state_desc: string;
  bank_type?: string;
  attach?: string;
  success_time?: string;
  payer?: { openid: string };
  amount?: { total: number; payer_total?: number; currency: string; payer_currency?: string };
};

/** POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close → 204 */
export type WxCloseRequest = { mchid: string };

/** POST /v3/refund/domestic/refunds */
export type WxRefundRequest = {
  out_trade_no: string;
  out_refund_no: string;
  reason?: string;
  notify_url?: string;
  amount: { refund: number; total: number; currency: 'CNY' };
};

/** status of a refund (the answer and the refund query); refund_status of the REFUND.* callback. */
export const WX_REFUND_STATUSES = ['SUCCESS', 'CLOSED', 'PROCESSING', 'ABNORMAL'] as const;
export type WxRefundStatus = (typeof WX_REFUND_STATUSES)[number];

export type WxRefund = {
  refund_id: string;
  out_refund_no: string;
  transaction_id: string;
  out_trade_no: string;
  channel: 'ORIGINAL' | 'BALANCE' | 'OTHER_BALANCE' | 'OTHER_BANKCARD';
  user_received_account: string;
  success_time?: string;
  create_time: string;
  status: WxRefundStatus;
  funds_account?: string;
  amount: { total: number; refund: number; payer_total: number; payer_refund: number; settlement_refund: number; settlement_total: number; discount_refund: number; currency: string };
};

/** The decrypted REFUND.* resource. */
export type WxRefundResource = {
  mchid: string;
  out_trade_no: string;
  transaction_id: string;
  out_refund_no: string;
  refund_id: string;
  refund_status: WxRefundStatus;
  success_time?: string;
  user_received_account: string;
  amount: { total: number; refund: number; payer_total: number; payer_refund: number };
};

/** The callback body (回调通知): the resource is AEAD_AES_256_GCM-encrypted with the APIv3 key. */
export type WxNotifyEnvelope = {
  id: string;
  create_time: string;
  event_type: string;
  resource_type: 'encrypt-resource';
  summary: string;
  resource: {
    original_type: 'transaction' | 'refund';
    algorithm: 'AEAD_AES_256_GCM';
    ciphertext: string;
    associated_data?: string;
    nonce: string;
  };
};

export const WX_EVENT_TRANSACTION_SUCCESS = 'TRANSACTION.SUCCESS';
export const WX_REFUND_EVENTS = ['REFUND.SUCCESS', 'REFUND.ABNORMAL', 'REFUND.CLOSED'] as const;

/** Every error answer (4xx/5xx). */
export type WxError = { code: string; message: string; detail?: unknown };

/** GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL */
export type WxTradeBillResponse = { hash_type: 'SHA1'; hash_value: string; download_url: string };

/**
 * The trade bill (交易账单, bill_type=ALL): a UTF-8 text with a BOM, a header line, one line per
 * payment or refund with every field prefixed by a backtick, then a summary caption and line.
 */
export const WX_BILL_HEADER = [
  '交易时间', '公众账号ID', '商户号', '特约商户号', '设备号', '微信订单号', '商户订单号', '用户标识', '交易类型', '交易状态',
  '付款银行', '货币种类', '应结订单金额', '代金券金额', '微信退款单号', '商户退款单号', '退款金额', '充值券退款金额', '退款类型', '退款状态',
  '商品名称', '商户数据包', '手续费', '费率', '订单金额', '申请退款金额', '费率备注',
] as const;
export const WX_BILL_SUMMARY_HEADER = ['总交易单数', '应结订单总金额', '退款总金额', '充值券退款总金额', '手续费总金额', '订单总金额', '申请退款总金额'] as const;

/** The callback answer WeChat expects. */
export type WxNotifyAnswerBody = { code: 'FAIL'; message: string };
