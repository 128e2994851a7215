// Child processes of the benchmark: each server under test runs in its own process(es), started
// with tsx like `npm start` starts them, stopped by pid (SIGTERM, then SIGKILL after a bound).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../scripts/node-flags.ts';

export const PROJECT_ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const STOP_WAIT_MS_MAX = 25_000;
export const READY_WAIT_MS_MAX = 60_000;

export type Proc = { name: string; pid: number; child: ChildProcess; exited: Promise<number | null>; stop: () => Promise<void> };

export class ProcError extends Error {
  override name = 'ProcError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
export const isProcError = (err: unknown): err is ProcError => err instanceof ProcError;

/** Every child still running: killed when this process dies, however it dies (killChildren). */
const living = new Set<ChildProcess>();

/**
 * SIGTERM to every child still running, now (synchronous, so it works from an exit handler). They
 * lead sessions of their own, so the terminal's signals do not reach them.
 */
export function killChildren(): void {
  for (const c of living) c.kill('SIGTERM');
}

export function spawnTs(name: string, entry: string, env: NodeJS.ProcessEnv, opts: { cpuProfDir?: string; quiet?: boolean } = {}): Proc {
  const prof = opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${join(opts.cpuProfDir, name)}`] : [];
  if (opts.cpuProfDir) mkdirSync(join(opts.cpuProfDir, name), { recursive: true });
  // For A/B runs of V8 flags: BENCH_NODE_FLAGS for every process, BENCH_NODE_FLAGS_<NAME> (e.g.
  // _ENGINE) for one; later flags win, so either can override NODE_FLAGS.
  const extra = [process.env.BENCH_NODE_FLAGS, process.env[`BENCH_NODE_FLAGS_${name.toUpperCase()}`]]
    .flatMap((v) => (v ?? '').split(' ')).filter((f) => f !== '');
  const child = spawn(process.execPath, [...NODE_FLAGS, ...extra, ...prof, '--import', 'tsx', join(PROJECT_ROOT, entry)], {
    // A session of its own, as `npm start` gives each service (scripts/start.ts, run): on Linux the
    // CPU is divided between sessions first. Ctrl-C reaches the benchmark, whose exit stops it.
    // BENCH_SAME_SESSION=1: in the benchmark's session, for A/B runs (docs/BENCHMARKS.md, session 21).
    env, stdio: ['ignore', 'pipe', opts.quiet ? 'ignore' : 'inherit'], cwd: PROJECT_ROOT, detached: process.env.BENCH_SAME_SESSION !== '1',
  });
  if (child.pid === undefined) throw new ProcError(`${name}: could not start ${entry}`);
  living.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    living.delete(child);
    resolve(code);
  }));
  return {
    name,
    pid: child.pid,
    child,
    exited,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_WAIT_MS_MAX);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits for the `{"listening":port}` line the naive and ceiling servers print; other lines pass through. */
export function listeningPort(p: Proc): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new ProcError(`${p.name}: not listening after ${READY_WAIT_MS_MAX} ms`)), READY_WAIT_MS_MAX);
    void p.exited.then((code) => reject(new ProcError(`${p.name} exited (${code}) before listening`)));
    const stdout = p.child.stdout;
    if (!stdout) return reject(new ProcError(`${p.name}: no stdout`));
    createInterface({ input: stdout }).on('line', (line) => {
      const m = /^\{"listening":(\d+)\}$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      } else {
        process.stderr.write(`[${p.name}] ${line}\n`);
      }
    });
  });
}

/** Passes a process's stdout through to our stderr (our stdout carries the JSON result lines). */
export function forwardStdout(p: Proc): void {
  p.child.stdout?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export async function waitHttpOk(url: string, what: string, timeoutMs = READY_WAIT_MS_MAX): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new ProcError(`${what}: ${url} not OK after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
