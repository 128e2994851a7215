// Rebuilds Redis from Postgres and the event log (engine/rebuild). Stop every engine first; the
// settlement consumer must keep running. See docs/OPERATIONS.md.
//
//   npm run rebuild                                   every merchant of the namespace
//   npm run rebuild -- --merchant m_a --merchant m_b  only these merchants
//   npm run rebuild -- --force                        even though shard leases look live
//   npm run rebuild -- --settle-timeout-ms 300000     wait longer for settlement to catch up
//
// Prints the counts per kind as JSON; exits 1 on failure (nothing is half-announced as done).
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '../engine/config.ts';
import { connectNats, connectRedis, pgPool } from '../engine/infra.ts';
import { isRebuildError, rebuildRedis, RebuildError, SETTLE_WAIT_MS_DEFAULT, type RebuildReport } from '../engine/rebuild/index.ts';
import { localEnv } from './local-env.ts';

export async function rebuildCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<RebuildReport> {
  const options = {
    merchant: { type: 'string', multiple: true },
    force: { type: 'boolean', default: false },
    'settle-timeout-ms': { type: 'string', default: String(SETTLE_WAIT_MS_DEFAULT) },
  } as const;
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof options }>>['values'];
  try {
    ({ values } = parseArgs({ args: argv, options }));
  } catch (err) {
    throw new RebuildError(`${(err as Error).message} (see the header of scripts/rebuild.ts)`);
  }
  const timeout = values['settle-timeout-ms'];
  if (!/^[1-9]\d{0,8}$/.test(timeout)) throw new RebuildError(`--settle-timeout-ms must be a positive integer (ms), got ${timeout}`);
  const config = loadConfigOrExit(localEnv(env));
  const nc = await connectNats(config, 'rebuild');
  const redis = connectRedis(config, 'rebuild');
  const pool = pgPool(config, 2);
  try {
    return await rebuildRedis(
      { nc, redis, pool },
      {
        config,
        ...(values.merchant ? { merchantIds: values.merchant } : {}),
        force: values.force,
        settleTimeoutMs: Number(timeout),
        log: (line) => console.error(`rebuild: ${line}`),
      },
    );
  } finally {
    await nc.drain().catch(() => undefined);
    redis.disconnect();
    await pool.end();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  rebuildCli(process.argv.slice(2)).then(
    (report) => console.log(JSON.stringify(report, null, 2)),
    (err: unknown) => {
      // A refusal or a bad argument is a sentence for the operator; anything else keeps its stack.
      console.error(isRebuildError(err) ? `rebuild: ${err.message}` : err);
      process.exit(1);
    },
  );
}
