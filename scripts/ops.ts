// Operator commands. Merchants are configuration (written to Postgres); accounts and credits are
// money, so they go through the engine like any other command (ordered, idempotent, in the ledger).
//
//   npm run ops -- merchant:create --name "Demo shop" [--id m_demo] [--max-amount 5000000]
//   npm run ops -- account:create  --merchant m_… --account acc_42 --currency CNY
//   npm run ops -- account:credit  --merchant m_… --account acc_42 --amount 100000 --currency CNY --reason "float" [--op-id …]
//   npm run ops -- account:show    --merchant m_… --account acc_42
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { jetstream } from '@nats-io/jetstream';
import type pg from 'pg';
import { CommandClient } from '../engine/client/index.ts';
import { loadConfigOrExit, type Config } from '../engine/config.ts';
import { connectNats, pgPool } from '../engine/infra.ts';
import { createMerchant } from '../engine/merchants/index.ts';
import { PROTOCOL_VERSION } from '../engine/protocol/commands.ts';
import type { Reply } from '../engine/protocol/events.ts';
import { newCommandId } from '../engine/protocol/ids.ts';
import { currencySchema, type Currency } from '../engine/protocol/money.ts';
import { names } from '../engine/protocol/subjects.ts';
import { localEnv } from './local-env.ts';

export const OPS_REPLY_TIMEOUT_MS = 10_000;

export class OpsError extends Error {
  override name = 'OpsError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

function expectOk(reply: Reply | null, what: string): Extract<Reply, { ok: true }> {
  if (!reply) throw new OpsError(`${what}: the engine did not answer within ${OPS_REPLY_TIMEOUT_MS} ms (the command is queued and will be applied)`);
  if (!reply.ok) throw new OpsError(`${what}: ${reply.code}: ${reply.message}`);
  return reply;
}

async function send(client: CommandClient, cmd: Parameters<CommandClient['send']>[0]): Promise<Reply | null> {
  const r = await client.send(cmd, OPS_REPLY_TIMEOUT_MS);
  return r.kind === 'reply' ? r.reply : null;
}

export async function createAccount(client: CommandClient, merchantId: string, accountId: string, currency: Currency, opId = newCommandId()) {
  const reply = await send(client, {
    v: PROTOCOL_VERSION, type: 'account.create', cmd_id: opId, merchant_id: merchantId, ts_ms: Date.now(), account_id: accountId, currency,
  });
  return expectOk(reply, 'account:create').account;
}

export async function creditAccount(
  client: CommandClient, merchantId: string, accountId: string, amount: number, currency: Currency, reason: string, opId = newCommandId(),
) {
  const reply = await send(client, {
    v: PROTOCOL_VERSION, type: 'account.credit', cmd_id: opId, merchant_id: merchantId, ts_ms: Date.now(),
    account_id: accountId, amount, currency, reason,
  });
  return expectOk(reply, 'account:credit').account;
}

export async function ledgerBalance(pool: pg.Pool, merchantId: string, ledgerAccount: string): Promise<number> {
  const r = await pool.query<{ balance: number | null }>(
    'SELECT sum(amount)::bigint AS balance FROM postings WHERE merchant_id = $1 AND ledger_account = $2',
    [merchantId, ledgerAccount],
  );
  return r.rows[0]?.balance ?? 0;
}

/** Connections for the CLI: a command client and a pool, closed by `close`. */
export async function opsSession(config: Config) {
  const nc = await connectNats(config, 'ops');
  const client = new CommandClient(nc, jetstream(nc), names(config.namespace, config.shardCount));
  client.start();
  const pool = pgPool(config, 2);
  return {
    client,
    pool,
    async close() {
      client.stop();
      await nc.drain();
      await pool.end();
    },
  };
}

async function cli(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' }, id: { type: 'string' }, 'max-amount': { type: 'string' }, merchant: { type: 'string' },
      account: { type: 'string' }, currency: { type: 'string', default: 'CNY' }, amount: { type: 'string' },
      reason: { type: 'string' }, 'op-id': { type: 'string' },
    },
  });
  const need = (k: keyof typeof values): string => {
    const v = values[k];
    if (typeof v !== 'string' || v === '') throw new OpsError(`--${k} is required`);
    return v;
  };
  const intArg = (k: 'amount' | 'max-amount'): number => {
    const s = need(k);
    if (!/^[1-9]\d{0,14}$/.test(s)) throw new OpsError(`--${k} must be a positive integer in minor units (fen), got ${s}`);
    return Number(s);
  };
  const config = loadConfigOrExit(localEnv());
  const session = await opsSession(config);
  try {
    switch (positionals[0]) {
      case 'merchant:create': {
        const m = await createMerchant(session.pool, config.masterKey, {
          name: need('name'),
          ...(values.id ? { id: values.id } : {}),
          ...(values['max-amount'] ? { paymentAmountMax: intArg('max-amount') } : {}),
        });
        // The secret is shown once, to the operator who asked for it; it is stored encrypted.
        console.log(JSON.stringify({ merchant_id: m.id, secret: m.secret }, null, 2));
        break;
      }
      case 'account:create': {
        const currency = currencySchema.parse(values.currency);
        console.log(JSON.stringify(await createAccount(session.client, need('merchant'), need('account'), currency, values['op-id']), null, 2));
        break;
      }
      case 'account:credit': {
        const currency = currencySchema.parse(values.currency);
        const opId = values['op-id'] ?? newCommandId();
        console.error(`op id ${opId} (pass --op-id ${opId} to retry this exact credit safely)`);
        const acct = await creditAccount(session.client, need('merchant'), need('account'), intArg('amount'), currency, need('reason'), opId);
        console.log(JSON.stringify(acct, null, 2));
        break;
      }
      case 'account:show': {
        const merchant = need('merchant');
        const account = need('account');
        const available = await ledgerBalance(session.pool, merchant, `wallet:${account}:available`);
        const held = await ledgerBalance(session.pool, merchant, `wallet:${account}:held`);
        console.log(JSON.stringify({ account_id: account, ledger: { available, held } }, null, 2));
        break;
      }
      default:
        throw new OpsError(`unknown command ${positionals[0] ?? '(none)'}; see the header of scripts/ops.ts`);
    }
  } finally {
    await session.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  cli(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof OpsError ? `ops: ${err.message}` : err);
    process.exit(1);
  });
}
