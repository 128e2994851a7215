// Applies migrations/ with node-pg-migrate (plain SQL files, one transaction, advisory-locked so
// two processes starting at once do not race). `npm run migrate` or imported by start and tests.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

export async function migrate(databaseUrl: string, log: (line: string) => void = () => undefined): Promise<string[]> {
  const ran = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    migrationsTable: 'pgmigrations',
    direction: 'up',
    count: Infinity,
    singleTransaction: true,
    advisoryLockMode: 'wait',
    log: () => undefined,
  } as Parameters<typeof runner>[0]);
  for (const m of ran) log(`migrated ${m.name}`);
  return ran.map((m) => m.name);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { loadConfigOrExit } = await import('../engine/config.ts');
  const { databaseUrl } = loadConfigOrExit({ PEAKPAY_MASTER_KEY: '0'.repeat(64), ...process.env });
  const names = await migrate(databaseUrl, console.log);
  console.log(names.length ? `applied ${names.length} migration(s)` : 'database is up to date');
}
