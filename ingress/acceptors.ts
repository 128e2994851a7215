// More than one accept a loop turn. Since libuv 1.45 (Node 20), a listening socket accepts ONE
// connection per event-loop turn (libuv/libuv#3696: "unix: don't accept() connections in a loop";
// level-triggered epoll reports it again next turn). An idle ingress turns thousands of times a
// second, so that costs nothing; a busy one turns every 20–100 ms, handling hundreds of requests a
// turn, and then accepts 10–50 connections a second while the kernel queues the rest. In the
// benchmark's 10× spike and at 2,400/s offered, 500–1,500 connections waited seconds in the accept
// queue (their requests unanswered, counted in p99), and beyond the queue the kernel reset them
// (ECONNRESET at the storefront) — strace showed exactly one accept4() after each epoll_pwait()
// (docs/BENCHMARKS.md, session 20).
//
// The remedy here: the same listening socket under more file descriptors. Each descriptor is its
// own libuv handle in the one event loop, so each turn accepts one connection per descriptor, and
// hands it to the HTTP server as if the server had accepted it. The descriptors are duplicates made
// the way node:cluster makes them, with public APIs only: the socket's handle goes to a short-lived
// child over IPC (SCM_RIGHTS) and comes back as a new descriptor (subprocess.send(message,
// sendHandle), server.listen(handle, backlog)). The child never listens: a raw handle
// ('net.Native') is not started on receipt, so it cannot take a connection; it closes its copy once
// sent back, and exits when the channel closes.
//
// With Node ≥ 22.12, several listeners with `reusePort` would do the same without the child; Node 20
// has no such option.
//
// Cost: a new connection wakes every descriptor's handle, one accepts and the others get EAGAIN
// (~1 µs each): with keep-alive connections, nothing per request.
import { spawn } from 'node:child_process';
import net from 'node:net';

/** Bounded: each is a descriptor and one accept4() per new connection. */
export const ACCEPTORS_MAX = 256;
/** The child must hand the descriptors back within this long, or the ingress goes on without them. */
export const ACCEPTORS_SETUP_MS = 10_000;

export class AcceptorsError extends Error {
  override name = 'AcceptorsError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isAcceptorsError = (err: unknown): err is AcceptorsError => err instanceof AcceptorsError;

// The child, in plain JavaScript (no loader): every handle received is sent back, then closed.
const ECHO_CHILD = `process.on('message', (m, h) => { if (h) process.send(m, h, () => h.close()); });
process.on('disconnect', () => process.exit(0));`;

type NativeHandle = object;

/** `count` new descriptors of the listening socket under `handle` (a libuv TCP handle), from a child. */
function duplicates(handle: NativeHandle, count: number): Promise<NativeHandle[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', ECHO_CHILD], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const got: NativeHandle[] = [];
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.connected) child.disconnect();
      if (err) {
        child.kill('SIGKILL');
        for (const h of got) (h as { close(): void }).close();
        reject(err);
      } else {
        resolve(got);
      }
    };
    const timer = setTimeout(() => finish(new AcceptorsError(`the descriptor child answered ${got.length} of ${count} within ${ACCEPTORS_SETUP_MS} ms`)), ACCEPTORS_SETUP_MS);
    child.on('message', (_m: unknown, h: unknown) => {
      if (!h) return;
      got.push(h as NativeHandle);
      if (got.length === count) finish(null);
    });
    child.on('error', (cause) => finish(new AcceptorsError('could not start the descriptor child', { cause })));
    child.on('exit', (code) => finish(new AcceptorsError(`the descriptor child exited (${String(code)}) after ${got.length} of ${count}`)));
    for (let i = 0; i < count; i++) {
      child.send('fd', handle as net.Server, (err) => {
        if (err) finish(new AcceptorsError('could not send the listening socket to the descriptor child', { cause: err }));
      });
    }
  });
}

/** count: descriptors added; accepted(): connections they took (the original descriptor's not counted). */
export type Acceptors = { count: number; accepted(): number; close(): void };

/**
 * Adds `count` acceptors to a listening `server`: each takes one more connection a loop turn and
 * emits it on `server` ('connection'), where node:http / node:tls handle it as their own. `backlog`
 * must be the server's: listen() on a descriptor sets the socket's queue length again.
 */
export async function addAcceptors(server: net.Server, count: number, backlog: number): Promise<Acceptors> {
  if (!Number.isInteger(count) || count < 0 || count > ACCEPTORS_MAX) throw new Error(`assertion: acceptors must be 0-${ACCEPTORS_MAX}`);
  if (count === 0) return { count: 0, accepted: () => 0, close() {} };
  // The listening socket's libuv handle: what node:cluster sends to its workers.
  const handle = (server as unknown as { _handle?: NativeHandle | null })._handle;
  if (!handle) throw new Error('assertion: addAcceptors on a server that is not listening');
  const handles = await duplicates(handle, count);
  let accepted = 0;
  const servers = await Promise.all(handles.map((h) => new Promise<net.Server>((resolve, reject) => {
    const s = new net.Server();
    s.on('connection', (socket: net.Socket) => {
      accepted++;
      server.emit('connection', socket);
    });
    s.once('error', reject);
    s.listen(h as never, backlog, () => {
      s.off('error', reject);
      resolve(s);
    });
  })));
  return {
    count,
    accepted: () => accepted,
    close() {
      for (const s of servers) s.close();
    },
  };
}
