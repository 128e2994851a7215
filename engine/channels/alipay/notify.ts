// Alipay's asynchronous notification (异步通知, notify_type trade_status_sync): a form-encoded
// POST signed RSA2 over its parameters sorted by key, `sign` and `sign_type` left out, values
// URL-decoded. Verified over the raw body; answered with the plain text `success`.
//
// Window: notify_time is, per Alipay's parameter table, "the time the notification is sent"
// (通知的发送时间), and Alipay signs each send, so a re-send (8 sends within ~25 h: 4m, 10m, 10m,
// 1h, 2h, 6h, 15h) carries its own notify_time and a fresh signature while notify_id stays the
// same. We accept notify_time within NOTIFY_WINDOW_MS of now in either direction; a replay of a
// captured notification is older than that and rejected, and inside the window it is a duplicate
// notify_id for the engine's dedup. Should a re-send ever carry its first notify_time, we answer
// `fail` and the payment is still found by 补单 (the order query): the window can delay a
// payment, never lose it.
import type { ChannelCrypto, ChannelNotification, NotifyAnswer, RawHeaders } from '../types.ts';
import { ChannelNotifyError, NOTIFY_BODY_BYTES_MAX } from '../types.ts';
import { fromShanghaiTime, isTradeStatus, mapTradeStatus, NOTIFY_SIGN_EXCLUDED, REQUEST_SIGN_EXCLUDED, signContent, yuanToFen } from './transformers.ts';

export type AlipayNotifyKeys = {
  appId: string;
  alipayPublicKeyPem: string;
  windowMs: number;
};

const reject = (reason: ConstructorParameters<typeof ChannelNotifyError>[1], message: string): ChannelNotifyError => new ChannelNotifyError('alipay', reason, message);

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The form's parameters; duplicate keys or bytes that are not UTF-8 make it malformed. */
export function parseNotifyForm(raw: Buffer, headers: RawHeaders): Record<string, string> {
  if (raw.length === 0 || raw.length > NOTIFY_BODY_BYTES_MAX) throw reject('malformed', `body of ${raw.length} bytes`);
  const ct = headers['content-type'];
  if (typeof ct !== 'string' || !ct.toLowerCase().startsWith('application/x-www-form-urlencoded')) throw reject('malformed', 'content-type is not a form');
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw reject('malformed', 'body is not UTF-8');
  }
  const params: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(text)) {
    if (Object.hasOwn(params, k)) throw reject('malformed', `parameter ${k} repeated`);
    params[k] = v;
  }
  return params;
}

const required = (p: Record<string, string>, k: string): string => {
  const v = p[k];
  if (v === undefined || v === '') throw reject('malformed', `missing ${k}`);
  return v;
};

export async function verifyAlipayNotify(raw: Buffer, headers: RawHeaders, nowMs: number, keys: AlipayNotifyKeys, crypto: ChannelCrypto): Promise<ChannelNotification> {
  const p = parseNotifyForm(raw, headers);
  const sign = p.sign;
  if (!sign) throw reject('invalid_signature', 'missing sign');
  if (p.sign_type !== 'RSA2') throw reject('invalid_signature', `sign_type ${p.sign_type ?? '(none)'} is not RSA2`);
  if (p.charset !== undefined && p.charset.toLowerCase() !== 'utf-8') throw reject('malformed', `charset ${p.charset} (the app must be set to utf-8)`);

  // The cheap window check first, so stale replays cost no RSA work.
  const sentMs = fromShanghaiTime(required(p, 'notify_time'));
  if (sentMs === null) throw reject('malformed', 'notify_time is not yyyy-MM-dd HH:mm:ss');
  if (Math.abs(nowMs - sentMs) > keys.windowMs) throw reject('timestamp_out_of_window', 'notify_time outside the window');

  // Alipay's rule leaves sign_type out; the official Node SDK (checkNotifySign) also accepts a
  // signature that covers it, so a notification signed by that SDK's signer verifies too. Both
  // strings are over the same parameters and need Alipay's private key.
  const ok =
    (await crypto.rsaVerify(keys.alipayPublicKeyPem, signContent(p, NOTIFY_SIGN_EXCLUDED), sign)) ||
    (await crypto.rsaVerify(keys.alipayPublicKeyPem, signContent(p, REQUEST_SIGN_EXCLUDED), sign));
  if (!ok) throw reject('invalid_signature', 'signature does not verify');

  if (p.app_id !== keys.appId) throw reject('malformed', 'app_id is not this adapter\'s');
  if (p.notify_type !== 'trade_status_sync') throw reject('unsupported_event', `notify_type ${p.notify_type ?? '(none)'}`);
  return mapNotify(p);
}

/** A verified notification's parameters → ours. Refund notifications carry out_biz_no and refund_fee. */
export function mapNotify(p: Record<string, string>): ChannelNotification {
  const notificationId = required(p, 'notify_id');
  const outTradeNo = required(p, 'out_trade_no');
  const status = required(p, 'trade_status');
  if (!isTradeStatus(status)) throw reject('malformed', `trade_status ${status}`);
  if (p.out_biz_no && p.refund_fee) {
    // refund_fee is the total refunded on the trade so far: Alipay does not repeat the single
    // refund's amount in the notification (the refund call's answer has it).
    const refunded = yuanToFen(p.refund_fee);
    if (refunded === null) throw reject('malformed', 'refund_fee is not a yuan amount');
    return { kind: 'refund', notification_id: notificationId, out_trade_no: outTradeNo, out_refund_no: p.out_biz_no, status: 'succeeded', amount: refunded, currency: 'CNY' };
  }
  const amount = yuanToFen(required(p, 'total_amount'));
  if (amount === null) throw reject('malformed', 'total_amount is not a yuan amount');
  const mapped = mapTradeStatus(status);
  const paidAt = mapped === 'succeeded' && p.gmt_payment ? fromShanghaiTime(p.gmt_payment) : null;
  return {
    kind: 'payment',
    notification_id: notificationId,
    out_trade_no: outTradeNo,
    status: mapped,
    amount,
    currency: 'CNY',
    channel_trade_no: p.trade_no || null,
    paid_at_ms: paidAt,
  };
}

/**
 * Alipay reads the body only: exactly `success`, or it sends again. A rejection also gets a 400
 * so that a plain HTTP client (our sandbox kit among them) sees it as not delivered.
 */
export function alipayNotifyAnswer(ok: boolean): NotifyAnswer {
  return ok
    ? { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'success' }
    : { status: 400, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'fail' };
}
