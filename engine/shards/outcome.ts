// From a command and the Lua result it produced to the events to publish and the reply to send.
// Pure and deterministic: a replayed result yields the same event ids, so a re-publish after a
// crash is deduplicated by JetStream (Nats-Msg-Id) and by the settlement consumer (event id).
import type { Command } from '../protocol/commands.ts';
import { PROTOCOL_VERSION } from '../protocol/commands.ts';
import type { EngineEvent, Reply } from '../protocol/events.ts';
import type { Currency } from '../protocol/money.ts';
import { paymentViewOf, toRefund } from '../protocol/view.ts';
import { postingsFor } from '../ledger/postings.ts';
import { SCRIPT_ERROR_CODE, ScriptCode } from '../redis/errors.ts';
import type { ScriptResult } from '../redis/store.ts';

import type { Payment } from '../protocol/payment.ts';

/** payment: the payment's state after the command (null when the command touched none). */
export type Outcome = { events: EngineEvent[]; reply: Reply; payment: Payment | null };

export const eventId = (cmdId: string, index: number) => `evt_${cmdId}_${index}`;

/** A refusal decided before any script ran (nothing changed, nothing to publish). */
export function refusal(cmd: Command, code: string, message: string): Outcome {
  return {
    events: [],
    reply: { v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: false, replayed: false, code, message, payment_id: null },
    payment: null,
  };
}

function accountIdOf(cmd: Command, result: ScriptResult): string | null {
  if (cmd.type === 'account.create' || cmd.type === 'account.credit') return cmd.account_id;
  return result.payment?.account_id || result.account?.account_id || null;
}

function memoOf(cmd: Command, result: ScriptResult): string | null {
  if (cmd.type === 'payment.refund') return cmd.reason ?? null;
  // A channel refund's postings are written when the channel answers: they carry the refund's reason too.
  if (cmd.type === 'refund.channel_result') return result.refund?.reason || null;
  return cmd.type === 'account.credit' ? cmd.reason : null;
}

/** payment.succeeded of a channel payment: what the ledger books beside the postings. */
function settlementOf(cmd: Command, result: ScriptResult): EngineEvent['settlement'] | null {
  const p = result.payment;
  if (cmd.type !== 'payment.channel_notify' || !p || result.code !== ScriptCode.Ok || !result.events.includes('payment.succeeded')) return null;
  return {
    channel: p.channel,
    channel_trade_no: p.channel_trade_no === '' ? null : p.channel_trade_no,
    amount: p.amount,
    currency: p.currency as Currency,
    channel_amount: p.channel_amount,
    channel_currency: p.channel_currency as Currency,
    fx_rate: p.fx_rate === '' ? null : p.fx_rate,
    fx_as_of: p.fx_as_of === '' ? null : p.fx_as_of,
    fee: p.fee,
    fee_bps: p.fee_bps,
  };
}

export function outcomeOf(cmd: Command, result: ScriptResult, nowMs: number): Outcome {
  // Not validated here: every reader of the reply validates it on receipt (replySchema), and the
  // builder is toPayment's (test/unit/payment-view.test.ts); a zod parse per command less.
  const payment = result.payment ? paymentViewOf(result.payment) : null;
  const refund = result.refund ? toRefund(result.refund) : null;
  const currency = (payment?.currency ?? result.account?.currency ?? null) as Currency | null;
  const accountId = accountIdOf(cmd, result);
  if (result.effects.length > 0 && (result.events.length === 0 || currency === null)) {
    throw new Error(`assertion: money effect without event or currency for ${cmd.cmd_id}`);
  }
  const channel = result.payment?.channel || null;
  const postings = result.effects.length > 0 ? postingsFor(accountId, currency as Currency, result.effects, channel) : [];
  const settlement = settlementOf(cmd, result);
  const tsMs = result.payment?.updated_at_ms ?? nowMs;
  const last = result.events.length - 1;
  const events: EngineEvent[] = result.events.map((type, i) => ({
    v: PROTOCOL_VERSION,
    id: eventId(cmd.cmd_id, i),
    type,
    merchant_id: cmd.merchant_id,
    cmd_id: cmd.cmd_id,
    ts_ms: tsMs,
    // The state after the command on its last event only, as the payment record; no public view,
    // which is toPayment() of the record (engine/protocol/command-state.ts gives both to every event).
    account: result.account,
    postings: i === last ? postings : [],
    memo: memoOf(cmd, result),
    result_code: result.code,
    cmd_events: result.events.length,
    ...(i === last && { payment_record: result.paymentRecord ?? result.payment }),
    ...(refund && { refund }),
    ...(settlement && i === last && { settlement }),
    ...(cmd.type === 'refund.channel_result' && refund && { channel_refund_id: cmd.channel_refund_id }),
  }));

  if (result.code === ScriptCode.Ok) {
    return {
      events,
      reply: {
        // The wallet after the command only where the answer shows it (POST /v1/accounts, the operator's
        // credit): a payment's answer is the payment, and the snapshot was a fifth of its reply's bytes.
        v: PROTOCOL_VERSION, cmd_id: cmd.cmd_id, ok: true, replayed: result.replayed, payment,
        account: cmd.type === 'account.create' || cmd.type === 'account.credit' ? result.account : null,
        ...(refund && { refund }),
        ...(result.idempotencyCompleted && { idempotency_completed: true as const }),
      },
      payment,
    };
  }
  const err = SCRIPT_ERROR_CODE[result.code];
  return {
    events,
    reply: {
      v: PROTOCOL_VERSION,
      cmd_id: cmd.cmd_id,
      ok: false,
      replayed: result.replayed,
      code: err.code,
      message: err.message,
      payment_id: result.existing ?? payment?.id ?? null,
    },
    payment,
  };
}
