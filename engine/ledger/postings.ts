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

function walletOf(accountId: string | null): string {
  if (accountId === null) throw new Error('assertion: wallet effect without an account');
  return accountId;
}

function channelOf(channel: string | null): string {
  if (channel === null) throw new Error('assertion: channel effect without a channel');
  return channel;
}

/** accountId: the wallet of wallet effects; channel: the channel of channel effects (assertions). */
export function postingsFor(accountId: string | null, currency: Currency, effects: readonly Effect[], channel: string | null = null): Posting[] {
  // No closures here: tsx (esbuild keepNames) wraps each one created per call in a __name call,
  // and this runs once per payment in the engine (docs/BENCHMARKS.md).
  const out: Posting[] = [];
  const via = channel === '' ? null : channel;
  for (const [kind, amount] of effects) {
    assertMinorUnits(amount);
    switch (kind) {
      case 'hold':
        out.push({ kind: 'hold', ledger_account: walletAvailable(walletOf(accountId)), amount: -amount, currency });
        out.push({ kind: 'hold', ledger_account: walletHeld(walletOf(accountId)), amount, currency });
        break;
      case 'release':
        out.push({ kind: 'release', ledger_account: walletHeld(walletOf(accountId)), amount: -amount, currency });
        out.push({ kind: 'release', ledger_account: walletAvailable(walletOf(accountId)), amount, currency });
        break;
      case 'capture':
        out.push({ kind: 'capture', ledger_account: walletHeld(walletOf(accountId)), amount: -amount, currency });
        out.push({ kind: 'capture', ledger_account: MERCHANT_SETTLEMENT, amount, currency });
        break;
      case 'sale':
        // An automatic capture: captured in the script call that checked the funds, so never
        // held. One transfer, as TigerBeetle books a single-phase transfer, instead of a
        // pending one posted at once: two ledger rows a payment instead of four. Posting kind
        // capture, out of available. (Events of scripts v7 carry hold + capture entries instead.)
        out.push({ kind: 'capture', ledger_account: walletAvailable(walletOf(accountId)), amount: -amount, currency });
        out.push({ kind: 'capture', ledger_account: MERCHANT_SETTLEMENT, amount, currency });
        break;
      case 'credit':
        out.push({ kind: 'adjustment', ledger_account: MERCHANT_ADJUSTMENTS, amount: -amount, currency });
        out.push({ kind: 'adjustment', ledger_account: walletAvailable(walletOf(accountId)), amount, currency });
        break;
      case 'refund':
        out.push({ kind: 'refund', ledger_account: MERCHANT_SETTLEMENT, amount: -amount, currency });
        out.push({ kind: 'refund', ledger_account: walletAvailable(walletOf(accountId)), amount, currency });
        break;
      case 'channel_capture':
        out.push({ kind: 'channel_capture', ledger_account: channelClearing(channelOf(via)), amount: -amount, currency });
        out.push({ kind: 'channel_capture', ledger_account: MERCHANT_SETTLEMENT, amount, currency });
        break;
      case 'topup':
        out.push({ kind: 'topup', ledger_account: channelClearing(channelOf(via)), amount: -amount, currency });
        out.push({ kind: 'topup', ledger_account: walletAvailable(walletOf(accountId)), amount, currency });
        break;
      case 'fee':
        out.push({ kind: 'fee', ledger_account: MERCHANT_SETTLEMENT, amount: -amount, currency });
        out.push({ kind: 'fee', ledger_account: channelFees(channelOf(via)), amount, currency });
        break;
      case 'channel_refund':
        out.push({ kind: 'channel_refund', ledger_account: MERCHANT_SETTLEMENT, amount: -amount, currency });
        out.push({ kind: 'channel_refund', ledger_account: channelClearing(channelOf(via)), amount, currency });
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
