// One command → one Lua call. Must issue the Redis command synchronously (before any await) so
// that a batch issued in one loop keeps its order on the wire.
import type { Command } from '../protocol/commands.ts';
import type { MoneyStore } from '../redis/store.ts';
import { outcomeOf, refusal, type Outcome } from './outcome.ts';
import { riskOutcomeOf } from '../risk/outcome.ts';

export type ApplyOptions = {
  /** Channel payments are refused (payment.method_unavailable) when the engine has no channels. */
  channelsEnabled: boolean;
  /** When the watcher (补单) first looks at a new channel payment, or asks the channel again about a new channel refund. */
  channelWatchMs: number;
};

export function applyCommand(store: MoneyStore, cmd: Command, nowMs: number, opts: ApplyOptions = { channelsEnabled: false, channelWatchMs: 0 }): Promise<Outcome> | Outcome {
  switch (cmd.type) {
    case 'payment.create':
      if (cmd.method !== 'balance') {
        if (!opts.channelsEnabled) return refusal(cmd, 'payment.method_unavailable', `method ${cmd.method} is not enabled for this merchant`);
        if (cmd.kind === 'topup' && cmd.account_id === undefined) return refusal(cmd, 'validation.failed', 'account_id is required for a top-up');
        return store.createPayment(cmd, nowMs, opts.channelWatchMs).then((r) => outcomeOf(cmd, r, nowMs));
      }
      if (cmd.kind === 'topup') return refusal(cmd, 'validation.failed', 'a top-up is paid through a channel, not from a balance');
      if (cmd.account_id === undefined) return refusal(cmd, 'validation.failed', 'account_id is required for method balance');
      return store.createPayment(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'payment.channel_open':
      return store.channelOpen(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'payment.channel_notify':
      return store.channelNotify(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'payment.capture':
      return store.capturePayment(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'payment.cancel':
      return store.cancelPayment(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'payment.expire':
      return store.expirePayment(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'payment.verify':
      return store.verifyPayment(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'payment.refund':
      return store.refundPayment(cmd, nowMs, opts.channelWatchMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'refund.channel_result':
      return store.refundChannelResult(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'risk.configure':
      return store.configureRisk(cmd, nowMs).then((r) => riskOutcomeOf(cmd, r, nowMs));
    case 'risk.blacklist':
      return store.changeBlacklist(cmd, nowMs).then((r) => riskOutcomeOf(cmd, r, nowMs));
    case 'account.create':
      return store.createAccount(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    case 'account.credit':
      return store.creditAccount(cmd, nowMs).then((r) => outcomeOf(cmd, r, nowMs));
    default: {
      const never: never = cmd;
      throw new Error(`assertion: unhandled command ${JSON.stringify(never)}`);
    }
  }
}
