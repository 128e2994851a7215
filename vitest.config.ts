import { defineConfig } from 'vitest/config';

// Integration and Lua tests talk to real nats-server, redis-server and PostgreSQL. The global
// setup brings up the local stack (reusing servers already running, or the ones named by
// NATS_URL / REDIS_URL / DATABASE_URL) and stops only what it started.
//
// Files whose assertions depend on timing (lease takeover after a SIGKILL, breaker pauses,
// token-bucket refills, Prometheus scrape windows) run last, one at a time, once the parallel
// files are done: on two cores a neighbour's burst can stall them past their deadlines.
const ALONE = [
  'test/integration/crash.test.ts',
  'test/integration/monitoring.test.ts',
  'test/integration/ingress-protection.test.ts',
  'test/integration/channel-payments.test.ts',
];

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        // Two cores: files run in parallel in two forks at most.
        test: { name: 'parallel', include: ['test/**/*.test.ts'], exclude: ALONE, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'alone', include: ALONE, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
