// acceptQueueDepth (ingress/load-report.ts) against the real kernel: connections a server has not
// accepted yet are counted from /proc/net/tcp (tcp6 for an IPv6 listener). The test's own event
// loop is held busy, so Node accepts nothing while a child process connects.
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { acceptQueueDepth } from '../../ingress/load-report.ts';

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
