import { defineConfig } from 'vitest/config';

// Integration and Lua tests talk to real nats-server, redis-server and PostgreSQL. The global
// setup brings up the local stack (reusing servers already running, or the ones named by
// NATS_URL / REDIS_URL / DATABASE_URL) and stops only what it started.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files run in parallel in two forks at most; the heavy crash tests are serial inside.
    maxWorkers: 2,
    pool: 'forks',
  },
});
