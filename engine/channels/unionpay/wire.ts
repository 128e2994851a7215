// UnionPay online gateway (银联全渠道 / 网关支付 and 云闪付 QR), interface version 5.1.0, on the wire in
// UnionPay's own field names. Requests are form-encoded key=value pairs; synchronous answers are
// raw key=value&… text (not URL-encoded); back notifications (backUrl) are form posts.

export const UP_VERSION = '5.1.0';
export const UP_ENCODING = 'UTF-8';
/** signMethod 01: RSA with a certificate (SHA-256 in 5.1.0). */
export const UP_SIGN_METHOD_RSA = '01';
/** accessType 0: a merchant connected directly (商户直连接入). */
export const UP_ACCESS_TYPE_MERCHANT = '0';
/** currencyCode 156: CNY (ISO 4217 numeric). */
export const UP_CURRENCY_CNY = '156';

export const UP_GATEWAY_DEFAULT = 'https://gateway.95516.com';
export const UP_GATEWAY_TEST = 'https://gateway.test.95516.com';
export const UP_FILE_DOWNLOAD_DEFAULT = 'https://filedownload.95516.com/';
export const UP_PATH_FRONT = '/gateway/api/frontTransReq.do';
export const UP_PATH_BACK = '/gateway/api/backTransReq.do';
export const UP_PATH_QUERY = '/gateway/api/queryTrans.do';

export const UP_TXN_QUERY = '00';
export const UP_TXN_CONSUME = '01';
export const UP_TXN_REFUND = '04';
export const UP_TXN_CANCEL = '31';
export const UP_TXN_FILE = '76';

/** bizType: 000201 B2C gateway payment (网关支付); 000000 QR payments, queries and file transfer. */
export const UP_BIZ_GATEWAY = '000201';
export const UP_BIZ_QR = '000000';
/** channelType: 07 PC/web, 08 mobile. */
export const UP_CHANNEL_PC = '07';
export const UP_CHANNEL_MOBILE = '08';
/** txnSubType of a consume: 01 a gateway consume, 07 apply for a QR code (申请二维码). */
export const UP_SUB_CONSUME = '01';
export const UP_SUB_QR_APPLY = '07';

/** Fields every request carries. */
export type UpCommonRequest = {
  version: typeof UP_VERSION;
  encoding: typeof UP_ENCODING;
  signMethod: typeof UP_SIGN_METHOD_RSA;
  certId: string;
  signature?: string;
  txnType: string;
  txnSubType: string;
  bizType: string;
  accessType: typeof UP_ACCESS_TYPE_MERCHANT;
  merId: string;
  txnTime: string;
};

/** Consume (txnType 01): a gateway form (txnSubType 01, bizType 000201, frontTransReq.do) or a QR apply (txnSubType 07, bizType 000000, backTransReq.do). */
export type UpConsumeRequest = UpCommonRequest & {
  channelType: string;
  orderId: string;
  txnAmt: string;
  currencyCode: typeof UP_CURRENCY_CNY;
  backUrl: string;
  frontUrl?: string;
  payTimeout: string;
  orderDesc?: string;
  customerIp?: string;
  reqReserved?: string;
};

/** Refund (退货, txnType 04) or cancel (消费撤销, txnType 31) of a paid consume, by its queryId. */
export type UpRefundRequest = UpCommonRequest & {
  channelType: string;
  orderId: string;
  origQryId: string;
  txnAmt: string;
  backUrl: string;
  reqReserved?: string;
};

/** Query (txnType 00) by orderId + txnTime of the queried transaction. */
export type UpQueryRequest = UpCommonRequest & { orderId: string };

/** File transfer (txnType 76): the day's reconciliation files, settleDate MMDD, fileType 00. */
export type UpFileRequest = UpCommonRequest & { settleDate: string; fileType: '00' };

