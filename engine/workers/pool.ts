// The piscina pool for channel crypto. Thread count from measurement (docs/ARCHITECTURE.md):
// on 2 cores, one worker thread beside the event loop (which itself needs a core for NATS and
// Redis I/O); the queue is bounded so a flood of signatures waits instead of growing memory.
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { CryptoJob, CryptoResult, CryptoTask } from './tasks.ts';

export const CRYPTO_THREADS_DEFAULT = 1;
export const CRYPTO_QUEUE_MAX = 10_000;

export class CryptoPool {
  private readonly pool: Piscina<CryptoJob, CryptoResult | CryptoResult[]>;

  constructor(opts: { threads?: number } = {}) {
    const threads = opts.threads ?? CRYPTO_THREADS_DEFAULT;
    this.pool = new Piscina({
      filename: fileURLToPath(new URL('./tasks.ts', import.meta.url)),
      minThreads: threads,
      maxThreads: threads,
      maxQueue: CRYPTO_QUEUE_MAX,
      // The task module is TypeScript: workers need tsx's loader, which a process started by tsx
      // passes on; one started otherwise (a test runner) gets it added.
      execArgv: process.execArgv.some((a) => a.includes('tsx')) ? process.execArgv : [...process.execArgv, '--import', 'tsx'],
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
