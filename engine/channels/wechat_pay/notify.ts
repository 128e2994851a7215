// WeChat Pay API v3 callbacks (回调通知): verified over the raw bytes before anything is believed.
// Order of checks: size → the four Wechatpay-* headers → timestamp window (cheap, before any RSA)
// → platform key by Wechatpay-Serial → RSA signature over timestamp\nnonce\nbody\n → envelope →
// AEAD_AES_256_GCM decryption with the APIv3 key → the resource's mchid/appid → mapping.
import {
  ChannelNotifyError,
  NOTIFY_BODY_BYTES_MAX,
  NOTIFY_WINDOW_MS,
  isChannelError,
  type ChannelCrypto,
  type ChannelNotification,
  type NotifyAnswer,
  type NotifyRejection,
  type RawHeaders,
} from '../types.ts';
import { aesGcmDecrypt, responseMessage } from './sign.ts';
import { isWxRefundStatus, transactionToState, wxRefundStatusToStatus } from './transformers.ts';
import {
  WX_EVENT_TRANSACTION_SUCCESS,
  WX_H_NONCE,
  WX_H_SERIAL,
  WX_H_SIGNATURE,
  WX_H_TIMESTAMP,
  WX_REFUND_EVENTS,
  WX_SIGNTEST_PREFIX,
  type WxNotifyEnvelope,
  type WxRefundResource,
  type WxTransaction,
} from './wire.ts';

/** What callback verification needs from the channel configuration. */
export type WxNotifyKeys = {
  appid: string;
  mchid: string;
  apiV3Key: string;
  /** Wechatpay-Serial → PEM public key or certificate (platform certificate serial, or PUB_KEY_ID_… of the 微信支付公钥). */
  platformPublicKeys: Record<string, string>;
};

const fail = (reason: NotifyRejection, message: string, cause?: unknown) => new ChannelNotifyError('wechat_pay', reason, message, cause === undefined ? {} : { cause });

