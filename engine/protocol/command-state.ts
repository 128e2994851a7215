// The state after a command — `payment` (the public view) and `payment_record` — for every event
// of the command. The engine puts the payment record on the command's last event only (every event
// of the command would carry the same: the copies were a fifth of the bytes it packed and Postgres
// stored per payment), and no view at all (it is toPayment() of the record: a third of an event's
// bytes). A reader that needs the state on every event calls withCommandState with the command's
// events, which are always in one message (engine/shards/event-out.ts).
import type { EngineEvent } from './events.ts';
import type { Payment } from './payment.ts';
import { paymentViewOf } from './view.ts';
import { rawPaymentSchema } from '../redis/store.ts';

type State = Pick<EngineEvent, 'payment' | 'payment_record'>;

/** The public view of a payment record, exactly what the engine's reply showed for it (toPayment). */
export function paymentOfRecord(record: NonNullable<EngineEvent['payment_record']>): Payment {
  return paymentViewOf(rawPaymentSchema.parse(record));
}

/**
 * Each event with its command's state: `payment` derived from the record where the event carries
 * none. Events written before the record was left to the last event (each with its own copy) and
 * before the view was left out are returned as they are; an event whose command carries no state
 * has payment null.
 */
export function withCommandState<E extends EngineEvent>(events: readonly E[]): E[] {
  const byCmd = new Map<string, State>();
  for (const e of events) {
    if (e.payment) byCmd.set(e.cmd_id, { payment: e.payment, payment_record: e.payment_record ?? null });
    else if (e.payment_record) byCmd.set(e.cmd_id, { payment: paymentOfRecord(e.payment_record), payment_record: e.payment_record });
  }
  return events.map((e) => {
    if (e.payment) return e;
    const state = byCmd.get(e.cmd_id);
    return { ...e, payment: state?.payment ?? null, payment_record: e.payment_record ?? state?.payment_record ?? null };
  });
}
