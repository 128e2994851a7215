// Operator commands. Merchants are configuration (written to Postgres); accounts and credits are
// money, so they go through the engine like any other command (ordered, idempotent, in the ledger).
//
//   npm run ops -- merchant:create --name "Demo shop" [--id m_demo] [--max-amount 5000000]
//   npm run ops -- account:create  --merchant m_… --account acc_42 --currency CNY
//   npm run ops -- account:credit  --merchant m_… --account acc_42 --amount 100000 --currency CNY --reason "float" [--op-id …]
//   npm run ops -- account:show    --merchant m_… --account acc_42
//   npm run ops -- risk:set        --merchant m_… [--daily-cap-cny 500000|off] [--daily-cap USD=100000|USD=off …]
//                                  [--velocity 20/60|off] [--device-accounts 3|off] [--unusual-hours 01:00-05:00[,…]|none] [--op-id …]
//   npm run ops -- risk:show       --merchant m_…
//   npm run ops -- blacklist:add|blacklist:remove --merchant m_… --user u_9 | --device d_77 | --ip 203.0.113.9 [--op-id …]
//   npm run ops -- webhooks parked [--merchant m_…] [--limit 100]
//   npm run ops -- webhooks resend <event id> | --all [--merchant m_…]
// Risk thresholds and the blacklist go through the engine too (ordered with the merchant's payments,
// logged as events, rebuildable); bad input is refused before anything is sent. See docs/RISK.md.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { CommandClient } from '../engine/client/index.ts';
import { loadConfigOrExit, type Config } from '../engine/config.ts';
import { connectNats, pgPool } from '../engine/infra.ts';
import { createMerchant } from '../engine/merchants/index.ts';
import { PROTOCOL_VERSION, riskBlacklistSchema, type CommandOf } from '../engine/protocol/commands.ts';
import type { Reply } from '../engine/protocol/events.ts';
import { newCommandId } from '../engine/protocol/ids.ts';
import { currencySchema, type Currency } from '../engine/protocol/money.ts';
import { names, type Names } from '../engine/protocol/subjects.ts';
import { isWebhookParkedError, listParked, resendAllParked, resendParked } from '../engine/webhooks/index.ts';
import { RISK_DEFAULTS } from '../engine/risk/rules.ts';
import { riskSettingsSchema, type BlacklistChange, type EffectiveRiskSettings, type RiskSettings } from '../engine/risk/settings.ts';
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
  const r = await client.send(cmd, OPS_REPLY_TIMEOUT_MS, { waitThroughBacklog: true });
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

export async function configureRisk(client: CommandClient, merchantId: string, settings: RiskSettings, opId = newCommandId()): Promise<EffectiveRiskSettings> {
  const reply = expectOk(await send(client, {
    v: PROTOCOL_VERSION, type: 'risk.configure', cmd_id: opId, merchant_id: merchantId, ts_ms: Date.now(), settings,
  }), 'risk:set');
  if (!reply.risk?.settings) throw new OpsError('risk:set: the engine answered without the settings');
  return reply.risk.settings;
}

export async function changeBlacklist(
  client: CommandClient, merchantId: string, action: 'add' | 'remove', kind: BlacklistChange['kind'], value: string, opId = newCommandId(),
): Promise<BlacklistChange> {
  const reply = expectOk(await send(client, {
    v: PROTOCOL_VERSION, type: 'risk.blacklist', cmd_id: opId, merchant_id: merchantId, ts_ms: Date.now(), action, kind, value,
  }), `blacklist:${action}`);
  if (!reply.risk?.blacklist) throw new OpsError(`blacklist:${action}: the engine answered without the change`);
  return reply.risk.blacklist;
}

const issuesOf = (issues: readonly { path: PropertyKey[]; message: string }[]) =>
  issues.map((i) => `${i.path.map(String).join('.') || '(settings)'}: ${i.message}`).join('; ');

const OFF = /^(?:off|none)$/i;

function intOf(flag: string, s: string): number {
  if (!/^\d{1,15}$/.test(s)) throw new OpsError(`--${flag} must be a whole number${flag.startsWith('daily-cap') ? ' of minor units (fen)' : ''} or off, got ${s}`);
  return Number(s);
}

export type RiskArgs = {
  'daily-cap-cny'?: string | undefined; 'daily-cap'?: string[] | undefined; velocity?: string | undefined;
  'device-accounts'?: string | undefined; 'unusual-hours'?: string | undefined;
};

