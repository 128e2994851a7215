// The end-of-run ledger check of the benchmark, pure so that a test can show it fails when it
// should: every acknowledged payment settled exactly once with its amount, nothing settled that was
// never asked for, every wallet's balance = its funding − what it paid, every merchant's balance =
// what it was paid, and (peakpay) Redis' wallet balances equal the ledger's.
import type { PaymentRef } from './payments.ts';

export type SettledRow = { count: number; amount: number };

export type Observed = {
  /** By `${merchant}/${out_trade_no}`: how many times the payment's money moved, and how much in all. */
  settled: Map<string, SettledRow>;
  /** By `${merchant}/${account}`: available balance in the ledger of record. */
  wallets: Map<string, number>;
  /** By merchant: what the ledger says it was paid. */
  merchants: Map<string, number>;
  /** By `${merchant}/${account}`: available balance in the decision store (Redis), when there is one. */
  mirror?: Map<string, number>;
};

export type Expected = {
  acknowledged: readonly PaymentRef[];
  /** Sent but not acknowledged (error, timeout): may or may not have settled, never twice. */
  unacknowledged: readonly PaymentRef[];
  /** By `${merchant}/${account}`: the wallet's balance before the run. */
  funding: ReadonlyMap<string, number>;
  /** Merchants whose balances are checked (those the run paid, and their starting balance 0). */
  merchants: readonly string[];
};

export type LedgerReport = {
  ok: boolean;
  acknowledged: number;
  settled_once: number;
  lost: number;
  doubled: number;
  wrong_amount: number;
  /** Settled although never sent by this run: doubled by another path, or someone else's traffic. */
  unexpected: number;
  unacknowledged_settled: number;
  wallet_mismatches: number;
  merchant_mismatches: number;
  mirror_mismatches: number;
  examples: string[];
};

const EXAMPLES_MAX = 10;
export const paymentKey = (merchant: string, outTradeNo: string) => `${merchant}/${outTradeNo}`;
export const walletKey = (merchant: string, account: string) => `${merchant}/${account}`;

export function checkLedger(expected: Expected, observed: Observed): LedgerReport {
  const examples: string[] = [];
  const note = (s: string) => {
    if (examples.length < EXAMPLES_MAX) examples.push(s);
  };
  const r: LedgerReport = {
    ok: false, acknowledged: expected.acknowledged.length, settled_once: 0, lost: 0, doubled: 0, wrong_amount: 0, unexpected: 0,
    unacknowledged_settled: 0, wallet_mismatches: 0, merchant_mismatches: 0, mirror_mismatches: 0, examples,
  };
  const wallets = new Map(expected.funding);
  const merchants = new Map(expected.merchants.map((m) => [m, 0]));
  const seen = new Set<string>();
  const spend = (p: PaymentRef, times: number) => {
    const w = walletKey(p.merchant, p.account);
    wallets.set(w, (wallets.get(w) ?? 0) - p.amount * times);
    merchants.set(p.merchant, (merchants.get(p.merchant) ?? 0) + p.amount * times);
  };

  for (const p of expected.acknowledged) {
    const k = paymentKey(p.merchant, p.outTradeNo);
    if (seen.has(k)) throw new Error(`assertion: the run sent ${k} twice`);
    seen.add(k);
    const s = observed.settled.get(k);
    if (!s || s.count === 0) {
      r.lost++;
      note(`lost: ${k} (${p.amount}) acknowledged, never settled`);
      continue;
    }
    if (s.count > 1) {
      r.doubled++;
      note(`doubled: ${k} settled ${s.count} times`);
    } else if (s.amount !== p.amount) {
      r.wrong_amount++;
      note(`wrong amount: ${k} settled ${s.amount}, acknowledged ${p.amount}`);
    } else {
      r.settled_once++;
    }
    // What the ledger should show is what it did (the other checks name the difference).
    spend(p, 1);
  }
  for (const p of expected.unacknowledged) {
    const k = paymentKey(p.merchant, p.outTradeNo);
    seen.add(k);
    const s = observed.settled.get(k);
    if (!s) continue;
    if (s.count > 1) {
      r.doubled++;
      note(`doubled: ${k} (unacknowledged) settled ${s.count} times`);
    }
    r.unacknowledged_settled++;
    spend(p, 1);
  }
  for (const [k, s] of observed.settled) {
    if (seen.has(k)) continue;
    r.unexpected++;
    note(`unexpected: ${k} settled ${s.count} time(s) for ${s.amount}, never sent`);
  }
  for (const [w, want] of wallets) {
    const got = observed.wallets.get(w);
    if (got !== want) {
      r.wallet_mismatches++;
      note(`wallet ${w}: ledger ${got ?? 'missing'}, expected ${want}`);
    }
    if (observed.mirror) {
      const mirrored = observed.mirror.get(w);
      if (mirrored !== got) {
        r.mirror_mismatches++;
        note(`wallet ${w}: Redis ${mirrored ?? 'missing'}, ledger ${got ?? 'missing'}`);
      }
    }
  }
  for (const [m, want] of merchants) {
    const got = observed.merchants.get(m) ?? 0;
    if (got !== want) {
      r.merchant_mismatches++;
      note(`merchant ${m}: ledger ${got}, expected ${want}`);
    }
  }
  r.ok = r.lost === 0 && r.doubled === 0 && r.wrong_amount === 0 && r.unexpected === 0 && r.wallet_mismatches === 0
    && r.merchant_mismatches === 0 && r.mirror_mismatches === 0;
  return r;
}
