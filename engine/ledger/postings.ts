// Double-entry postings for a money effect applied by a Lua script. Pure: the settlement consumer
// writes exactly these rows, so the ledger mirrors what Redis did, entry for entry.
//
// Ledger accounts (signed balances; every entry sums to zero per currency):
//   wallet:<account_id>:available   spendable wallet balance           (Redis: available)
//   wallet:<account_id>:held        held by open authorizations        (Redis: held)
//   merchant:settlement             captured, owed to the merchant
//   merchant:adjustments            the other side of operator credits (goes negative)
// A refund moves captured money back: merchant:settlement → wallet:<account_id>:available.
// Channel payments: channel:<name>:clearing (what the channel collected for us; negative, a
// source like adjustments) → merchant:settlement, or → the wallet for a top-up; the channel's fee
// moves merchant:settlement → channel:<name>:fees. A refund through the channel moves the money
// back the way it came: merchant:settlement → channel:<name>:clearing (the fee is not given back).
import type { Currency } from '../protocol/money.ts';
import { assertMinorUnits } from '../protocol/money.ts';
import type { Posting } from '../protocol/events.ts';
import type { Effect } from '../redis/store.ts';

export const walletAvailable = (accountId: string) => `wallet:${accountId}:available`;
export const walletHeld = (accountId: string) => `wallet:${accountId}:held`;
export const MERCHANT_SETTLEMENT = 'merchant:settlement';
export const MERCHANT_ADJUSTMENTS = 'merchant:adjustments';

export const channelClearing = (channel: string) => `channel:${channel}:clearing`;
export const channelFees = (channel: string) => `channel:${channel}:fees`;

/** accountId: the wallet of wallet effects; channel: the channel of channel effects (assertions). */
export function postingsFor(accountId: string | null, currency: Currency, effects: readonly Effect[], channel: string | null = null): Posting[] {
  const out: Posting[] = [];
  const wallet = (): string => {
    if (accountId === null) throw new Error('assertion: wallet effect without an account');
    return accountId;
  };
  const via = (): string => {
    if (channel === null || channel === '') throw new Error('assertion: channel effect without a channel');
    return channel;
  };
  const p = (kind: Posting['kind'], ledger_account: string, amount: number) => out.push({ kind, ledger_account, amount, currency });
  for (const [kind, amount] of effects) {
    assertMinorUnits(amount);
    switch (kind) {
      case 'hold':
        p('hold', walletAvailable(wallet()), -amount);
        p('hold', walletHeld(wallet()), amount);
        break;
      case 'release':
        p('release', walletHeld(wallet()), -amount);
        p('release', walletAvailable(wallet()), amount);
        break;
      case 'capture':
        p('capture', walletHeld(wallet()), -amount);
        p('capture', MERCHANT_SETTLEMENT, amount);
        break;
      case 'credit':
        p('adjustment', MERCHANT_ADJUSTMENTS, -amount);
        p('adjustment', walletAvailable(wallet()), amount);
        break;
      case 'refund':
        p('refund', MERCHANT_SETTLEMENT, -amount);
        p('refund', walletAvailable(wallet()), amount);
        break;
      case 'channel_capture':
        p('channel_capture', channelClearing(via()), -amount);
        p('channel_capture', MERCHANT_SETTLEMENT, amount);
        break;
      case 'topup':
        p('topup', channelClearing(via()), -amount);
        p('topup', walletAvailable(wallet()), amount);
        break;
      case 'fee':
        p('fee', MERCHANT_SETTLEMENT, -amount);
        p('fee', channelFees(via()), amount);
        break;
      case 'channel_refund':
        p('channel_refund', MERCHANT_SETTLEMENT, -amount);
        p('channel_refund', channelClearing(via()), amount);
        break;
      default: {
        const never: never = kind;
        throw new Error(`assertion: unknown effect ${String(never)}`);
      }
    }
  }
  return out;
}

/** Sum per currency; every entry must come to zero. */
export function isBalanced(postings: readonly Posting[]): boolean {
  const sums = new Map<string, number>();
  for (const x of postings) sums.set(x.currency, (sums.get(x.currency) ?? 0) + x.amount);
  return [...sums.values()].every((s) => s === 0);
}
