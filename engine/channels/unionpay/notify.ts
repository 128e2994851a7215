// UnionPay back notifications (后台通知, a form post to backUrl), verified over the raw bytes:
// size → form → signature fields present → txnTime window → signPubKeyCert chain and RSA
// signature over sha256hex(sorted k=v) → merId → mapping. UnionPay signs no notification
// timestamp; txnTime (when we sent the transaction, Asia/Shanghai YYYYMMDDhhmmss) is the only
// signed time, so the window is: not in the future beyond NOTIFY_WINDOW_MS, and not older than
// the longest payTimeout we set plus the window (notifyTxnAgeMaxMs).
import {
  ChannelNotifyError,
  NOTIFY_BODY_BYTES_MAX,
  NOTIFY_WINDOW_MS,
  type ChannelCrypto,
  type ChannelNotification,
  type NotifyAnswer,
  type NotifyRejection,
} from '../types.ts';
import { parseForm, verifyParams, type UpCertVerifier } from './sign.ts';
import { fromUpAmount, fromUpCurrency, fromUpOrderId, isMappableId, parseMmddhhmmss, parseUpTime, upOrderStatus, upRefundStatus } from './transformers.ts';
import { UP_SIGN_METHOD_RSA, UP_TXN_CANCEL, UP_TXN_CONSUME, UP_TXN_REFUND, UP_VERSION } from './wire.ts';

/** Default age limit of a notification's txnTime: covers a 2-hour payTimeout and UnionPay's retries. */
export const UP_NOTIFY_TXN_AGE_MAX_MS_DEFAULT = 2 * 3600_000;

export type UpNotifyKeys = { merId: string; notifyTxnAgeMaxMs: number };

const fail = (reason: NotifyRejection, message: string, cause?: unknown) => new ChannelNotifyError('unionpay', reason, message, cause === undefined ? {} : { cause });

export async function verifyUnionPayNotify(raw: Buffer, nowMs: number, keys: UpNotifyKeys, verifier: UpCertVerifier, crypto: ChannelCrypto): Promise<ChannelNotification> {
  if (raw.length > NOTIFY_BODY_BYTES_MAX) throw fail('malformed', 'body too large');
  const p = parseForm(raw.toString('utf8'));
  if (!p) throw fail('malformed', 'not a form post');
  if (!p.signature || !p.signPubKeyCert) throw fail('invalid_signature', 'unsigned: signature or signPubKeyCert missing');
  if (p.signMethod !== UP_SIGN_METHOD_RSA || p.version !== UP_VERSION) throw fail('invalid_signature', 'not a 5.1.0 RSA (signMethod 01) signature');
  const txnTimeMs = parseUpTime(p.txnTime ?? '');
  if (txnTimeMs === null) throw fail('malformed', 'txnTime is not YYYYMMDDhhmmss');
  if (txnTimeMs - nowMs > NOTIFY_WINDOW_MS || nowMs - txnTimeMs > keys.notifyTxnAgeMaxMs) throw fail('timestamp_out_of_window', 'txnTime outside the window');
  if (!(await verifyParams(p, verifier, crypto, nowMs))) throw fail('invalid_signature', 'signature or certificate does not verify');
  if (p.merId !== keys.merId) throw fail('malformed', 'notification of another merId');

  const id = fromUpOrderId(p.orderId ?? '');
  const amount = fromUpAmount(p.txnAmt);
  const currency = fromUpCurrency(p.currencyCode);
  if (!id || amount === null || currency === null || !p.queryId || !p.respCode) throw fail('malformed', 'orderId/txnAmt/currencyCode/queryId/respCode missing or malformed');

  switch (p.txnType) {
    case UP_TXN_CONSUME: {
      const status = upOrderStatus(p.respCode);
      return {
        kind: 'payment',
        // Retries of a notification repeat the transaction's queryId: the dedup key.
        notification_id: p.queryId,
        out_trade_no: id,
        status,
        amount,
        currency,
        channel_trade_no: p.queryId,
        paid_at_ms: status === 'succeeded' ? (p.traceTime ? parseMmddhhmmss(p.traceTime, nowMs) : null) : null,
      };
    }
    case UP_TXN_REFUND:
    case UP_TXN_CANCEL: {
      const outTradeNo = p.reqReserved ?? '';
      if (!isMappableId(outTradeNo)) throw fail('malformed', 'refund notification without our out_trade_no in reqReserved');
      return { kind: 'refund', notification_id: p.queryId, out_trade_no: outTradeNo, out_refund_no: id, status: upRefundStatus(p.respCode), amount, currency };
    }
    default:
      throw fail('unsupported_event', `txnType ${String(p.txnType).slice(0, 4)} is not handled`);
  }
}

/** UnionPay counts HTTP 200 as delivered (body `ok` by custom); anything else makes it retry. */
export function unionPayNotifyAnswer(ok: boolean): NotifyAnswer {
  return ok ? { status: 200, headers: { 'content-type': 'text/plain' }, body: 'ok' } : { status: 400, headers: { 'content-type': 'text/plain' }, body: 'fail' };
}
