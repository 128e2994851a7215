// JetStream's answer to a publish that named our own reply subject (no js.publish): a PubAck in
// JSON, or a 503 status when no stream takes the subject. Shared by the CommandClient and the
// engine's EventPublisher, which both read PubAcks on one subscription of their own.
import type { Msg } from '@nats-io/transport-node';

/** Status of the answer nats-server sends in place of a PubAck when no stream takes the subject. */
const NO_RESPONDERS = 503;

export type PubAckResult = { ok: true; duplicate: boolean } | { ok: false; why: string };

export function pubAckOf(msg: Msg): PubAckResult {
  if (msg.headers?.code === NO_RESPONDERS) return { ok: false, why: 'no stream for the subject' };
  let ack: { stream?: unknown; duplicate?: unknown; error?: { description?: string } };
  try {
    ack = JSON.parse(msg.string()) as typeof ack;
  } catch {
    return { ok: false, why: 'malformed PubAck' };
  }
  if (ack.error) return { ok: false, why: ack.error.description ?? 'error without description' };
  if (typeof ack.stream !== 'string') return { ok: false, why: 'malformed PubAck' };
  return { ok: true, duplicate: ack.duplicate === true };
}
