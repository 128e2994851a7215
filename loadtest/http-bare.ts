// The bare baseline of `npm run bench:http`: a node:http server that only reads and parses the
// same JSON body the ingress gets and answers 202. No framework, no auth, no Redis, no NATS: what
// one Node process on this machine can answer at most, so the ingress is measured against it.
//   node --import tsx loadtest/http-bare.ts      prints {"listening":<port>} when ready
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** The same body limit as the ingress, so a runaway client cannot grow memory without bound. */
const BODY_BYTES_MAX = 16 * 1024;
let seq = 0;

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > BODY_BYTES_MAX) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    let body: { amount?: unknown; out_trade_no?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (typeof body.amount !== 'number' || typeof body.out_trade_no !== 'string') {
      res.writeHead(422).end();
      return;
    }
    const out = JSON.stringify({ id: `pay_${++seq}`, out_trade_no: body.out_trade_no, status: 'processing' });
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
  });
});
server.listen(Number(process.env.BARE_PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: (server.address() as AddressInfo).port }));
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
