// Events: what happened, emitted by the engine after a command's money effect is applied in Redis,
// published to <ns>.evt.<shard>, or <ns>.evq.<shard> when none of them can become a webhook (all events of a command in
// one message, see eventBatchSchema), written to Postgres by the
// settlement consumer idempotently on id. Each event carries its own balanced ledger postings.
import { z } from 'zod';
import { currencySchema, signedAmountSchema } from './money.ts';
import { safeIdSchema } from './ids.ts';
import { paymentSchema } from './payment.ts';
import { refundSchema } from './refund.ts';
import { PROTOCOL_VERSION } from './commands.ts';
import { riskChangeSchema } from '../risk/settings.ts';

export const EVENT_TYPES = [
  'payment.pending',
  'payment.authorized',
  'payment.succeeded',
  'payment.failed',
  'payment.canceled',
  'payment.expired',
  'payment.requires_action',
  /** Paid at the channel after the payment was canceled or expired here: to be refunded at the channel. */
  'payment.late_paid',
  'account.created',
  'account.credited',
  'risk.configured',
  'risk.blacklist_changed',
  'refund.succeeded',
  // Refunds of channel payments: recorded and reserved (pending), then decided by the channel.
  'refund.pending',
  'refund.failed',
] as const;
export const eventTypeSchema = z.enum(EVENT_TYPES);
export type EventType = z.infer<typeof eventTypeSchema>;

/** Ledger accounts: wallet:<account_id>:available|held, merchant:settlement, merchant:adjustments, channel:<name>:clearing|fees. */
export const POSTING_KINDS = ['hold', 'release', 'capture', 'adjustment', 'refund', 'channel_capture', 'topup', 'fee', 'channel_refund'] as const;
export const postingSchema = z.object({
  kind: z.enum(POSTING_KINDS),
  ledger_account: z.string().min(1).max(160),
  amount: signedAmountSchema,
  currency: currencySchema,
});
export type Posting = z.infer<typeof postingSchema>;

export const accountSnapshotSchema = z.object({
  account_id: safeIdSchema,
  currency: currencySchema,
  available: z.number().int().min(0),
  held: z.number().int().min(0),
});
export type AccountSnapshot = z.infer<typeof accountSnapshotSchema>;

/**
 * The payment hash exactly as the Lua scripts keep it (field → string or integer), after the
 * command: what a Redis rebuild writes back (engine/rebuild). The public `payment` view drops
 * fields the engine needs (hold_amount, notify_url, raw buyer/metadata JSON, ms timestamps).
 */
export const PAYMENT_RECORD_FIELDS_MAX = 128;
/**
 * The same rule as z.record(key 1–64 chars, string ≤ 65,536 | integer), checked in one loop: zod's
 * record of unions cost 12 of the 16 µs of validating a whole event, on every event the settlement
 * consumer reads (docs/BENCHMARKS.md). Bounded: at most PAYMENT_RECORD_FIELDS_MAX fields.
 */
export function isPaymentRecord(v: unknown): v is Record<string, string | number> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  let fields = 0;
  for (const key of Object.keys(v)) {
    if (++fields > PAYMENT_RECORD_FIELDS_MAX || key.length < 1 || key.length > 64) return false;
    const value = (v as Record<string, unknown>)[key];
    if (typeof value === 'string') {
      if (value.length > 65_536) return false;
    } else if (!Number.isSafeInteger(value)) return false;
  }
  return true;
}
export const paymentRecordSchema = z
  .custom<Record<string, string | number>>(isPaymentRecord, {
    message: `must map 1–${PAYMENT_RECORD_FIELDS_MAX} names (1–64 characters) to strings (≤ 65,536) or integers`,
  })
  // A copy, as z.record made: the object msgpackr decodes from a Lua result packs and serialises
  // 1.3–1.5× slower than a copy of it (measured: 40 vs 28 µs an event), and events are packed once
  // per command by the engine and serialised again by the settlement consumer.
  .transform((r) => ({ ...r }));
export type PaymentRecord = z.infer<typeof paymentRecordSchema>;