/** Answers and notifications are flat string maps; these are the fields we read. */
export type UpAnswer = Record<string, string> & {
  respCode?: string;
  respMsg?: string;
  signature?: string;
  signPubKeyCert?: string;
};

/**
 * Response codes (应答码) as UnionPay publishes them (平台接入接口规范 附录). The SDK's rule: 00 is
 * success; 03, 04, 05 mean "not known yet, query again"; every other code is final.
 */
export const UP_RESP_CODES = {
  '00': '成功',
  A6: '有缺陷的成功',
  '01': '交易失败',
  '02': '系统未开放或暂时关闭，请稍后再试',
  '03': '交易通讯超时，请发起查询交易',
  '04': '交易状态未明，请查询对账结果',
  '05': '交易已受理，请稍后查询交易结果',
  '06': '系统繁忙，请稍后再试',
  '10': '报文格式错误',
  '11': '验证签名失败',
  '12': '重复交易',
  '13': '报文交易要素缺失',
  '14': '批量文件格式错误',
  '30': '交易未通过，请尝试使用其他银联卡支付或联系95516',
  '31': '商户状态不正确',
  '32': '无此交易权限',
  '33': '交易金额超限',
  '34': '查无此交易',
  '35': '原交易不存在或状态不正确',
  '36': '与原交易信息不符',
  '37': '已超过最大查询次数或操作过于频繁',
  '38': '银联风险受限',
  '39': '交易不在受理时间范围内',
  '40': '绑定关系检查失败',
  '41': '批量状态不正确，无法下载',
  '42': '扣款成功但交易超过规定支付时间',
  '43': '无此业务权限',
  '44': '输入号码错误或暂未开通此项业务',
  '45': '原交易已被成功退货或已被成功撤销',
  '46': '交易已被成功冲正',
  '60': '交易失败，详情请咨询您的发卡行',
  '61': '输入的卡号无效，请确认后输入',
  '62': '交易失败，发卡银行不支持该商户，请更换其他银行卡',
  '63': '卡状态不正确',
  '64': '卡上的余额不足',
  '65': '输入的密码、有效期或CVN2有误，交易失败',
  '66': '持卡人身份信息或手机号输入不正确，验证失败',
  '67': '密码输入次数超限',
  '68': '您的银行卡暂不支持该业务',
  '69': '您的输入超时，交易失败',
  '71': '动态口令或短信验证码校验失败',
  '73': '支付卡已超过有效期',
  '80': '内部错误',
  '98': '文件不存在',
  '99': '通用错误',
} as const;
export type UpRespCode = keyof typeof UP_RESP_CODES;

/**
 * The daily reconciliation file (全渠道商户对账文件, "ZM" file) inside the zip of a file transfer:
 * fixed-width fields separated by one space, in this order and width (文件接口规范).
 */
export const UP_ZM_FIELDS = [
  ['tradeCode', 3], ['acqInsCode', 11], ['sendInsCode', 11], ['traceNo', 6], ['txnTime', 10], ['payCardNo', 19], ['txnAmt', 12],
  ['merCatCode', 4], ['termType', 2], ['queryId', 21], ['oldPayType', 2], ['orderId', 32], ['payCardType', 2], ['origTraceNo', 6],
  ['origTxnTime', 10], ['merFee', 13], ['settleAmt', 13], ['payType', 4], ['groupMerId', 15], ['txnType', 2], ['txnSubType', 2],
  ['bizType', 6], ['accType', 2], ['billType', 4], ['billNo', 32], ['interactMode', 1], ['origQryId', 21], ['merId', 15],
  ['splitType', 1], ['subMerId', 15], ['subMerAbbr', 32], ['subMerAmt', 13], ['settleNetAmt', 13], ['termId', 8], ['merReserved', 32],
  ['discountAmt', 13], ['invoiceAmt', 13], ['installmentFee', 12], ['installmentNum', 2], ['tradeMedia', 1],
] as const;
export type UpZmField = (typeof UP_ZM_FIELDS)[number][0];
