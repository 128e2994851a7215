import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encode, isProtocolError } from '../../engine/protocol/codec.ts';
import { PROTOCOL_VERSION, type Command } from '../../engine/protocol/commands.ts';
import { names, shardOf } from '../../engine/protocol/subjects.ts';

const create: Command = {
  v: PROTOCOL_VERSION, type: 'payment.create', cmd_id: 'cmd_1', merchant_id: 'm_1', ts_ms: 1764300000000, payment_id: 'pay_1',
  out_trade_no: 'T1', amount: 1999, currency: 'CNY', method: 'balance', account_id: 'acc_42', capture: 'manual', hold_ttl_s: 900, scene: 'pc',
};

describe('protocol', () => {
  it('round-trips a command through msgpack', () => {
    expect(decodeCommand(encode(create))).toEqual(create);
  });

  it('refuses a float amount, an unknown version and garbage', () => {
    for (const bad of [encode({ ...create, amount: 19.99 }), encode({ ...create, v: 2 }), new Uint8Array([0xc1, 0xff])]) {
      expect(() => decodeCommand(bad)).toThrow();
      try {
        decodeCommand(bad);
      } catch (err) {
        expect(isProtocolError(err)).toBe(true);
      }
    }
  });

  it('takes a create\'s idempotency record only as a SHA-256 in lowercase hex', () => {
    const hash = 'ab'.repeat(32);
    expect(decodeCommand(encode({ ...create, idempotency_key_sha256: hash }))).toEqual({ ...create, idempotency_key_sha256: hash });
    // Anything else could name another key of the merchant (it becomes part of a Redis key name).
    for (const bad of ['AB'.repeat(32), 'ab'.repeat(31), `${'ab'.repeat(31)}:x`, 'ab'.repeat(33), 42]) {
      expect(() => decodeCommand(encode({ ...create, idempotency_key_sha256: bad }))).toThrow(/idempotency_key_sha256/);
    }
  });

  it('keeps amounts exact up to the maximum', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000_000_000 }), (amount) => {
      const back = decodeCommand(encode({ ...create, amount }));
      return back.type === 'payment.create' && back.amount === amount;
    }));
  });

  it('routes a merchant to one stable shard within range', () => {
    fc.assert(fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), fc.integer({ min: 1, max: 1024 }), (m, count) => {
      const s = shardOf(m, count);
      return s >= 0 && s < count && s === shardOf(m, count);
    }));
    const n = names('pp', 16);
    expect(n.cmdSubject('m_1')).toBe(`pp.cmd.${shardOf('m_1', 16)}`);
    expect(n.cmdShardFilter(shardOf('m_1', 16))).toBe(n.cmdSubject('m_1'));
  });
});