export function headerValue(headers: RawHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks the Wechatpay-* signature of a body (callbacks and API answers alike). Throws ChannelNotifyError. */
export async function verifyWechatpaySignature(
  body: string,
  headers: RawHeaders,
  nowMs: number,
  platformPublicKeys: Record<string, string>,
  crypto: ChannelCrypto,
): Promise<void> {
  const timestamp = headerValue(headers, WX_H_TIMESTAMP);
  const nonce = headerValue(headers, WX_H_NONCE);
  const signature = headerValue(headers, WX_H_SIGNATURE);
  const serial = headerValue(headers, WX_H_SERIAL);
  if (!timestamp || !nonce || !signature || !serial) throw fail('invalid_signature', 'unsigned: a Wechatpay-* header is missing');
  if (!/^\d{1,12}$/.test(timestamp)) throw fail('malformed', 'Wechatpay-Timestamp is not epoch seconds');
  if (Math.abs(nowMs - Number(timestamp) * 1000) > NOTIFY_WINDOW_MS) throw fail('timestamp_out_of_window', 'Wechatpay-Timestamp outside the window');
  if (signature.startsWith(WX_SIGNTEST_PREFIX)) throw fail('invalid_signature', 'a WeChat signature probe');
  const key = Object.hasOwn(platformPublicKeys, serial) ? platformPublicKeys[serial] : undefined;
  if (!key) throw fail('invalid_signature', 'unknown Wechatpay-Serial');
  if (!(await crypto.rsaVerify(key, responseMessage(timestamp, nonce, body), signature))) throw fail('invalid_signature', 'signature does not verify');
}

function parseEnvelope(body: string): WxNotifyEnvelope {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch (err) {
    throw fail('malformed', 'body is not JSON', err);
  }
  if (!isRecord(v) || typeof v.id !== 'string' || !v.id || typeof v.event_type !== 'string' || !isRecord(v.resource)) {
    throw fail('malformed', 'not a WeChat Pay notification');
  }
  const r = v.resource;
  if (v.resource_type !== 'encrypt-resource' || r.algorithm !== 'AEAD_AES_256_GCM' || typeof r.ciphertext !== 'string' || typeof r.nonce !== 'string') {
    throw fail('malformed', 'resource is not an AEAD_AES_256_GCM encrypt-resource');
  }
  if (r.associated_data !== undefined && typeof r.associated_data !== 'string') throw fail('malformed', 'associated_data is not a string');
  return v as unknown as WxNotifyEnvelope;
}

function decryptResource(env: WxNotifyEnvelope, apiV3Key: string): Record<string, unknown> {
  let plain: string;
  try {
    plain = aesGcmDecrypt(env.resource.ciphertext, apiV3Key, env.resource.nonce, env.resource.associated_data ?? '');
  } catch (err) {
    // GCM authenticates: a resource that does not decrypt was not made with our APIv3 key.
    throw fail('invalid_signature', 'resource does not decrypt with the APIv3 key', err);
  }
  try {
    const v: unknown = JSON.parse(plain);
    if (isRecord(v)) return v;
  } catch (err) {
    throw fail('malformed', 'decrypted resource is not JSON', err);
  }
  throw fail('malformed', 'decrypted resource is not an object');
}

function paymentNotification(env: WxNotifyEnvelope, res: Record<string, unknown>, keys: WxNotifyKeys): ChannelNotification {
  if (res.mchid !== keys.mchid || res.appid !== keys.appid) throw fail('malformed', 'transaction of another mchid/appid');
  try {
    const s = transactionToState(res as unknown as WxTransaction);
    return { kind: 'payment', notification_id: env.id, ...s };
  } catch (err) {
    if (isChannelError(err)) throw fail('malformed', err.message, err);
    throw err;
  }
}

function refundNotification(env: WxNotifyEnvelope, res: Record<string, unknown>, keys: WxNotifyKeys): ChannelNotification {
  const r = res as unknown as WxRefundResource;
  if (r.mchid !== keys.mchid) throw fail('malformed', 'refund of another mchid');
  if (typeof r.out_trade_no !== 'string' || typeof r.out_refund_no !== 'string' || !isWxRefundStatus(r.refund_status)) {
    throw fail('malformed', 'refund resource lacks out_trade_no/out_refund_no/refund_status');
  }
  const amount = isRecord(r.amount) ? r.amount.refund : undefined;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) throw fail('malformed', 'amount.refund is not an integer of fen');
  return {
    kind: 'refund',
    notification_id: env.id,
    out_trade_no: r.out_trade_no,
    out_refund_no: r.out_refund_no,
    status: wxRefundStatusToStatus(r.refund_status),
    amount,
    currency: 'CNY', // refund callbacks carry no currency: WeChat domestic refunds are CNY
  };
}

/** Verifies a callback over its raw bytes and maps it; throws ChannelNotifyError for anything to reject. */
export async function verifyWechatPayNotify(raw: Buffer, headers: RawHeaders, nowMs: number, keys: WxNotifyKeys, crypto: ChannelCrypto): Promise<ChannelNotification> {
  if (raw.length > NOTIFY_BODY_BYTES_MAX) throw fail('malformed', 'body too large');
  const body = raw.toString('utf8');
  await verifyWechatpaySignature(body, headers, nowMs, keys.platformPublicKeys, crypto);
  const env = parseEnvelope(body);
  const isPayment = env.event_type === WX_EVENT_TRANSACTION_SUCCESS;
  const isRefund = (WX_REFUND_EVENTS as readonly string[]).includes(env.event_type);
  if (!isPayment && !isRefund) throw fail('unsupported_event', `event_type ${env.event_type.slice(0, 40)} is not handled`);
  if (env.resource.original_type !== (isPayment ? 'transaction' : 'refund')) throw fail('malformed', 'original_type does not match event_type');
  const res = decryptResource(env, keys.apiV3Key);
  return isPayment ? paymentNotification(env, res, keys) : refundNotification(env, res, keys);
}

/** WeChat v3: 200/204 without a body on success; 4xx/5xx with {"code":"FAIL","message":…} otherwise (WeChat retries). */
export function wechatPayNotifyAnswer(ok: boolean): NotifyAnswer {
  if (ok) return { status: 204, headers: {}, body: '' };
  return { status: 400, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: 'FAIL', message: '失败' }) };
}
