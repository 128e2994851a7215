// What a webhook says and how a delivery travels. Pure.
//
// Body (API.md): { "id": "evt_…", "type": "payment.succeeded", "created_at": ISO-8601, "data": … }
//   payment.* events: data = the Payment after the command that emitted the event (API.md's Payment).
//     An automatic capture is one payment.succeeded (scripts v8). A command of the event log that
//     emitted two (v7's automatic capture: payment.authorized then payment.succeeded) shows the
//     same, final Payment in both.
//   refund.succeeded / refund.failed: data = the Refund (it names its payment_id), as GET /v1/refunds/{id}
//     shows it. refund.failed: a channel refused a refund of a channel payment (nothing was refunded).
// The id is the event's id (evt_<cmd_id>_<n>): the same at every attempt and every resend, so a
// merchant deduplicates on it.
import { z } from 'zod';
import { PROTOCOL_VERSION } from '../protocol/commands.ts';
import { encode, unpackRaw, ProtocolError } from '../protocol/codec.ts';
import type { EngineEvent, EventType } from '../protocol/events.ts';
import { safeIdSchema } from '../protocol/ids.ts';

/** Event types that become webhooks: every payment and refund transition. */
export const WEBHOOK_EVENT_TYPES = [
  'payment.authorized', 'payment.succeeded', 'payment.failed', 'payment.canceled', 'payment.expired',
  'payment.requires_action', 'payment.late_paid', 'refund.succeeded', 'refund.failed',
] as const satisfies readonly EventType[];
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];
const webhookTypes: ReadonlySet<string> = new Set(WEBHOOK_EVENT_TYPES);

/** Event ids become a subject token of the parked stream: no '.', '*', '>' or spaces. */
export const webhookIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,160}$/, 'must be 1-160 of [A-Za-z0-9_-]');

export const NOTIFY_URL_CHARS_MAX = 512;
/** What the deliverer stores of the last failure: enough to tell an operator why, never a body. */
export const LAST_ERROR_CHARS_MAX = 200;

export const webhookJobSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  id: webhookIdSchema,
  type: z.enum(WEBHOOK_EVENT_TYPES),
  merchant_id: safeIdSchema,
  url: z.string().min(1).max(NOTIFY_URL_CHARS_MAX),
  /** The exact JSON sent, fixed once: every attempt signs and sends the same bytes. */
  body: z.string().min(2).max(262_144),
  /** When this round of attempts started (dispatch, or an operator's resend): the 24 h window's start. */
  queued_at_ms: z.number().int().positive(),
  /** How many times an operator resent it (0 = the original delivery). */
  resends: z.number().int().min(0),
});
export type WebhookJob = z.infer<typeof webhookJobSchema>;

export const parkedDeliverySchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  job: webhookJobSchema,
  attempts: z.number().int().min(1),
  last_error: z.string().max(LAST_ERROR_CHARS_MAX),
  parked_at_ms: z.number().int().positive(),
});
export type ParkedDelivery = z.infer<typeof parkedDeliverySchema>;

/** The Nats-Msg-Id of a job: the event id, plus the resend count so a resend is not a duplicate. */
export const jobMsgId = (job: Pick<WebhookJob, 'id' | 'resends'>) => (job.resends === 0 ? `whk_${job.id}` : `whk_${job.id}_r${job.resends}`);

/**
 * False only when no event of `events` can become a webhook, so that their message may go to the
 * shard's quiet subject, which the dispatcher never receives: no webhook type among them, or no
 * notify_url in any payment record among them. withCommandState only hands a record from one event of the message to another, so a
 * notify_url that webhookOf() would see after it is on one of these events already.
 */
export function mayNotify(events: readonly EngineEvent[]): boolean {
  return events.some((e) => webhookTypes.has(e.type)) && events.some((e) => typeof e.payment_record?.notify_url === 'string' && e.payment_record.notify_url !== '');
}

/**
 * The webhook of an event, or null when there is none to send: not a payment or refund transition,
 * or the payment has no notify_url (it is kept in the payment record, not in the public view).
 * The event must carry its command's state (withCommandState: only a command's last event has it).
 */
export function webhookOf(event: EngineEvent): { id: string; type: WebhookEventType; url: string; body: string } | null {
  if (!webhookTypes.has(event.type)) return null;
  const url = event.payment_record?.notify_url;
  if (typeof url !== 'string' || url === '') return null;
  const data = event.type.startsWith('refund.') ? event.refund : event.payment;
  if (!data) return null;
  const body = JSON.stringify({ id: event.id, type: event.type, created_at: new Date(event.ts_ms).toISOString(), data });
  return { id: event.id, type: event.type as WebhookEventType, url, body };
}

function decodeWith<S extends z.ZodType>(schema: S, what: string, bytes: Uint8Array): z.infer<S> {
  let raw: unknown;
  try {
    raw = unpackRaw(bytes);
  } catch (cause) {
    throw new ProtocolError(`${what}: not msgpack`, { cause });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ProtocolError(`${what}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

export const encodeJob = (job: WebhookJob): Uint8Array => encode(webhookJobSchema.parse(job));
export const decodeJob = (bytes: Uint8Array): WebhookJob => decodeWith(webhookJobSchema, 'webhook job', bytes);
export const encodeParked = (p: ParkedDelivery): Uint8Array => encode(parkedDeliverySchema.parse(p));
export const decodeParked = (bytes: Uint8Array): ParkedDelivery => decodeWith(parkedDeliverySchema, 'parked webhook', bytes);
