// Where the CPU went during a scenario, from /proc: our children by pid, the generator (this
// process), the shared servers by command name (nats-server, redis-server, every postgres
// backend), and the rest of the machine. In cores: CPU seconds / wall seconds. Linux only; the
// servers are shared with whoever else uses them at the time, which the "other" figure hints at.
import { readdirSync, readFileSync } from 'node:fs';
import { listenOverflows as readListenOverflows } from '../../ingress/load-report.ts';

const TICKS_PER_S = 100; // USER_HZ on Linux
const SERVER_COMMS = ['nats-server', 'redis-server', 'postgres'] as const;

type Snapshot = { atMs: number; total: number; byName: Map<string, number> };

function procTicks(pid: number | string): { comm: string; ticks: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    return { comm, ticks: Number(f[11]) + Number(f[12]) }; // utime + stime
  } catch {
    return null;
  }
}

function machineTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait
  return (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
}

/** All pids whose parent chain reaches `root` (node:cluster workers of the naive server). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out = [root];
  for (const [pid] of parent) {
    let p = parent.get(pid);
    for (let hops = 0; p !== undefined && p > 1 && hops < 16; hops++) {
      if (p === root) {
        out.push(pid);
        break;
      }
      p = parent.get(p);
    }
  }
  return out;
}

export function cpuSnapshot(ours: Record<string, number>): Snapshot {
  const byName = new Map<string, number>();
  for (const [name, pid] of Object.entries(ours)) {
    let t = 0;
    for (const p of descendants(pid)) t += procTicks(p)?.ticks ?? 0;
    byName.set(name, t);
  }
  byName.set('generator', procTicks(process.pid)?.ticks ?? 0);
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = procTicks(d);
    if (s && (SERVER_COMMS as readonly string[]).includes(s.comm)) byName.set(s.comm, (byName.get(s.comm) ?? 0) + s.ticks);
  }
  return { atMs: performance.now(), total: machineTicks(), byName };
}

/** Cores used per process group between two snapshots, plus `other` and `machine`. */
export function cpuBetween(a: Snapshot, b: Snapshot): Record<string, number> {
  const wallS = (b.atMs - a.atMs) / 1000;
  const out: Record<string, number> = {};
  let accounted = 0;
  for (const [name, t] of b.byName) {
    // A process that ended (a postgres backend) drops out; clamp instead of going negative.
    const used = Math.max(0, t - (a.byName.get(name) ?? 0)) / TICKS_PER_S;
    accounted += used;
    out[name] = Math.round((used / wallS) * 100) / 100;
  }
  const machine = (b.total - a.total) / TICKS_PER_S;
  out.other = Math.round((Math.max(0, machine - accounted) / wallS) * 100) / 100;
  out.machine = Math.round((machine / wallS) * 100) / 100;
  return out;
}

/**
 * Waits (at most `waitMsMax`) until the whole machine is quiet — under `busyCoresMax` cores busy
 * over 2 s — so a scenario does not start while someone else's test run owns the CPU. Returns the
 * last busy figure seen (the run goes on anyway after the wait; each line reports `other`).
 */
export async function waitQuiet(waitMsMax: number, busyCoresMax = 0.3): Promise<number> {
  const deadline = Date.now() + waitMsMax;
  // No waiting asked for: one short look, only to report how busy the machine was.
  const sampleMs = waitMsMax > 0 ? 2000 : 500;
  for (;;) {
    const a = machineTicks();
    await new Promise((r) => setTimeout(r, sampleMs));
    const busy = (machineTicks() - a) / TICKS_PER_S / (sampleMs / 1000);
    if (busy <= busyCoresMax || Date.now() > deadline) return Math.round(busy * 100) / 100;
  }
}

/**
 * Connections the kernel dropped because a server's accept queue was full (TcpExt ListenOverflows,
 * machine-wide): the cause of ECONNRESET on requests sent over connections the server never took.
 */
export const listenOverflows = (): number => readListenOverflows() ?? 0;
