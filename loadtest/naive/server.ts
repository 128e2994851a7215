// The naive stack a typical epay-style storefront runs today, as the benchmark's baseline:
// node:http + pg, one transaction per payment —
//   debit the buyer's wallet   UPDATE wallets SET available = available - $1 WHERE id = $2 AND available >= $1
//   credit the merchant        UPDATE merchants SET balance = balance + $1 WHERE id = $2   (one hot row per merchant)
//   insert the order           INSERT INTO orders …
// It checks the same HMAC signature as peakpay (same cost), but keeps no nonces and no
// idempotency records: out_trade_no's unique constraint is its only guard, as in the real thing.
//
//   NAIVE_DATABASE_URL=postgres://… NAIVE_SCHEMA=naive NAIVE_PORT=0 NAIVE_WORKERS=2 NAIVE_PG_POOL=16 tsx loadtest/naive/server.ts
// Prints {"listening":<port>} on stdout when ready. NAIVE_WORKERS > 1 runs node:cluster workers
// sharing the port (one per core, as a storefront would run it under pm2).
import cluster from 'node:cluster';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { parseAuthorization, sign, signatureMatches, timestampInWindow } from '../../ingress/signature.ts';
import { SCHEMA_NAME, walletId } from './schema.ts';

const BODY_BYTES_MAX = 16 * 1024;
const OUT_TRADE_NO = /^[A-Za-z0-9_-]{1,64}$/;
const ACCOUNT_ID = /^[A-Za-z0-9_-]{1,64}$/;

const env = process.env;
const databaseUrl = env.NAIVE_DATABASE_URL ?? 'postgres://peakpay@127.0.0.1:25432/peakpay';
const schema = env.NAIVE_SCHEMA ?? 'naive';
if (!SCHEMA_NAME.test(schema)) throw new Error(`NAIVE_SCHEMA must match ${SCHEMA_NAME}`);
const port = Number(env.NAIVE_PORT ?? 0);
const workers = Number(env.NAIVE_WORKERS ?? 1);
const poolSize = Number(env.NAIVE_PG_POOL ?? 16);

if (cluster.isPrimary && workers > 1) {
  let stopping = false;
  let listening = 0;
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork();
    w.on('message', (msg: { listening?: number }) => {
      if (msg.listening !== undefined && ++listening === workers) console.log(JSON.stringify({ listening: msg.listening }));
    });
  }
  cluster.on('exit', () => {
    if (!stopping) process.exit(1);
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      stopping = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
      setTimeout(() => process.exit(0), 200).unref();
    });
  }
} else {
  await serve();
}

type Answer = { status: number; body: unknown };

async function serve(): Promise<void> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, options: `-c search_path=${schema}` });
  // Merchants and their secrets, read once: a storefront caches them the same way.
  const secrets = new Map((await pool.query<{ id: string; secret: string }>('SELECT id, secret FROM merchants')).rows.map((r) => [r.id, r.secret]));

  async function pay(merchantId: string, body: Record<string, unknown>, idempotencyKey: string | undefined): Promise<Answer> {
    const { out_trade_no: otn, amount, currency, account_id: account } = body;
    if (typeof otn !== 'string' || !OUT_TRADE_NO.test(otn) || typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0
      || currency !== 'CNY' || body.method !== 'balance' || typeof account !== 'string' || !ACCOUNT_ID.test(account) || body.capture !== 'automatic') {
      return { status: 400, body: { code: 'validation.failed' } };
    }
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const debit = await client.query('UPDATE wallets SET available = available - $1 WHERE id = $2 AND available >= $1', [amount, walletId(merchantId, account)]);
      if (debit.rowCount !== 1) {
        await client.query('ROLLBACK');
        return { status: 409, body: { code: 'balance.insufficient' } };
      }
      await client.query('UPDATE merchants SET balance = balance + $1 WHERE id = $2', [amount, merchantId]);
      const order = await client.query<{ id: string }>(
        `INSERT INTO orders (merchant_id, out_trade_no, account_id, amount, currency, status, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, 'succeeded', $6) RETURNING id::text`,
        [merchantId, otn, account, amount, currency, idempotencyKey ?? null],
      );
      await client.query('COMMIT');
      return { status: 201, body: { id: `ord_${order.rows[0]?.id}`, merchant_id: merchantId, out_trade_no: otn, amount, currency, status: 'succeeded' } };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      if ((err as { code?: string }).code === '23505') return { status: 409, body: { code: 'payment.duplicate_out_trade_no' } };
      throw err;
    } finally {
      client.release();
    }
  }

  async function handle(req: http.IncomingMessage, raw: Buffer): Promise<Answer> {
    if (req.method === 'GET' && req.url === '/healthz') return { status: 200, body: { status: 'ok' } };
    if (req.method !== 'POST' || req.url !== '/v1/payments') return { status: 404, body: { code: 'route.not_found' } };
    const auth = parseAuthorization(req.headers.authorization ?? '');
    const secret = auth ? secrets.get(auth.merchant_id) : undefined;
    if (!auth || !secret || !timestampInWindow(auth.timestamp, Date.now())
      || !signatureMatches(sign(secret, 'POST', req.url, auth.timestamp, auth.nonce, raw), auth.signature)) {
      return { status: 401, body: { code: 'auth.invalid_signature' } };
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return { status: 400, body: { code: 'validation.failed' } };
    }
    if (typeof body !== 'object' || body === null) return { status: 400, body: { code: 'validation.failed' } };
    const key = req.headers['idempotency-key'];
    return pay(auth.merchant_id, body as Record<string, unknown>, typeof key === 'string' ? key : undefined);
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > BODY_BYTES_MAX) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      handle(req, Buffer.concat(chunks)).then(
        (a) => {
          const out = JSON.stringify(a.body);
          res.writeHead(a.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
        },
        (err: unknown) => {
          console.error(err);
          res.writeHead(500).end();
        },
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () => {
    const p = (server.address() as AddressInfo).port;
    if (cluster.isWorker) process.send?.({ listening: p });
    else console.log(JSON.stringify({ listening: p }));
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      server.close();
      server.closeAllConnections();
      void pool.end().finally(() => process.exit(0));
    });
  }
}