/** risk:set flags → validated settings (zod); anything wrong is an OpsError naming the flag. */
export function riskSettingsFromArgs(a: RiskArgs): RiskSettings {
  const raw: Record<string, unknown> = {};
  const caps: Record<string, number | null> = {};
  const cap = (flag: string, currency: string, v: string) => { caps[currency] = OFF.test(v) ? null : intOf(flag, v); };
  if (a['daily-cap-cny'] !== undefined) cap('daily-cap-cny', 'CNY', a['daily-cap-cny']);
  for (const pair of a['daily-cap'] ?? []) {
    const m = /^([A-Z]{3})=(.+)$/.exec(pair);
    if (!m) throw new OpsError(`--daily-cap must be CUR=amount or CUR=off (e.g. USD=100000), got ${pair}`);
    cap('daily-cap', m[1] as string, m[2] as string);
  }
  if (Object.keys(caps).length > 0) raw.daily_caps = caps;
  if (a.velocity !== undefined) {
    const m = /^(\d{1,6})\/(\d{1,6})$/.exec(a.velocity);
    if (!m && !OFF.test(a.velocity)) throw new OpsError(`--velocity must be <payments>/<seconds> (e.g. 20/60) or off, got ${a.velocity}`);
    raw.velocity = m ? { max: Number(m[1]), window_s: Number(m[2]) } : null;
  }
  if (a['device-accounts'] !== undefined) {
    raw.device_accounts_max = OFF.test(a['device-accounts']) ? null : intOf('device-accounts', a['device-accounts']);
  }
  if (a['unusual-hours'] !== undefined) {
    const v = a['unusual-hours'];
    raw.unusual_hours = OFF.test(v) ? [] : v.split(',').map((w) => {
      const m = /^(\d{2}:\d{2})-(\d{2}:\d{2})$/.exec(w.trim());
      if (!m) throw new OpsError(`--unusual-hours must be HH:MM-HH:MM[,HH:MM-HH:MM…] (Asia/Shanghai) or none, got ${w}`);
      return { from: m[1], to: m[2] };
    });
  }
  if (Object.keys(raw).length === 0) {
    throw new OpsError('risk:set needs at least one of --daily-cap-cny, --daily-cap, --velocity, --device-accounts, --unusual-hours');
  }
  const parsed = riskSettingsSchema.safeParse(raw);
  if (!parsed.success) throw new OpsError(`risk:set: ${issuesOf(parsed.error.issues)}`);
  return parsed.data;
}

/** blacklist:add|remove flags → exactly one validated entry. */
export function blacklistEntryFromArgs(
  merchantId: string, action: 'add' | 'remove', a: { user?: string | undefined; device?: string | undefined; ip?: string | undefined },
): Pick<CommandOf<'risk.blacklist'>, 'kind' | 'value'> {
  const given = (['user', 'device', 'ip'] as const).filter((k) => a[k] !== undefined);
  if (given.length !== 1) throw new OpsError(`blacklist:${action} needs exactly one of --user, --device, --ip`);
  const kind = given[0] as 'user' | 'device' | 'ip';
  const value = a[kind] as string;
  const parsed = riskBlacklistSchema.safeParse({
    v: PROTOCOL_VERSION, type: 'risk.blacklist', cmd_id: 'cmd_check', merchant_id: merchantId, ts_ms: 1, action, kind, value,
  });
  if (!parsed.success) throw new OpsError(`blacklist:${action}: --${kind} ${JSON.stringify(value)}: ${issuesOf(parsed.error.issues)}`);
  return { kind, value };
}

export async function ledgerBalance(pool: pg.Pool, merchantId: string, ledgerAccount: string): Promise<number> {
  const r = await pool.query<{ balance: number | null }>(
    'SELECT sum(amount)::bigint AS balance FROM postings WHERE merchant_id = $1 AND ledger_account = $2',
    [merchantId, ledgerAccount],
  );
  return r.rows[0]?.balance ?? 0;
}

/** Parked webhooks shown by `webhooks parked` when no --limit is given, and the most it shows. */
export const WEBHOOKS_LIST_DEFAULT = 100;
export const WEBHOOKS_LIST_MAX = 10_000;

/** `webhooks parked`: deliveries that used up their retries, oldest first (docs/OPERATIONS.md "Webhooks"). */
export async function webhooksParked(nc: NatsConnection, n: Names, opts: { limit?: number; merchantId?: string } = {}) {
  const limit = opts.limit ?? WEBHOOKS_LIST_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > WEBHOOKS_LIST_MAX) throw new OpsError(`--limit must be 1-${WEBHOOKS_LIST_MAX}`);
  const parked = await listParked(jetstream(nc), await jetstreamManager(nc), n, { limit, ...(opts.merchantId && { merchantId: opts.merchantId }) });
  return parked.map((p) => ({
    id: p.job.id, type: p.job.type, merchant_id: p.job.merchant_id, url: p.job.url, attempts: p.attempts, last_error: p.last_error,
    resends: p.job.resends, queued_at: new Date(p.job.queued_at_ms).toISOString(), parked_at: new Date(p.parked_at_ms).toISOString(),
  }));
}

