// A real Redis connection and a MoneyStore under a fresh key prefix per test.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { PROTOCOL_VERSION, type CommandOf } from '../../engine/protocol/commands.ts';
import { MoneyStore } from '../../engine/redis/store.ts';

export function redisClient(): Redis {
  return new Redis(inject('stack').redisUrl, { enableAutoPipelining: true });
}

export function freshStore(redis: Redis, opTtlS = 3600): MoneyStore {
  return new MoneyStore(redis, { prefix: `lt${randomBytes(5).toString('hex')}`, opTtlS });
}

let seq = 0;
export const opId = () => `op_${Date.now().toString(36)}_${++seq}`;
export const M = 'm_lua';

export const cmds = {
  account: (account_id: string, currency: 'CNY' | 'USD' = 'CNY'): CommandOf<'account.create'> => ({
    v: PROTOCOL_VERSION, type: 'account.create', cmd_id: opId(), merchant_id: M, ts_ms: 1, account_id, currency,
  }),
  credit: (account_id: string, amount: number, currency: 'CNY' | 'USD' = 'CNY'): CommandOf<'account.credit'> => ({
    v: PROTOCOL_VERSION, type: 'account.credit', cmd_id: opId(), merchant_id: M, ts_ms: 1, account_id, amount, currency, reason: 'test',
  }),
  hold: (payment_id: string, account_id: string, amount: number, opts: { capture?: 'manual' | 'automatic'; ttlS?: number; otn?: string } = {}): CommandOf<'payment.create'> => ({
    v: PROTOCOL_VERSION, type: 'payment.create', cmd_id: opId(), merchant_id: M, ts_ms: 1, payment_id, out_trade_no: opts.otn ?? `T${payment_id}`,
    amount, currency: 'CNY', method: 'balance', account_id, capture: opts.capture ?? 'manual', hold_ttl_s: opts.ttlS ?? 60, scene: 'pc',
  }),
  capture: (payment_id: string, amount?: number): CommandOf<'payment.capture'> => ({
    v: PROTOCOL_VERSION, type: 'payment.capture', cmd_id: opId(), merchant_id: M, ts_ms: 1, payment_id, ...(amount !== undefined && { amount }),
  }),
  cancel: (payment_id: string): CommandOf<'payment.cancel'> => ({
    v: PROTOCOL_VERSION, type: 'payment.cancel', cmd_id: opId(), merchant_id: M, ts_ms: 1, payment_id,
  }),
  expire: (payment_id: string): CommandOf<'payment.expire'> => ({
    v: PROTOCOL_VERSION, type: 'payment.expire', cmd_id: opId(), merchant_id: M, ts_ms: 1, payment_id,
  }),
};
