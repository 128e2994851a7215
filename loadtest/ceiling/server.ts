// The ceiling: a node:http server that only reads and parses the same JSON body and answers 202.
// Nothing else on this machine can answer the benchmark's requests faster, so it bounds the others.
//   CEILING_PORT=0 tsx loadtest/ceiling/server.ts        prints {"listening":<port>} when ready
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const BODY_BYTES_MAX = 16 * 1024;
const ACCEPTED = JSON.stringify({ status: 'accepted' });

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > BODY_BYTES_MAX) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (typeof body !== 'object' || body === null || typeof (body as { amount?: unknown }).amount !== 'number') {
      res.writeHead(400).end();
      return;
    }
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': ACCEPTED.length }).end(ACCEPTED);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.CEILING_PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: (server.address() as AddressInfo).port }));
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
