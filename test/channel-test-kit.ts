// Small helpers shared by the channel adapter tests (test/integration/channels-*.test.ts).
import { isChannelError } from '../engine/channels/types.ts';

/** The ChannelError a call fails with (its code and the channel's own code); anything else is rethrown. */
export async function channelError(p: Promise<unknown>): Promise<{ code: string; channelCode: string | null }> {
  try {
    await p;
  } catch (err) {
    if (isChannelError(err)) return { code: err.code, channelCode: err.channelCode };
    throw err;
  }
  throw new Error('expected a ChannelError');
}

/** The first item of a list that grows (callbacks a receiver got) matching pred, within 10 s. */
export async function firstMatching<T>(list: readonly T[], pred: (x: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const x = list.find(pred);
    if (x) return x;
    if (Date.now() > deadline) throw new Error(`no ${what}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}
