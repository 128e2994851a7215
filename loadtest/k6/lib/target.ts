// Where the k6 scripts send traffic and as whom. Defaults: the demo merchant that `npm start`
// writes to .data/demo-merchant.json. Overrides (k6 run -e NAME=value):
//   BASE_URL          http://127.0.0.1:8080
//   MERCHANT_ID, MERCHANT_SECRET, ACCOUNT_IDS (comma-separated wallets of that merchant)
//   SEED_FILE         absolute path of a seed written by `npx tsx loadtest/seed.ts` (many merchants)
//   AMOUNT            fen per payment (default 1, so the demo float lasts a million payments)
// The scripts call open() themselves (it must run in the init context of the entry script).

export type Merchant = { id: string; secret: string; accounts: string[] };
export type Target = { baseUrl: string; merchants: Merchant[]; amount: number };

type Demo = { base_url?: string; merchant_id?: string; secret?: string; account_id?: string };
type Seed = { base_url?: string; merchants: { merchant_id: string; secret: string; accounts: string[] }[] };

export function loadTarget(env: Record<string, string | undefined>, demoJson: string | null, seedJson: string | null): Target {
  const demo: Demo = demoJson ? (JSON.parse(demoJson) as Demo) : {};
  const seed: Seed | null = seedJson ? (JSON.parse(seedJson) as Seed) : null;
  const baseUrl = (env.BASE_URL ?? seed?.base_url ?? demo.base_url ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  const amount = Number(env.AMOUNT ?? 1);
  if (!Number.isInteger(amount) || amount <= 0) throw new Error(`AMOUNT must be a positive whole number of minor units, got ${env.AMOUNT}`);
  let merchants: Merchant[];
  if (env.MERCHANT_ID || env.MERCHANT_SECRET) {
    if (!env.MERCHANT_ID || !env.MERCHANT_SECRET) throw new Error('set MERCHANT_ID and MERCHANT_SECRET together');
    merchants = [{ id: env.MERCHANT_ID, secret: env.MERCHANT_SECRET, accounts: (env.ACCOUNT_IDS ?? demo.account_id ?? '').split(',').filter(Boolean) }];
  } else if (seed) {
    merchants = seed.merchants.map((m) => ({ id: m.merchant_id, secret: m.secret, accounts: m.accounts }));
  } else if (demo.merchant_id && demo.secret) {
    merchants = [{ id: demo.merchant_id, secret: demo.secret, accounts: (env.ACCOUNT_IDS ?? demo.account_id ?? '').split(',').filter(Boolean) }];
  } else {
    throw new Error('no merchant: run `npm start` (writes .data/demo-merchant.json), or set MERCHANT_ID/MERCHANT_SECRET/ACCOUNT_IDS or SEED_FILE');
  }
  if (merchants.length === 0) throw new Error('the seed has no merchant');
  return { baseUrl, merchants, amount };
}

/** open() that answers null for a missing file (the demo seed exists only after `npm start`). */
export function tryRead(read: () => string): string | null {
  try {
    return read();
  } catch {
    return null;
  }
}
