// How `npm run stack` tells what answers on the Redis port, against small TCP servers on
// ephemeral ports: a redis-server of ours loading a large AOF first accepts and says nothing for
// seconds (the base snapshot), then answers -LOADING; neither is another program.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { probeRedis } from '../../scripts/stack.ts';

const servers: Server[] = [];
const sockets: Socket[] = [];

/** A server that answers every connection's first bytes with `answer` (null: accepts, says nothing). */
async function fakeServer(answer: string | null): Promise<number> {
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    if (answer !== null) socket.once('data', () => socket.write(answer));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('stack: probing the Redis port', () => {
  it('up on +PONG, starting on -LOADING, foreign on anything else', async () => {
    expect(await probeRedis(await fakeServer('+PONG\r\n'))).toBe('up');
    expect(await probeRedis(await fakeServer('-LOADING Redis is loading the dataset in memory\r\n'))).toBe('starting');
    expect(await probeRedis(await fakeServer('HTTP/1.1 400 Bad Request\r\n\r\n'))).toBe('foreign');
  });

  it('silent, not foreign, when something accepts and says nothing', async () => {
    expect(await probeRedis(await fakeServer(null))).toBe('silent');
  });

  it('down when nothing listens', async () => {
    const port = await fakeServer(null);
    await new Promise((resolve) => (servers.pop() as Server).close(resolve));
    expect(await probeRedis(port)).toBe('down');
  });
});
