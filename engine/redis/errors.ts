// The negative result codes of the Lua scripts, named once, and their mapping to the stable error
// codes of the public API (ingress/errors.ts holds the HTTP side of the catalogue).
export enum ScriptCode {
  Ok = 0,
  AccountNotFound = -1,
  CurrencyMismatch = -2,
  DuplicateOutTradeNo = -3,
  PaymentNotFound = -4,
  InvalidTransition = -5,
  AmountExceedsHold = -6,
  AccountCurrencyConflict = -7,
  NotDue = -9,
  HoldExpired = -10,
  RefundExceedsCaptured = -11,
  ChannelMismatch = -12,
  LatePayment = -13,
  RefundNotConvertible = -14,
  RiskBlacklistFull = -20,
}

/** Stable public error codes for each script code (API.md). */
export const SCRIPT_ERROR_CODE: Record<Exclude<ScriptCode, ScriptCode.Ok>, { code: string; message: string }> = {
  [ScriptCode.AccountNotFound]: { code: 'account.not_found', message: 'the account does not exist' },
  [ScriptCode.CurrencyMismatch]: { code: 'account.currency_mismatch', message: 'the account holds another currency' },
  [ScriptCode.DuplicateOutTradeNo]: { code: 'payment.duplicate_out_trade_no', message: 'out_trade_no was already used by this merchant' },
  [ScriptCode.PaymentNotFound]: { code: 'payment.not_found', message: 'no such payment' },
  [ScriptCode.InvalidTransition]: { code: 'payment.invalid_transition', message: 'the payment is not in a state that allows this' },
  [ScriptCode.AmountExceedsHold]: { code: 'payment.invalid_transition', message: 'the amount exceeds the authorized hold' },
  [ScriptCode.AccountCurrencyConflict]: { code: 'account.exists', message: 'the account exists in another currency' },
  [ScriptCode.NotDue]: { code: 'payment.hold_not_due', message: 'the hold has not reached its deadline' },
  [ScriptCode.HoldExpired]: { code: 'payment.invalid_transition', message: 'the hold expired before it was captured; it was released' },
  [ScriptCode.RefundExceedsCaptured]: { code: 'payment.invalid_transition', message: 'the refunds would exceed the captured amount' },
  [ScriptCode.ChannelMismatch]: { code: 'channel.notification_mismatch', message: 'the channel, amount or currency differ from the channel order' },
  [ScriptCode.LatePayment]: { code: 'channel.late_payment', message: 'the buyer paid at the channel after the payment was closed' },
  [ScriptCode.RefundNotConvertible]: {
    code: 'payment.invalid_transition',
    message: 'a payment converted into its channel\'s currency (cross-border) is refunded in full, in one refund',
  },
  [ScriptCode.RiskBlacklistFull]: { code: 'risk.blacklist_full', message: 'the merchant blacklist holds the most entries allowed' },
};

export function isScriptCode(n: unknown): n is ScriptCode {
  return typeof n === 'number' && (n === 0 || n in SCRIPT_ERROR_CODE);
}
