// Commands: what the ingress (and operators) ask the engine to do. One schema, versioned, carried
// as msgpack on <ns>.cmd.<shard>. cmd_id is also the JetStream Nats-Msg-Id and the
// op id of the money effect, so a duplicate publish or a redelivery is a no-op.
import { z } from 'zod';
import { amountSchema, currencySchema } from './money.ts';
import { safeIdSchema } from './ids.ts';
import { buyerSchema, metadataSchema, methodSchema, outTradeNoSchema, sceneSchema } from './payment.ts';
import { refundReasonSchema } from './refund.ts';
import { CHANNELS } from '../channels/types.ts';

export const channelNameSchema = z.enum(CHANNELS);
import { blacklistKindSchema, riskSettingsSchema } from '../risk/settings.ts';

export const PROTOCOL_VERSION = 1 as const;

const base = {
  v: z.literal(PROTOCOL_VERSION),
  cmd_id: safeIdSchema,
  merchant_id: safeIdSchema,
  ts_ms: z.number().int().positive(),
};

export const HOLD_TTL_S_MAX = 7 * 86400;

export const paymentCreateSchema = z.strictObject({
  ...base,
  type: z.literal('payment.create'),
  payment_id: safeIdSchema,
  out_trade_no: outTradeNoSchema,
  amount: amountSchema,
  currency: currencySchema,
  method: methodSchema,
  account_id: safeIdSchema.optional(),
  capture: z.enum(['manual', 'automatic']),
  hold_ttl_s: z.number().int().min(1).max(HOLD_TTL_S_MAX),
  scene: sceneSchema,
  subject: z.string().max(128).optional(),
  buyer: buyerSchema.optional(),
  notify_url: z.string().max(512).optional(),
  metadata: metadataSchema.optional(),
  /** topup: a channel payment whose success credits account_id (API.md /v1/topups). */
  kind: z.enum(['payment', 'topup']).optional(),
  /**
   * The ingress's idempotency record of the request (hex SHA-256 of its Idempotency-Key): the
   * engine completes it when it decides a balance payment (paymentCreate-11), so the ingress need
   * not. Absent for commands from elsewhere (the operator CLI, the benchmarks' engine driver).
   */
  idempotency_key_sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});

const nextActionSchema = z.union([
  z.strictObject({ type: z.literal('qr_code'), code_url: z.string().min(1).max(2048) }),
  z.strictObject({ type: z.literal('redirect'), url: z.string().min(1).max(2048) }),
]);

/**
 * Engine-internal: the channel order of a pending channel payment was opened (or could not be on
 * any route). Published by the shard owner after the channel answered, through the stream, so the
 * result is ordered with the merchant's other commands and survives a crash.
 */
export const paymentChannelOpenSchema = z.strictObject({
  ...base,
  type: z.literal('payment.channel_open'),
  payment_id: safeIdSchema,
  result: z.discriminatedUnion('ok', [
    z.strictObject({
      ok: z.literal(true),
      channel: channelNameSchema,
      channel_order_id: z.string().max(256).nullable(),
      next_action: nextActionSchema,
      /** What the channel charges the buyer: the payment's amount, or its conversion (fx). */
      channel_amount: amountSchema,
      channel_currency: currencySchema,
      /** Decimal string (never a float): channel_currency per unit of the payment's currency. */
      fx_rate: z.string().max(64).regex(/^\d{1,20}(\.\d{1,40})?$/).nullable(),
      fx_as_of: z.string().max(64).nullable(),
      /** The fee rate the channel charges this merchant, in basis points (0.6% = 60). */
      fee_bps: z.number().int().min(0).max(10_000),
    }),
    z.strictObject({ ok: z.literal(false), code: z.string().min(1).max(64), message: z.string().max(200) }),
  ]),
});

/**
 * Engine-internal: what a channel said about a payment, from a verified callback (source
 * callback) or from a query (补单, source query). Applied at most once per cmd_id; the script
 * cross-checks channel, amount and currency against the payment and changes nothing on mismatch.
 */
export const paymentChannelNotifySchema = z.strictObject({
  ...base,
  type: z.literal('payment.channel_notify'),
  payment_id: safeIdSchema,
  channel: channelNameSchema,
  source: z.enum(['callback', 'query']),
  notification_id: z.string().min(1).max(256),
  status: z.enum(['succeeded', 'failed', 'closed']),
  amount: amountSchema,
  currency: currencySchema,
  channel_trade_no: z.string().max(128).nullable(),
  /** A top-up's wallet (from the payment), null for a plain payment: the script's keys are declared up front. */
  wallet_id: safeIdSchema.nullable(),
});

/**
 * Engine-internal: what a channel answered about a pending refund of a channel payment: the answer
 * to our refund call (source refund), to asking again (source query), or a verified refund
 * callback (source callback). One cmd_id per refund (refundResultCmdId), whatever the source, so
 * the first answer decides and every later one is a duplicate or a replay. amount: what the
 * channel says it refunded, in its own currency, or null when it does not state the single
 * refund's amount (Alipay's callbacks carry the trade's running total).
 */
