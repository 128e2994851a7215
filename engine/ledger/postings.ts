// Double-entry postings for a money effect applied by a Lua script. Pure: the settlement consumer
// writes exactly these rows, so the ledger mirrors what Redis did, entry for entry.
//
// Ledger accounts (signed balances; every entry sums to zero per currency):
//   wallet:<account_id>:available   spendable wallet balance           (Redis: available)
//   wallet:<account_id>:held        held by open authorizations        (Redis: held)
//   merchant:settlement             captured, owed to the merchant
//   merchant:adjustments            the other side of operator credits (goes negative)
// A refund moves captured money back: merchant:settlement → wallet:<account_id>:available.
import type { Currency } from '../protocol/money.ts';
import { assertMinorUnits } from '../protocol/money.ts';
import type { Posting } from '../protocol/events.ts';
import type { Effect } from '../redis/store.ts';

export const walletAvailable = (accountId: string) => `wallet:${accountId}:available`;
export const walletHeld = (accountId: string) => `wallet:${accountId}:held`;
export const MERCHANT_SETTLEMENT = 'merchant:settlement';
export const MERCHANT_ADJUSTMENTS = 'merchant:adjustments';

export function postingsFor(accountId: string, currency: Currency, effects: readonly Effect[]): Posting[] {
  const out: Posting[] = [];
  const p = (kind: Posting['kind'], ledger_account: string, amount: number) => out.push({ kind, ledger_account, amount, currency });
  for (const [kind, amount] of effects) {
    assertMinorUnits(amount);
    switch (kind) {
      case 'hold':
        p('hold', walletAvailable(accountId), -amount);
        p('hold', walletHeld(accountId), amount);
        break;
      case 'release':
        p('release', walletHeld(accountId), -amount);
        p('release', walletAvailable(accountId), amount);
        break;
      case 'capture':
        p('capture', walletHeld(accountId), -amount);
        p('capture', MERCHANT_SETTLEMENT, amount);
        break;
      case 'credit':
        p('adjustment', MERCHANT_ADJUSTMENTS, -amount);
        p('adjustment', walletAvailable(accountId), amount);
        break;
      case 'refund':
        p('refund', MERCHANT_SETTLEMENT, -amount);
        p('refund', walletAvailable(accountId), amount);
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
