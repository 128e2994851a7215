// Private redis-server and nats-server processes for the ingress tests that must count every key
// (the shared Redis holds millions: one SCAN of it takes seconds) or stop and restart a server
// (the shared ones serve other test files running in parallel). Each lives in its own tmp dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from '../helpers.ts';

const START_MS_MAX = 10_000;
const STOP_MS_MAX = 5_000;

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function stopProcess(p: ChildProcess | null): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill('SIGTERM');
  const killer = setTimeout(() => p.kill('SIGKILL'), STOP_MS_MAX);
  await exited;
  clearTimeout(killer);
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

export type PrivateServer = { url: string; port: number; stop(): Promise<void>; start(): Promise<void>; close(): Promise<void> };

function privateServer(kind: string, scheme: string, args: (port: number, dir: string) => string[]) {
  return async (): Promise<PrivateServer> => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), `peakpay-${kind}-`));
    let proc: ChildProcess | null = null;
    const server: PrivateServer = {
      url: `${scheme}://127.0.0.1:${port}`,
      port,
      async start() {
        // Running already: a second process could not bind the port, and the first would leak.
        if (proc && proc.exitCode === null && proc.signalCode === null) return;
        proc = spawn(kind, args(port, dir), { stdio: 'ignore' });
        await waitFor(`private ${kind}`, () => portOpen(port), START_MS_MAX);
      },
      async stop() {
        await stopProcess(proc);
        proc = null;
      },
      async close() {
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    await server.start();
    return server;
  };
}

export const startPrivateRedis = privateServer('redis-server', 'redis', (port, dir) => [
  '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
]);

/** JetStream keeps its store in the tmp dir, so a restarted server has the same streams. */
export const startPrivateNats = privateServer('nats-server', 'nats', (port, dir) => ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir]);

/** Every key of a namespace on a private Redis (cheap there: it holds only this test's keys). */
export async function namespaceKeys(redis: Redis, namespace: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of redis.scanStream({ match: `${namespace}:*`, count: 1000 })) keys.push(...(batch as string[]));
  return keys.sort();
}
