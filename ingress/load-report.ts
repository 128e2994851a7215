// Reports this ingress's event-loop utilisation to the engines every LOAD_REPORT_EVERY_MS, on core
// NATS (no stream: a report is worth nothing a second later), with how many connections wait in
// its listening socket's accept queue and how many the kernel dropped meanwhile because an accept
// queue was full. An engine started with PEAKPAY_ENGINE_YIELD_ELU_PERCENT paces its pulls while an
// ingress reports itself saturated and falling behind its new connections
// (engine/shards/intake.ts). Published whatever the engines' setting: ten small messages a second.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Gauge } from 'prom-client';
import { ACCEPT_QUEUE_BEHIND_MIN, BEHIND_RECENT_MS, encodeIngressLoad, LOAD_REPORT_EVERY_MS } from '../engine/shards/intake.ts';

/**
 * Connections the kernel dropped because a server's accept queue was full (TcpExt ListenOverflows,
 * machine-wide, counted since boot); null where /proc/net/netstat cannot be read (not Linux).
 */
export function listenOverflows(): number | null {
  let text: string;
  try {
    text = readFileSync('/proc/net/netstat', 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = (lines[i] as string).split(/\s+/);
    const vals = (lines[i + 1] as string).split(/\s+/);
    const at = names.indexOf('ListenOverflows');
    if (names[0] === 'TcpExt:' && at > 0) return Number(vals[at]);
  }
  return null;
}

/** Lines of /proc/net/tcp read at most to find a listening socket: the listeners come first, a machine has tens. */
const LISTEN_LINES_MAX = 1_024;
/** One line of /proc/net/tcp: the kernel pads each to 149 characters and a newline (tcp6's are longer). */
const PROC_NET_LINE_BYTES = 150;
const procLine = Buffer.alloc(PROC_NET_LINE_BYTES);

/**
 * Connections waiting in the accept queue of the socket listening on `port`: completed by the
 * kernel, not yet accepted by the server. A server that keeps up accepts them every event-loop turn,
 * so a queue that grows means the server is falling behind its arrivals, seconds before the queue is
 * full and the kernel drops them (ListenOverflows). null where it cannot be read (not Linux, or the
 * socket is not found).
 *
 * From /proc/net/tcp (tcp6 for an IPv6 listener): rx_queue of a LISTEN line is the accept queue's
 * length. The kernel lists listening sockets first, and it builds the file only as far as it is
 * read: read in line-sized pieces and stopped at our line, it costs ~30 µs; read to the end, ~600 µs
 * however few sockets there are (it walks every bucket of the connection table). The line is found
 * by port alone: another process listening on the same port at another address would be read
 * instead (an ingress does not share its port that way).
 */
export function acceptQueueDepth(port: number, ipv6: boolean): number | null {
  let fd: number;
  try {
    fd = openSync(ipv6 ? '/proc/net/tcp6' : '/proc/net/tcp', 'r');
  } catch {
    return null;
  }
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let pending = '';
  let lines = 0;
  try {
    while (lines <= LISTEN_LINES_MAX) {
      const n = readSync(fd, procLine, 0, PROC_NET_LINE_BYTES, null);
      if (n <= 0) return null;
      pending += procLine.toString('latin1', 0, n);
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const fields = pending.slice(0, nl).trim().split(/\s+/);
        pending = pending.slice(nl + 1);
        lines++;
        if (fields[0] === 'sl') continue; // the header
        // sl local_address rem_address st tx_queue:rx_queue …; state 0A is LISTEN
        if (fields[3] !== '0A') return null; // past the listeners
        if (fields[1]?.endsWith(portHex)) {
          const rx = Number.parseInt(fields[4]?.split(':')[1] ?? '', 16);
          return Number.isInteger(rx) && rx >= 0 ? rx : null;
        }
      }
    }
    return null;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** Where the server listens, once it does (an address object of a TCP server); null before, or for a pipe. */
export type ListenAddress = () => AddressInfo | string | null;

export type LoadReportOptions = {
  /** Set to the ELU of each window. */
  eluGauge: Gauge;
  /** Set to the connections waiting in the accept queue, where known. */
  acceptQueueGauge?: Gauge;
  /** Where the server listens (its accept queue is read from there); absent: not reported. */
  listening?: ListenAddress;
  /** How many connections waiting in the accept queue mean the front door is behind (0: never). */
  behindAtQueue?: number;
  /**
   * Called at each report that finds `behindAtQueue` connections or more waiting, with how long the
   * front door counts as behind (BEHIND_RECENT_MS): the ingress answers at the PubAck meanwhile.
   */
  onBehind?: (forMs: number) => void;
};

export function startLoadReports(nc: NatsConnection, subject: string, opts: LoadReportOptions): { ingressId: string; stop: () => void } {
  const listening = opts.listening ?? (() => null);
  const behindAtQueue = opts.behindAtQueue ?? ACCEPT_QUEUE_BEHIND_MIN;
  const ingressId = `ingress-${process.pid}-${randomBytes(4).toString('hex')}`;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let lastAtMs = performance.now();
  let lastOverflows = listenOverflows();
  const timer = setInterval(() => {
    const overflows = listenOverflows();
    const dropped = overflows === null || lastOverflows === null ? null : Math.max(0, overflows - lastOverflows);
    lastOverflows = overflows;
    const now = performance.eventLoopUtilization();
    const nowMs = performance.now();
    const elu = Math.min(1, Math.max(0, performance.eventLoopUtilization(now, last).utilization));
    const windowMs = Math.max(1, Math.round(nowMs - lastAtMs));
    last = now;
    lastAtMs = nowMs;
    opts.eluGauge.set(elu);
    const address = listening();
    const waiting = address !== null && typeof address === 'object' ? acceptQueueDepth(address.port, address.family === 'IPv6') : null;
    if (waiting !== null) opts.acceptQueueGauge?.set(waiting);
    // Where the queue cannot be read (not Linux), the front door is never judged behind.
    if (waiting !== null && behindAtQueue > 0 && waiting >= behindAtQueue) opts.onBehind?.(BEHIND_RECENT_MS);
    // A closed or reconnecting connection throws or buffers; a lost report only delays a decision by a tick.
    try {
      nc.publish(subject, encodeIngressLoad({ v: 1, ingress_id: ingressId, elu, window_ms: windowMs, ...(dropped !== null && { listen_overflows: dropped }),
        ...(waiting !== null && { accept_queue: waiting }) }));
    } catch {
      // closed: the ingress is stopping
    }
  }, LOAD_REPORT_EVERY_MS);
  timer.unref();
  return { ingressId, stop: () => clearInterval(timer) };
}
