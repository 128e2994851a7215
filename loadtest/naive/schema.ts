// The naive stack's own tables, in their own schema: what an epay-style storefront keeps — a
// merchants table with a balance column, a wallets table, an orders table — and the reads the
// benchmark's ledger check needs.
import pg from 'pg';
import { paymentKey, walletKey, type Observed } from '../lib/ledger-check.ts';
import type { BenchMerchant } from '../lib/payments.ts';

export const SCHEMA_NAME = /^[a-z][a-z0-9_]{0,30}$/;

function checked(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`schema name must match ${SCHEMA_NAME}: ${schema}`);
  return schema;
}

/** The wallet's primary key: one text id, as the naive debit `WHERE id = $2` wants. */
export const walletId = (merchant: string, account: string) => `${merchant}.${account}`;

export async function createNaiveSchema(pool: pg.Pool, schema: string): Promise<void> {
  const s = checked(schema);
  await pool.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await pool.query(`CREATE SCHEMA ${s}`);
  await pool.query(`
    CREATE TABLE ${s}.merchants (
      id      text PRIMARY KEY,
      secret  text NOT NULL,
      balance bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE ${s}.wallets (
      id          text PRIMARY KEY,
      merchant_id text NOT NULL,
      account_id  text NOT NULL,
      currency    char(3) NOT NULL,
      available   bigint NOT NULL CHECK (available >= 0)
    );
    CREATE TABLE ${s}.orders (
      id              bigserial PRIMARY KEY,
      merchant_id     text NOT NULL,
      out_trade_no    text NOT NULL,
      account_id      text NOT NULL,
      amount          bigint NOT NULL CHECK (amount > 0),
      currency        char(3) NOT NULL,
      status          text NOT NULL,
      idempotency_key text,
      created_at      timestamptz NOT NULL DEFAULT now(),
      UNIQUE (merchant_id, out_trade_no)
    );`);
}

export async function seedNaive(pool: pg.Pool, schema: string, merchants: readonly BenchMerchant[], fundingPerWallet: number): Promise<void> {
  const s = checked(schema);
  await pool.query(`INSERT INTO ${s}.merchants (id, secret) SELECT * FROM unnest($1::text[], $2::text[])`, [
    merchants.map((m) => m.id), merchants.map((m) => m.secret),
  ]);
  const rows = merchants.flatMap((m) => m.accounts.map((a) => [walletId(m.id, a), m.id, a] as const));
  await pool.query(
    `INSERT INTO ${s}.wallets (id, merchant_id, account_id, currency, available)
     SELECT id, m, a, 'CNY', $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS x(id, m, a)`,
    [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2]), fundingPerWallet],
  );
}

export async function readNaiveLedger(pool: pg.Pool, schema: string): Promise<Observed> {
  const s = checked(schema);
  const orders = await pool.query<{ merchant_id: string; out_trade_no: string; n: number; amount: string }>(
    `SELECT merchant_id, out_trade_no, count(*)::int AS n, sum(amount)::text AS amount FROM ${s}.orders WHERE status = 'succeeded' GROUP BY 1, 2`,
  );
  const wallets = await pool.query<{ merchant_id: string; account_id: string; available: string }>(`SELECT merchant_id, account_id, available::text FROM ${s}.wallets`);
  const merchants = await pool.query<{ id: string; balance: string }>(`SELECT id, balance::text FROM ${s}.merchants`);
  return {
    settled: new Map(orders.rows.map((r) => [paymentKey(r.merchant_id, r.out_trade_no), { count: r.n, amount: Number(r.amount) }])),
    wallets: new Map(wallets.rows.map((r) => [walletKey(r.merchant_id, r.account_id), Number(r.available)])),
    merchants: new Map(merchants.rows.map((r) => [r.id, Number(r.balance)])),
  };
}

export async function countNaiveOrders(pool: pg.Pool, schema: string): Promise<number> {
  const r = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${checked(schema)}.orders`);
  return r.rows[0]?.n ?? 0;
}
