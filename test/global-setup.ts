// Brings up the local stack for the test run (or uses NATS_URL / REDIS_URL / DATABASE_URL),
// migrates the test database, and stops only what it started.
import type { TestProject } from 'vitest/node';
import { stackDown, stackUp } from '../scripts/stack.ts';
import { migrate } from '../scripts/migrate.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: { natsUrl: string; redisUrl: string; databaseUrl: string };
  }
}

export default async function setup(project: TestProject) {
  const log = (line: string) => console.log(`[stack] ${line}`);
  const info = await stackUp({ log });
  await migrate(info.testDatabaseUrl, log);
  project.provide('stack', { natsUrl: info.natsUrl, redisUrl: info.redisUrl, databaseUrl: info.testDatabaseUrl });
  return async () => {
    await stackDown(info.started, { log });
  };
}