/** `webhooks resend`: queues parked deliveries again (same event id and body, a fresh schedule); returns their ids. */
export async function webhooksResend(nc: NatsConnection, n: Names, target: { id: string } | { all: true; merchantId?: string }): Promise<string[]> {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  if ('id' in target) {
    try {
      return [(await resendParked(js, jsm, n, target.id)).id];
    } catch (err) {
      if (isWebhookParkedError(err)) throw new OpsError(`webhooks resend: ${err.message}`, { cause: err });
      throw err;
    }
  }
  return resendAllParked(js, jsm, n, target.merchantId ? { merchantId: target.merchantId } : {});
}

/** Connections for the CLI: a command client and a pool, closed by `close`. */
export async function opsSession(config: Config) {
  const nc = await connectNats(config, 'ops');
  const client = new CommandClient(nc, jetstream(nc), names(config.namespace, config.shardCount));
  client.start();
  const pool = pgPool(config, 2);
  return {
    nc,
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
      'daily-cap-cny': { type: 'string' }, 'daily-cap': { type: 'string', multiple: true }, velocity: { type: 'string' },
      'device-accounts': { type: 'string' }, 'unusual-hours': { type: 'string' },
      user: { type: 'string' }, device: { type: 'string' }, ip: { type: 'string' },
      all: { type: 'boolean' }, limit: { type: 'string' },
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
  // Risk input is validated before anything connects: a bad flag changes nothing.
  const command = positionals[0] ?? '';
  const riskSettings = command === 'risk:set' ? riskSettingsFromArgs(values) : null;
  const blacklistAction = command === 'blacklist:add' ? 'add' : command === 'blacklist:remove' ? 'remove' : null;
  const entry = blacklistAction ? blacklistEntryFromArgs(need('merchant'), blacklistAction, values) : null;
  if (command.startsWith('risk:')) need('merchant');
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
      case 'risk:set': {
        const opId = values['op-id'] ?? newCommandId();
        console.error(`op id ${opId} (pass --op-id ${opId} to retry this exact change safely)`);
        const settings = await configureRisk(session.client, need('merchant'), riskSettings as RiskSettings, opId);
        console.log(JSON.stringify({ merchant_id: need('merchant'), settings }, null, 2));
        break;
      }
      case 'risk:show': {
        const merchant = need('merchant');
        const s = await session.pool.query<{ settings: EffectiveRiskSettings; updated_at: Date }>(
          'SELECT settings, updated_at FROM risk_settings WHERE merchant_id = $1', [merchant]);
        const bl = await session.pool.query<{ kind: string; value: string }>(
          'SELECT kind, value FROM risk_blacklist WHERE merchant_id = $1 AND listed ORDER BY kind, value LIMIT 1000', [merchant]);
        const row = s.rows[0];
        console.log(JSON.stringify({
          merchant_id: merchant,
          settings: row?.settings ?? RISK_DEFAULTS,
          source: row ? `configured ${row.updated_at.toISOString()}` : 'defaults (never configured)',
          blacklist: bl.rows.map((r) => `${r.kind}:${r.value}`),
        }, null, 2));
        break;
      }
      case 'blacklist:add':
      case 'blacklist:remove': {
        const e = entry as NonNullable<typeof entry>;
        const change = await changeBlacklist(session.client, need('merchant'), blacklistAction as 'add' | 'remove', e.kind, e.value, values['op-id']);
        console.log(JSON.stringify(change, null, 2));
        break;
      }
      case 'webhooks': {
        const n = names(config.namespace, config.shardCount);
        const merchantId = values.merchant;
        if (positionals[1] === 'parked') {
          if (values.limit !== undefined && !/^\d{1,6}$/.test(values.limit)) throw new OpsError(`--limit must be a whole number, got ${values.limit}`);
          const rows = await webhooksParked(session.nc, n, {
            ...(values.limit !== undefined && { limit: Number(values.limit) }), ...(merchantId && { merchantId }),
          });
          console.log(JSON.stringify(rows, null, 2));
        } else if (positionals[1] === 'resend') {
          const id = positionals[2];
          if ((id === undefined) === (values.all !== true)) throw new OpsError('webhooks resend needs exactly one of <event id> or --all');
          const ids = await webhooksResend(session.nc, n, id !== undefined ? { id } : { all: true, ...(merchantId && { merchantId }) });
          console.log(JSON.stringify({ resent: ids.length, ids }, null, 2));
        } else {
          throw new OpsError('webhooks needs parked or resend; see the header of scripts/ops.ts');
        }
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