export const refundChannelResultSchema = z.strictObject({
  ...base,
  type: z.literal('refund.channel_result'),
  payment_id: safeIdSchema,
  refund_id: safeIdSchema,
  channel: channelNameSchema,
  source: z.enum(['refund', 'query', 'callback']),
  status: z.enum(['succeeded', 'failed']),
  amount: amountSchema.nullable(),
  currency: currencySchema,
  channel_refund_id: z.string().min(1).max(128).nullable(),
});

export const paymentCaptureSchema = z.strictObject({
  ...base,
  type: z.literal('payment.capture'),
  payment_id: safeIdSchema,
  amount: amountSchema.optional(),
});

export const paymentCancelSchema = z.strictObject({
  ...base,
  type: z.literal('payment.cancel'),
  payment_id: safeIdSchema,
});

/** Sent by the engine's own sweeper, through the stream, so an expiry is as durable as a capture. */
export const paymentExpireSchema = z.strictObject({
  ...base,
  type: z.literal('payment.expire'),
  payment_id: safeIdSchema,
});

/** The merchant confirms that the buyer of a requires_action payment passed its second verification. */
export const paymentVerifySchema = z.strictObject({
  ...base,
  type: z.literal('payment.verify'),
  payment_id: safeIdSchema,
});

/**
 * Refund (part of) a succeeded payment: back to the buyer's wallet, or through the payment's
 * channel (pending until the channel answers: refund.channel_result). refund_id names the refund (the
 * ingress derives it like payment_id); the op id (cmd_id) makes a redelivery a replay, and a refund
 * id seen before is reported as it is, without a second effect.
 */
export const paymentRefundSchema = z.strictObject({
  ...base,
  type: z.literal('payment.refund'),
  payment_id: safeIdSchema,
  refund_id: safeIdSchema,
  amount: amountSchema,
  reason: refundReasonSchema.optional(),
});

/** Operator: change the merchant's risk thresholds (partial update; docs/RISK.md). */
export const riskConfigureSchema = z.strictObject({
  ...base,
  type: z.literal('risk.configure'),
  settings: riskSettingsSchema,
});

/** Operator: add an entry to, or remove one from, the merchant's blacklist. */
export const riskBlacklistSchema = z
  .strictObject({
    ...base,
    type: z.literal('risk.blacklist'),
    action: z.enum(['add', 'remove']),
    kind: blacklistKindSchema,
    value: z.string().min(1).max(128),
  })
  .superRefine((c, ctx) => {
    // The same bounds as the buyer fields they are compared with (payment.ts buyerSchema).
    const ok = c.kind === 'ip' ? buyerSchema.shape.ip.safeParse(c.value).success
      : c.kind === 'user' ? buyerSchema.shape.user_id.safeParse(c.value).success
        : buyerSchema.shape.device_id.safeParse(c.value).success;
    if (!ok) ctx.addIssue({ code: 'custom', path: ['value'], message: `not a valid buyer ${c.kind === 'ip' ? 'ip' : `${c.kind}_id`}` });
  });

export const accountCreateSchema = z.strictObject({
  ...base,
  type: z.literal('account.create'),
  account_id: safeIdSchema,
  currency: currencySchema,
});

/** Operator adjustment: credits a wallet; recorded in the ledger as an adjustment. */
export const accountCreditSchema = z.strictObject({
  ...base,
  type: z.literal('account.credit'),
  account_id: safeIdSchema,
  amount: amountSchema,
  currency: currencySchema,
  reason: z.string().min(1).max(200),
});

export const commandSchema = z.discriminatedUnion('type', [
  paymentCreateSchema,
  paymentCaptureSchema,
  paymentCancelSchema,
  paymentExpireSchema,
  paymentVerifySchema,
  paymentRefundSchema,
  paymentChannelOpenSchema,
  paymentChannelNotifySchema,
  refundChannelResultSchema,
  riskConfigureSchema,
  riskBlacklistSchema,
  accountCreateSchema,
  accountCreditSchema,
]);
export type Command = z.infer<typeof commandSchema>;
export type CommandType = Command['type'];
export type CommandOf<T extends CommandType> = Extract<Command, { type: T }>;

/**
 * Many commands of one shard in one JetStream message (header `Pp-Batch`): the ingress coalesces
 * what it publishes to a shard while that shard's previous message waits for its PubAck, so under
 * load one stored message, one delivery and one ack carry many commands (per-message work is what
 * the end-to-end profiles are made of, docs/BENCHMARKS.md). Each command is validated on its own:
 * one bad command is refused, its neighbours are applied. `replies[i]` is the token the sender
 * waits on for cmds[i] (reply subject `<Pp-Reply>.<token>`), '' for none. Batches carry no
 * Nats-Msg-Id: a command applied twice is a replay of its op id (the op record, PEAKPAY_OP_TTL_S).
 */
export const COMMANDS_PER_MESSAGE_MAX = 64;
export const commandBatchSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  cmds: z.array(z.unknown()).min(1).max(COMMANDS_PER_MESSAGE_MAX),
  replies: z.array(z.string().regex(/^[A-Za-z0-9]{0,32}$/)).min(1).max(COMMANDS_PER_MESSAGE_MAX),
}).refine((b) => b.cmds.length === b.replies.length, 'cmds and replies differ in length');
export type CommandBatch = { v: typeof PROTOCOL_VERSION; cmds: Command[]; replies: string[] };
