// Merchants and funded wallets for the k6 scripts and loadtest/run.ts, on the running peakpay of
// `npm start` (same database, namespace and master key): writes .data/loadtest-seed.json.
//   npx tsx loadtest/seed.ts [--merchants 100] [--wallets 10] [--float 100000000] [--out .data/loadtest-seed.json]
// Then: k6 run -e SEED_FILE=$PWD/.data/loadtest-seed.json loadtest/k6/rehearsal.ts
// Merchants are created as `ops merchant:create` does; wallets and their float go through the
// engine as `ops account:create` / `account:credit` do (so the ledger has them).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '../engine/config.ts';
import { createMerchant } from '../engine/merchants/index.ts';
import { DATA_DIR, localEnv } from '../scripts/local-env.ts';
import { createAccount, creditAccount, opsSession } from '../scripts/ops.ts';

/** Wallet commands in flight at once (each waits for the engine's reply). */
const CONCURRENCY_MAX = 100;

const { values } = parseArgs({
  options: {
    merchants: { type: 'string', default: '100' },
    wallets: { type: 'string', default: '10' },
    float: { type: 'string', default: '100000000' },
    out: { type: 'string', default: join(DATA_DIR, 'loadtest-seed.json') },
  },
});
const config = loadConfigOrExit(localEnv());
const session = await opsSession(config);
try {
  const stamp = Date.now().toString(36);
  const merchants: { merchant_id: string; secret: string; accounts: string[] }[] = [];
  for (let i = 0; i < Number(values.merchants); i++) {
    const m = await createMerchant(session.pool, config.masterKey, { id: `lt${stamp}m${i}`, name: `load test shop ${i}` });
    merchants.push({ merchant_id: m.id, secret: m.secret, accounts: Array.from({ length: Number(values.wallets) }, (_, a) => `acc_lt${a}`) });
  }
  const jobs = merchants.flatMap((m) => m.accounts.map((a) => async () => {
    await createAccount(session.client, m.merchant_id, a, 'CNY');
    await creditAccount(session.client, m.merchant_id, a, Number(values.float), 'CNY', 'load test float');
  }));
  for (let i = 0; i < jobs.length; i += CONCURRENCY_MAX) await Promise.all(jobs.slice(i, i + CONCURRENCY_MAX).map((j) => j()));
  const seed = { base_url: `http://${config.httpHost}:${config.httpPort}`, merchants };
  writeFileSync(values.out, `${JSON.stringify(seed, null, 2)}\n`, { mode: 0o600 });
  console.log(`${merchants.length} merchants × ${values.wallets} wallets of ${values.float} fen: ${values.out}`);
} finally {
  await session.close();
}
