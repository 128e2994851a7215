// Reads a payment from Postgres when Redis no longer has it (evicted, or being rebuilt).
import type pg from 'pg';
import { paymentSchema, type Payment } from '../../engine/protocol/payment.ts';

type Row = {
  id: string; merchant_id: string; out_trade_no: string; amount: number; currency: string; amount_captured: number;
  amount_refunded: number; method: string; channel: string | null; scene: string; subject: string | null;
  account_id: string | null; status: string; failure_code: string | null; failure_message: string | null;
  buyer: unknown; metadata: unknown; hold_expires_at: Date | null; created_at: Date; updated_at: Date; version: number;
};

export async function readPaymentFromLedger(pool: pg.Pool, merchantId: string, paymentId: string): Promise<Payment | null> {
  const r = await pool.query<Row>('SELECT * FROM payments WHERE merchant_id = $1 AND id = $2', [merchantId, paymentId]);
  const row = r.rows[0];
  if (!row) return null;
  return paymentSchema.parse({
    ...row,
    failure: row.failure_code ? { code: row.failure_code, message: row.failure_message ?? '' } : null,
    next_action: row.status === 'requires_action' ? { type: 'verify' } : null,
    hold_expires_at: row.hold_expires_at?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    failure_code: undefined,
    failure_message: undefined,
  });
}
