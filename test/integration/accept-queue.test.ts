// acceptQueueDepth (ingress/load-report.ts) against the real kernel: connections a server has not
// accepted yet are counted from /proc/net/tcp (tcp6 for an IPv6 listener), and the load reports call
// the ingress's front door behind once enough wait. The server that must not accept is either this
// process with its event loop held busy, or a child that never turns its loop.
import { spawn } from 'node:child_process';
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { connectNats } from '../../engine/infra.ts';
import { BEHIND_RECENT_MS } from '../../engine/shards/intake.ts';
import { acceptQueueDepth, startLoadReports } from '../../ingress/load-report.ts';
import { testConfig, uniqueId } from '../helpers.ts';

const CONNECTIONS = 20;
let server: Server | null = null;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

async function listen(host: string): Promise<AddressInfo> {
  const s = createServer((socket) => socket.destroy());
  server = s;
  await new Promise<void>((r) => s.listen({ host, port: 0, backlog: 64 }, r));
  return s.address() as AddressInfo;
}

/** A child that opens `n` connections to host:port and keeps them open until killed. */
function connector(host: string, port: number, n: number) {
  const code = `const net=require('net');for(let i=0;i<${n};i++)net.connect(${port},${JSON.stringify(host)}).on('error',()=>{});setInterval(()=>{},1e3)`;
  return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
}

/** Holds this event loop (no accept runs) until the queue holds `want` or 10 s pass; the depths seen. */
function waitBlocking(port: number, ipv6: boolean, want: number): number[] {
  const seen: number[] = [];
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const d = acceptQueueDepth(port, ipv6);
    if (seen.at(-1) !== d) seen.push(d as number);
    if (d !== null && d >= want) break;
  }
  return seen;
}

describe('acceptQueueDepth', () => {
  it('an idle listener has an empty queue; connections not yet accepted are counted; accepted, they leave it', async () => {
    const { port } = await listen('127.0.0.1');
    expect(acceptQueueDepth(port, false)).toBe(0);
    const child = connector('127.0.0.1', port, CONNECTIONS);
    try {
      const seen = waitBlocking(port, false, CONNECTIONS);
      expect(seen.at(-1)).toBe(CONNECTIONS);
      // The event loop runs again: Node accepts them all.
      const deadline = Date.now() + 5_000;
      while (acceptQueueDepth(port, false) !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(acceptQueueDepth(port, false)).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('an IPv6 listener is read from tcp6', async () => {
    let address: AddressInfo;
    try {
      address = await listen('::1');
    } catch {
      // No IPv6 on this machine: the IPv4 test above covers the reading.
      expect(acceptQueueDepth(1, true) === null || acceptQueueDepth(1, true) === 0).toBe(true);
      return;
    }
    expect(acceptQueueDepth(address.port, true)).toBe(0);
    const child = connector('::1', address.port, CONNECTIONS);
    try {
      expect(waitBlocking(address.port, true, CONNECTIONS).at(-1)).toBe(CONNECTIONS);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a port nobody listens on is unknown (null), not an empty queue', async () => {
    const { port } = await listen('127.0.0.1');
    await new Promise<void>((r) => server?.close(() => r()));
    server = null;
    expect(acceptQueueDepth(port, false)).toBeNull();
  });
});

describe('load reports judge the front door by the accept queue', () => {
  it('calls onBehind while `behindAtQueue` connections wait, and not before', async () => {
    // The listener lives in a child whose event loop never turns: nothing is ever accepted there,
    // while this process's timers (the reports) run.
    const code = `const net=require('net');const s=net.createServer();s.listen({port:0,host:'127.0.0.1',backlog:512},()=>{process.stdout.write(s.address().port+'\\n');const end=Date.now()+20000;while(Date.now()<end){}})`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
    const sockets: ReturnType<typeof createConnection>[] = [];
    const registry = new Registry();
    const eluGauge = new Gauge({ name: 'test_elu', help: 'test', registers: [registry] });
    const acceptQueueGauge = new Gauge({ name: 'test_accept_queue', help: 'test', registers: [registry] });
    const behind: number[] = [];
    const nc = await connectNats(testConfig(), 'test-accept-queue');
    let reports: { stop: () => void } | null = null;
    try {
      const port = await new Promise<number>((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
      reports = startLoadReports(nc, `test.${uniqueId('load')}`, {
        eluGauge, acceptQueueGauge, behindAtQueue: 40, listening: () => ({ address: '127.0.0.1', family: 'IPv4', port }),
        onBehind: (forMs) => behind.push(forMs),
      });
      const open = (n: number) => { for (let i = 0; i < n; i++) sockets.push(createConnection(port, '127.0.0.1').on('error', () => undefined)); };
      open(30);
      await new Promise((r) => setTimeout(r, 400));
      expect((await acceptQueueGauge.get()).values[0]?.value).toBe(30);
      expect(behind).toEqual([]);
      open(20);
      await new Promise((r) => setTimeout(r, 400));
      expect((await acceptQueueGauge.get()).values[0]?.value).toBe(50);
      expect(behind.length).toBeGreaterThanOrEqual(2);
      expect(behind.every((ms) => ms === BEHIND_RECENT_MS)).toBe(true);
    } finally {
      reports?.stop();
      for (const s of sockets) s.destroy();
      child.kill('SIGKILL');
      await nc.close();
    }
  });
});
