// Pipelined Redis writes for the rebuild: commands are queued on one pipeline and sent when it
// holds PIPELINE_COMMANDS_MAX of them (one round-trip per batch, bounded memory).
import type { ChainableCommander, Redis } from 'ioredis';

/** Commands per pipeline round-trip. */
export const PIPELINE_COMMANDS_MAX = 1_000;

export class RedisBatch {
  private readonly redis: Redis;
  private readonly max: number;
  private pipe: ChainableCommander | null = null;
  /** Commands sent so far (for the report). */
  sent = 0;

  constructor(redis: Redis, max = PIPELINE_COMMANDS_MAX) {
    if (max < 1) throw new Error('assertion: pipeline size must be positive');
    this.redis = redis;
    this.max = max;
  }

  /** Queues the commands `build` adds; sends the pipeline once it is full. */
  async add(build: (p: ChainableCommander) => void): Promise<void> {
    this.pipe ??= this.redis.pipeline();
    build(this.pipe);
    if (this.pipe.length >= this.max) await this.flush();
  }

  /** Sends what is queued; the first failed command fails the rebuild. */
  async flush(): Promise<void> {
    const p = this.pipe;
    if (!p || p.length === 0) return;
    this.pipe = null;
    this.sent += p.length;
    const replies = (await p.exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
  }
}