export const eventSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  id: z.string().min(1).max(160),
  type: eventTypeSchema,
  merchant_id: safeIdSchema,
  cmd_id: safeIdSchema,
  ts_ms: z.number().int().positive(),
  /**
   * The payment after the command, as API.md shows it. Events written since 13ee9c6 leave it
   * out: it is toPayment() of `payment_record`, which they carry anyway, and the copy was a third of
   * an event's bytes. Readers get it from withCommandState (engine/protocol/command-state.ts).
   */
  payment: paymentSchema.nullable().optional(),
  account: accountSnapshotSchema.nullable(),
  postings: z.array(postingSchema).max(16),
  memo: z.string().max(200).nullable(),
  // Optional, so events written before they existed decode unchanged. With them the event log holds
  // what a Redis rebuild needs to re-create the op record and the payment hash (engine/rebuild).
  /** The script's result code (0, or e.g. -10 for a capture that found its hold expired). */
  result_code: z.number().int().optional(),
  /** How many events the command emitted (ids evt_<cmd_id>_0 … n-1): shows when some never arrived. */
  cmd_events: z.number().int().min(1).max(1_000).optional(),
  payment_record: paymentRecordSchema.nullable().optional(),
  /** risk.configured / risk.blacklist_changed: what changed (no postings: no money moves). */
  risk: riskChangeSchema.optional(),
  /** refund.*: the refund (`payment` is the payment after it, amount_refunded included). */
  refund: refundSchema.optional(),
  /** refund.succeeded / refund.failed of a channel refund: the channel's id of the refund, when it gave one. */
  channel_refund_id: z.string().max(128).nullable().optional(),
  /** payment.succeeded of a channel payment: what the channel settled, the fee and any conversion. */
  settlement: z
    .object({
      channel: z.string().min(1).max(32),
      channel_trade_no: z.string().max(128).nullable(),
      /** In the payment's currency (what the ledger books). */
      amount: z.number().int().min(0),
      currency: currencySchema,
      /** What the buyer paid at the channel, in the channel's currency. */
      channel_amount: z.number().int().min(0),
      channel_currency: currencySchema,
      fx_rate: z.string().nullable(),
      fx_as_of: z.string().nullable(),
      fee: z.number().int().min(0),
      fee_bps: z.number().int().min(0).max(10_000),
    })
    .optional(),
});
export type EngineEvent = z.infer<typeof eventSchema>;

/** Reply to the waiting ingress or operator, sent on the command's Pp-Reply subject (core NATS). */
/**
 * What travels on <ns>.evt.<shard> and <ns>.evq.<shard>: the events of one or more commands of the shard in one message
 * (engine/shards/event-out.ts coalesces them), in the order the commands were applied. cmd_id and
 * merchant_id are those of the first event. A command's events are never split across messages.
 */
export const EVENTS_PER_COMMAND_MAX = 16;
/** ~1 KiB an event at most in practice: 256 stay well under nats-server's 1 MiB max_payload. */
export const EVENTS_PER_MESSAGE_MAX = 256;
export const eventBatchSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  cmd_id: safeIdSchema,
  merchant_id: safeIdSchema,
  events: z.array(eventSchema).min(1).max(EVENTS_PER_MESSAGE_MAX),
});
export type EventBatch = z.infer<typeof eventBatchSchema>;
/** Nats-Msg-Id of a message with the events of one command. */
export const eventBatchMsgId = (cmdId: string) => `evb_${cmdId}`;

export const replySchema = z.union([
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    cmd_id: z.string(),
    ok: z.literal(true),
    replayed: z.boolean(),
    payment: paymentSchema.nullable(),
    account: accountSnapshotSchema.nullable(),
    risk: riskChangeSchema.optional(),
    /** payment.refund: the refund (new, or the one its refund_id already names). */
    refund: refundSchema.optional(),
    /**
     * The engine completed the ingress's idempotency record (payment.create of a balance payment
     * with idempotency_key_sha256): the answer is this reply, rendered; the ingress stores none.
     */
    idempotency_completed: z.literal(true).optional(),
  }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    cmd_id: z.string(),
    ok: z.literal(false),
    replayed: z.boolean(),
    code: z.string(),
    message: z.string(),
    payment_id: z.string().nullable(),
  }),
]);
export type Reply = z.infer<typeof replySchema>;

/**
 * Replies to batched commands, many in one core-NATS message on <prefix>.r (engine/shards/reply-out.ts):
 * replies[i] answers the command sent with tokens[i]. Each reply is validated on its own.
 */
export const REPLY_BATCH_TOKEN = 'r';
export const REPLIES_PER_MESSAGE_MAX = 256;
export const replyBatchSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  tokens: z.array(z.string().max(32)).min(1).max(REPLIES_PER_MESSAGE_MAX),
  replies: z.array(z.unknown()).min(1).max(REPLIES_PER_MESSAGE_MAX),
});
