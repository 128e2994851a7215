// The Postgres pool every process uses (engine/infra.ts pgPool) against the real server: an idle
// connection ended under it (Postgres restarted, an administrator terminated the backend) is
// dropped and replaced; it does not end the process. Without the pool's 'error' listener,
// node-postgres's 'error' event is unhandled, and vitest fails this file with it.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { pgPool } from '../../engine/infra.ts';
import { testConfig } from '../helpers.ts';

const config = testConfig();
const pool = pgPool(config, 2);
afterAll(() => pool.end());

describe('pgPool', () => {
  it('survives the backend of an idle connection being terminated, and queries again', async () => {
    const { pid } = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number };
    expect(pool.idleCount).toBe(1);
    const admin = new pg.Client({ connectionString: config.databaseUrl });
    await admin.connect();
    try {
      const r = await admin.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
      expect(r.rows[0]?.ok).toBe(true);
    } finally {
      await admin.end();
    }
    const deadline = Date.now() + 5_000;
    while (pool.totalCount > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    expect(pool.totalCount).toBe(0);
    const again = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(again.rows[0]?.pid).not.toBe(pid);
  });
});
