// One flush at a time, started now (a batch is full) or a fixed time after the first item of a
// batch (a bound on how long an item waits): the batching of the settlement consumer and of the
// webhook dispatcher. A flush started by the timer reports its error to `onLingerError`; one
// started by `now()` rejects to its caller.
export type LingeringFlush = {
  /** Flushes after any flush in progress; cancels the timer. */
  now(): Promise<void>;
  /** Starts the timer unless it runs: the batch is flushed `lingerMs` after its first item. */
  arm(): void;
  /** Stops the timer (the caller naks or drops what is buffered). */
  cancel(): void;
  /** Resolves once no flush is in progress (after stopping). */
  settled(): Promise<void>;
};

export function lingeringFlush(flush: () => Promise<void>, lingerMs: number, onLingerError: (err: unknown) => void): LingeringFlush {
  let inProgress: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | null = null;
  const cancel = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  const now = (): Promise<void> => {
    cancel();
    const next = inProgress.then(flush);
    inProgress = next.catch(() => undefined);
    return next;
  };
  return {
    now,
    arm(): void {
      timer ??= setTimeout(() => {
        now().catch(onLingerError);
      }, lingerMs);
    },
    cancel,
    settled: () => inProgress,
  };
}
