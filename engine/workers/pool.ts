// The piscina pool for channel crypto. Thread count from measurement (docs/ARCHITECTURE.md):
// on 2 cores, one worker thread beside the event loop (which itself needs a core for NATS and
// Redis I/O); the queue is bounded so a flood of signatures waits instead of growing memory.
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { CryptoJob, CryptoResult, CryptoTask } from './tasks.ts';

export const CRYPTO_THREADS_DEFAULT = 1;
export const CRYPTO_QUEUE_MAX = 10_000;

/** Options that take the next argument as their value, kept with it (or joined to it by `=`). */
const LOADER_OPTIONS = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader', '--conditions', '-C']);
const LOADER_PREFIXES = [...LOADER_OPTIONS].filter((o) => o.startsWith('--')).map((o) => `${o}=`);

/**
 * What a worker thread is given of the process's execArgv: its module loaders and profiling
 * options. The task module is TypeScript, so workers need tsx's loader, which a process started by
 * tsx passes on; one started otherwise (a test runner) gets it added. V8's heap options
 * (scripts/node-flags.ts: every process starts with them) apply to the whole process, and
 * `new Worker` refuses them (ERR_WORKER_INVALID_EXEC_ARGV), so they, and anything else that is not
 * a loader or a profiler, stay out.
 */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i] as string;
    const next = execArgv[i + 1];
    if (LOADER_OPTIONS.has(arg) && next !== undefined) {
      kept.push(arg, next);
      i++;
    } else if (LOADER_PREFIXES.some((p) => arg.startsWith(p)) || arg.startsWith('--cpu-prof') || arg.startsWith('--heap-prof')) {
      kept.push(arg);
    }
  }
  return kept.some((a) => a.includes('tsx')) ? kept : [...kept, '--import', 'tsx'];
}

export class CryptoPool {
  private readonly pool: Piscina<CryptoJob, CryptoResult | CryptoResult[]>;

  constructor(opts: { threads?: number } = {}) {
    const threads = opts.threads ?? CRYPTO_THREADS_DEFAULT;
    this.pool = new Piscina({
      filename: fileURLToPath(new URL('./tasks.ts', import.meta.url)),
      minThreads: threads,
      maxThreads: threads,
      maxQueue: CRYPTO_QUEUE_MAX,
      execArgv: workerExecArgv(process.execArgv),
    });
  }

  run(task: CryptoTask): Promise<CryptoResult> {
    return this.pool.run(task) as Promise<CryptoResult>;
  }

  runBatch(tasks: CryptoTask[]): Promise<CryptoResult[]> {
    return this.pool.run(tasks) as Promise<CryptoResult[]>;
  }

  get threads(): number {
    return this.pool.threads.length;
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}
