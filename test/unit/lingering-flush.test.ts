// lingeringFlush: one flush at a time; a batch waits at most lingerMs after its first item.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { lingeringFlush } from '../../engine/lingering-flush.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('lingeringFlush', () => {
  it('flushes lingerMs after the first arm, however often it is armed meanwhile', async () => {
    const flush = vi.fn(async () => undefined);
    const f = lingeringFlush(flush, 20, () => undefined);
    f.arm();
    await vi.advanceTimersByTimeAsync(15);
    f.arm(); // a later item does not push the deadline back
    await vi.advanceTimersByTimeAsync(4);
    expect(flush).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(flush).toHaveBeenCalledTimes(1);
  });

  it('now() cancels the timer; cancel() stops it without a flush', async () => {
    const flush = vi.fn(async () => undefined);
    const f = lingeringFlush(flush, 20, () => undefined);
    f.arm();
    await f.now();
    await vi.advanceTimersByTimeAsync(100);
    expect(flush).toHaveBeenCalledTimes(1);
    f.arm();
    f.cancel();
    await vi.advanceTimersByTimeAsync(100);
    expect(flush).toHaveBeenCalledTimes(1);
  });

  it('runs one flush at a time, in order, and a failed one does not stop the next', async () => {
    const log: string[] = [];
    let calls = 0;
    const flush = async () => {
      const n = ++calls;
      log.push(`start ${n}`);
      await new Promise((r) => setTimeout(r, 10));
      log.push(`end ${n}`);
      if (n === 1) throw new Error('first fails');
    };
    const f = lingeringFlush(flush, 20, () => undefined);
    const first = f.now();
    const second = f.now();
    const failed = expect(first).rejects.toThrow('first fails');
    await vi.advanceTimersByTimeAsync(30);
    await failed;
    await second;
    await f.settled();
    expect(log).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('reports the error of a flush the timer started', async () => {
    const errors: unknown[] = [];
    const f = lingeringFlush(async () => Promise.reject(new Error('db down')), 20, (err) => errors.push(err));
    f.arm();
    await vi.advanceTimersByTimeAsync(20);
    expect(errors.map((e) => (e as Error).message)).toEqual(['db down']);
  });
});
