// Alipay openapi (gateway.do, OpenAPI 2.0) in Alipay's own field names. Amounts are yuan as
// decimal strings ("19.99"); times are "yyyy-MM-dd HH:mm:ss" in Asia/Shanghai.

/** The common request parameters every gateway call carries (signed together with biz_content). */
export type AlipayCommonParams = {
  app_id: string;
  method: AlipayMethod;
  format: 'JSON';
  charset: 'utf-8';
  sign_type: 'RSA2';
  /** "yyyy-MM-dd HH:mm:ss", Asia/Shanghai. */
  timestamp: string;
  version: '1.0';
  notify_url?: string;
  return_url?: string;
  /** JSON text of the method's business parameters. */
  biz_content: string;
  sign?: string;
};

export const ALIPAY_METHODS = [
  'alipay.trade.precreate',
  'alipay.trade.wap.pay',
  'alipay.trade.query',
  'alipay.trade.close',
  'alipay.trade.refund',
  'alipay.trade.fastpay.refund.query',
  'alipay.data.dataservice.bill.downloadurl.query',
] as const;
export type AlipayMethod = (typeof ALIPAY_METHODS)[number];

/** alipay.trade.precreate (当面付 QR) and alipay.trade.wap.pay (手机网站支付) biz_content. */
export type AlipayTradeCreateBiz = {
  out_trade_no: string;
  total_amount: string;
  subject: string;
  /** Absolute expiry, "yyyy-MM-dd HH:mm:ss" Asia/Shanghai: the trade cannot be paid after it. */
  time_expire: string;
  /** wap.pay only. */
  product_code?: 'QUICK_WAP_WAY';
  quit_url?: string;
};

export type AlipayTradeQueryBiz = { out_trade_no: string };
export type AlipayTradeCloseBiz = { out_trade_no: string };
export type AlipayTradeRefundBiz = { out_trade_no: string; refund_amount: string; out_request_no: string; refund_reason?: string };
export type AlipayRefundQueryBiz = { out_trade_no: string; out_request_no: string };
export type AlipayBillQueryBiz = { bill_type: 'trade'; bill_date: string };

/** Every response node carries these; code "10000" is success. */
export type AlipayResponseBase = { code: string; msg: string; sub_code?: string; sub_msg?: string };

export type AlipayPrecreateResponse = AlipayResponseBase & { out_trade_no?: string; qr_code?: string };

export const ALIPAY_TRADE_STATUSES = ['WAIT_BUYER_PAY', 'TRADE_CLOSED', 'TRADE_SUCCESS', 'TRADE_FINISHED'] as const;
export type AlipayTradeStatus = (typeof ALIPAY_TRADE_STATUSES)[number];

export type AlipayQueryResponse = AlipayResponseBase & {
  trade_no?: string;
  out_trade_no?: string;
  trade_status?: AlipayTradeStatus;
  total_amount?: string;
  receipt_amount?: string;
  buyer_pay_amount?: string;
  /** When the buyer paid, "yyyy-MM-dd HH:mm:ss". */
  send_pay_date?: string;
};

export type AlipayCloseResponse = AlipayResponseBase & { trade_no?: string; out_trade_no?: string };

export type AlipayRefundResponse = AlipayResponseBase & {
  trade_no?: string;
  out_trade_no?: string;
  /** "Y" when this call moved money; "N" when it did not (e.g. a repeated out_request_no). */
  fund_change?: 'Y' | 'N';
  /** Total refunded on the trade so far, yuan. */
  refund_fee?: string;
  gmt_refund_pay?: string;
};

export type AlipayRefundQueryResponse = AlipayResponseBase & {
  out_trade_no?: string;
  out_request_no?: string;
  refund_amount?: string;
  /** Present ("REFUND_SUCCESS") only once the refund succeeded. */
  refund_status?: 'REFUND_SUCCESS';
};

export type AlipayBillResponse = AlipayResponseBase & { bill_download_url?: string };

/** The asynchronous notification (trade_status_sync), form-encoded. Refunds carry out_biz_no and refund_fee. */
export type AlipayNotify = {
  notify_time: string;
  notify_type: 'trade_status_sync';
  notify_id: string;
  app_id: string;
  charset: string;
  version: string;
  sign_type: 'RSA2';
  sign: string;
  trade_no: string;
  out_trade_no: string;
  trade_status: AlipayTradeStatus;
  total_amount: string;
  receipt_amount?: string;
  buyer_pay_amount?: string;
  subject?: string;
  gmt_create?: string;
  gmt_payment?: string;
  gmt_refund?: string;
  gmt_close?: string;
  out_biz_no?: string;
  refund_fee?: string;
  seller_id?: string;
  buyer_id?: string;
};

/** Columns of the trade bill (业务明细) CSV, in Alipay's order. */
export const ALIPAY_BILL_COLUMNS = [
  '支付宝交易号',
  '商户订单号',
  '业务类型',
  '商品名称',
  '创建时间',
  '完成时间',
  '门店编号',
  '门店名称',
  '操作员',
  '终端号',
  '对方账户',
  '订单金额（元）',
  '商家实收（元）',
  '支付宝红包（元）',
  '集分宝（元）',
  '支付宝优惠（元）',
  '商家优惠（元）',
  '券核销金额（元）',
  '券名称',
  '商家红包消费金额（元）',
  '卡消费金额（元）',
  '退款批次号/请求号',
  '服务费（元）',
  '分润（元）',
  '备注',
] as const;
