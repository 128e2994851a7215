// addAcceptors (ingress/acceptors.ts) against the real kernel and Node's real event loop. The control
// shows why it exists: with its event loop held while connections queue, a listener accepts one
// connection a loop turn (libuv ≥ 1.45). With extra descriptors of the same socket, each turn takes
// one a descriptor; an HTTP server answers on connections they took; closing leaves nothing
// listening and no child behind.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { addAcceptors, ACCEPTORS_MAX, type Acceptors } from '../../ingress/acceptors.ts';
import { acceptQueueDepth } from '../../ingress/load-report.ts';

const CONNECTIONS = 40;
const BACKLOG = 256;
let server: Server | null = null;
let acceptors: Acceptors | null = null;
const sockets: Socket[] = [];
afterEach(async () => {
  acceptors?.close();
  acceptors = null;
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

async function listen(s: Server): Promise<number> {
  server = s;
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0, backlog: BACKLOG }, r));
  return (s.address() as AddressInfo).port;
}

/** A child that opens `n` connections to the port and keeps them open until killed. */
function connector(port: number, n: number) {
  const code = `const net=require('net');for(let i=0;i<${n};i++)net.connect(${port},'127.0.0.1').on('error',()=>{});setInterval(()=>{},1e3)`;
  return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
}

/**
 * Holds the event loop until `n` connections wait in the accept queue, then lets it turn, counting
 * turns with a chain of setImmediate: the number of distinct turns in which connections arrived.
 */
async function turnsToAccept(s: Server, port: number, n: number): Promise<{ queued: number; turns: number; accepted: number }> {
  let turn = 0;
  const turnsSeen = new Set<number>();
  let accepted = 0;
  s.on('connection', (socket: Socket) => {
    sockets.push(socket);
    turnsSeen.add(turn);
    accepted++;
  });
  const child = connector(port, n);
  try {
    let queued = 0;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && queued < n) queued = acceptQueueDepth(port, false) ?? 0;
    const done = new Promise<void>((resolve) => {
      const tick = () => {
        turn++;
        if (accepted >= n || turn > 10 * n) resolve();
        else setImmediate(tick);
      };
      setImmediate(tick);
    });
    await done;
    return { queued, turns: turnsSeen.size, accepted };
  } finally {
    child.kill('SIGKILL');
  }
}

/** Children of this process still running the descriptor child's code. */
function echoChildren(): number {
  let n = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes("process.on('disconnect'")) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

describe('addAcceptors', () => {
  it('control: a listener alone accepts one queued connection a loop turn', async () => {
    const s = createServer();
    const port = await listen(s);
    const r = await turnsToAccept(s, port, CONNECTIONS);
    expect(r.queued).toBe(CONNECTIONS);
    expect(r.accepted).toBe(CONNECTIONS);
    expect(r.turns).toBeGreaterThanOrEqual(CONNECTIONS - 2);
  });

  it('with 7 more descriptors, the queue is taken 8 a turn', async () => {
    const s = createServer();
    const port = await listen(s);
    acceptors = await addAcceptors(s, 7, BACKLOG);
    expect(acceptors.count).toBe(7);
    const r = await turnsToAccept(s, port, CONNECTIONS);
    expect(r.queued).toBe(CONNECTIONS);
    expect(r.accepted).toBe(CONNECTIONS);
    expect(r.turns).toBeLessThanOrEqual(CONNECTIONS / 8 + 2);
    expect(acceptors.accepted()).toBeGreaterThan(0);
  });

  it('an HTTP server answers on the connections they take; closed, nothing listens and no child is left', async () => {
    const s = createHttpServer((_req, res) => res.end('ok'));
    const port = await listen(s);
    acceptors = await addAcceptors(s, 4, BACKLOG);
    // The child exits once its channel closes, just after the descriptors came back.
    const deadline = Date.now() + 5_000;
    while (echoChildren() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(echoChildren()).toBe(0);
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } });
      expect(await res.text()).toBe('ok');
    }
    expect(acceptors.accepted()).toBeGreaterThan(0);
    acceptors.close();
    acceptors = null;
    await new Promise<void>((r) => s.close(() => r()));
    server = null;
    const refused = await new Promise<string>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.on('connect', () => { c.destroy(); resolve('connected'); });
      c.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
  });

  it('the listen backlog stays the one given (listen() on a descriptor sets it again)', async () => {
    const s = createServer();
    server = s;
    await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0, backlog: 8 }, r));
    const port = (s.address() as AddressInfo).port;
    acceptors = await addAcceptors(s, 2, 8);
    const child = connector(port, 30);
    try {
      // Held for 1.5 s: the kernel queues at most backlog + 1 connections (Node's default, 511, would hold all 30).
      let depth = 0;
      const until = Date.now() + 1_500;
      while (Date.now() < until) depth = Math.max(depth, acceptQueueDepth(port, false) ?? 0);
      expect(depth).toBeGreaterThanOrEqual(8);
      expect(depth).toBeLessThanOrEqual(9);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses a count out of bounds and a server that does not listen (programmer errors)', async () => {
    await expect(addAcceptors(createServer(), 1, BACKLOG)).rejects.toThrow(/not listening/);
    const s = createServer();
    await listen(s);
    await expect(addAcceptors(s, ACCEPTORS_MAX + 1, BACKLOG)).rejects.toThrow(/acceptors must be/);
    await expect(addAcceptors(s, -1, BACKLOG)).rejects.toThrow(/acceptors must be/);
    expect((await addAcceptors(s, 0, BACKLOG)).count).toBe(0);
  });
});
