// Events: what happened, emitted by the engine after a command's money effect is applied in Redis,
// published to <ns>.evt.<shard>.<merchant_id> with Nats-Msg-Id = id, written to Postgres by the
// settlement consumer idempotently on id. Each event carries its own balanced ledger postings.
import { z } from 'zod';
import { currencySchema, signedAmountSchema } from './money.ts';
import { safeIdSchema } from './ids.ts';
import { paymentSchema } from './payment.ts';
import { PROTOCOL_VERSION } from './commands.ts';

export const EVENT_TYPES = [
  'payment.authorized',
  'payment.succeeded',
  'payment.failed',
  'payment.canceled',
  'payment.expired',
  'payment.requires_action',
  'account.created',
  'account.credited',
] as const;
export const eventTypeSchema = z.enum(EVENT_TYPES);
export type EventType = z.infer<typeof eventTypeSchema>;

/** Ledger accounts: wallet:<account_id>:available|held, merchant:settlement, merchant:adjustments. */
export const POSTING_KINDS = ['hold', 'release', 'capture', 'adjustment'] as const;
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

export const eventSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  id: z.string().min(1).max(160),
  type: eventTypeSchema,
  merchant_id: safeIdSchema,
  cmd_id: safeIdSchema,
  ts_ms: z.number().int().positive(),
  payment: paymentSchema.nullable(),
  account: accountSnapshotSchema.nullable(),
  postings: z.array(postingSchema).max(16),
  memo: z.string().max(200).nullable(),
});
export type EngineEvent = z.infer<typeof eventSchema>;

/** Reply to the waiting ingress or operator, sent on the command's Pp-Reply subject (core NATS). */
export const replySchema = z.union([
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    cmd_id: z.string(),
    ok: z.literal(true),
    replayed: z.boolean(),
    payment: paymentSchema.nullable(),
    account: accountSnapshotSchema.nullable(),
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
