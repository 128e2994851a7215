// The pure TypeScript of the risk rules: the Asia/Shanghai clock, key parts, IP spelling, the
// settings schema and its Redis fields, the risk outcome and metrics, and operator flag parsing.
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { engineMetrics } from '../../engine/metrics.ts';
import { commandSchema, PROTOCOL_VERSION } from '../../engine/protocol/commands.ts';
import type { EngineEvent } from '../../engine/protocol/events.ts';
import type { Payment } from '../../engine/protocol/payment.ts';
import { ScriptCode } from '../../engine/redis/errors.ts';
import type { ScriptResult } from '../../engine/redis/store.ts';
import { observeRisk, riskDecisionOf } from '../../engine/risk/metrics.ts';
import { riskOutcomeOf } from '../../engine/risk/outcome.ts';
import {
  blacklistEntry, canonicalIp, keyPart, RISK_DEFAULTS, shanghaiDay, shanghaiMinuteOfDay,
} from '../../engine/risk/rules.ts';
import {
  effectiveFromLua, inWindows, minuteOf, riskSettingsSchema, settingsToFields, windowsFromField, windowsToField,
} from '../../engine/risk/settings.ts';
import type { Outcome } from '../../engine/shards/outcome.ts';
import { settingsFromEffective } from '../../engine/risk/rebuild.ts';
import { blacklistEntryFromArgs, OpsError, riskSettingsFromArgs, type RiskArgs } from '../../scripts/ops.ts';

describe('the Asia/Shanghai clock', () => {
  it('ends the day at 16:00 UTC', () => {
    const midnight = Date.UTC(2025, 10, 28, 16, 0, 0);
    expect(shanghaiDay(midnight - 1)).toBe(shanghaiDay(midnight) - 1);
    expect(shanghaiDay(Date.UTC(2025, 10, 28, 0, 0, 0))).toBe(shanghaiDay(midnight - 1));
    expect(shanghaiMinuteOfDay(midnight)).toBe(0);
    expect(shanghaiMinuteOfDay(midnight - 1)).toBe(1439);
    expect(shanghaiMinuteOfDay(Date.UTC(2025, 10, 28, 17, 0, 0))).toBe(60);
  });

  it('agrees with the time zone database for any instant', () => {
    const fmt = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    fc.assert(fc.property(fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) }), (ms) => {
      const parts = Object.fromEntries(fmt.formatToParts(ms).map((p) => [p.type, p.value]));
      const localDate = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day));
      return shanghaiDay(ms) === localDate / 86_400_000 && shanghaiMinuteOfDay(ms) === Number(parts.hour) * 60 + Number(parts.minute);
    }));
  });
});

describe('keys and entries', () => {
  it('keeps safe ids and hex-encodes anything else, one-to-one', () => {
    expect(keyPart('u_9')).toBe('u_9');
    expect(keyPart('a:b')).toBe(`~${Buffer.from('a:b').toString('hex')}`);
    expect(keyPart('{x}')).not.toMatch(/[{}:]/);
    fc.assert(fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (a, b) => a === b || keyPart(a) !== keyPart(b)));
  });

  it('spells an IP one way', () => {
    expect(canonicalIp('2001:DB8:0:0::1')).toBe('2001:db8::1');
    expect(canonicalIp('203.0.113.9')).toBe('203.0.113.9');
    expect(blacklistEntry('ip', '2001:db8::0:1')).toBe('ip:2001:db8::1');
    expect(blacklistEntry('user', 'u_9')).toBe('user:u_9');
    expect(() => canonicalIp('nope')).toThrow(/assertion/);
  });
});

describe('risk settings', () => {
  it('accepts partial updates, null to switch a rule off, and windows up to 24:00', () => {
    expect(riskSettingsSchema.parse({ daily_caps: { CNY: 500_000, USD: null } })).toEqual({ daily_caps: { CNY: 500_000, USD: null } });
    expect(riskSettingsSchema.safeParse({ velocity: null, device_accounts_max: null }).success).toBe(true);
    expect(riskSettingsSchema.safeParse({ unusual_hours: [{ from: '23:00', to: '24:00' }] }).success).toBe(true);
  });

  it.each<[unknown, string]>([
    [{}, 'no setting'],
    [{ daily_caps: { CNY: 1.5 } }, 'a float cap'],
    [{ daily_caps: { CNY: 0 } }, 'a zero cap (use null)'],
    [{ daily_caps: { XXX: 1 } }, 'an unknown currency'],
    [{ velocity: { max: 0, window_s: 60 } }, 'velocity 0'],
    [{ velocity: { max: 20 } }, 'velocity without a window'],
    [{ device_accounts_max: 101 }, 'K above its maximum'],
    [{ unusual_hours: [{ from: '1:00', to: '05:00' }] }, 'H:MM'],
    [{ unusual_hours: [{ from: '24:00', to: '05:00' }] }, 'from 24:00'],
    [{ unusual_hours: [{ from: '05:00', to: '05:00' }] }, 'an empty window'],
    [{ unusual_hours: [{ from: '00:00', to: '24:00' }] }, 'the whole day'],
    [{ unusual_hours: Array(9).fill({ from: '01:00', to: '02:00' }) }, 'nine windows'],
    [{ velocity_max: 3 }, 'an unknown field'],
  ])('refuses %j (%s)', (input) => {
    expect(riskSettingsSchema.safeParse(input).success).toBe(false);
  });

  it('becomes the hash fields risk.lua reads, 0 meaning off', () => {
    expect(settingsToFields({
      daily_caps: { CNY: 1000, USD: null }, velocity: { max: 5, window_s: 30 }, device_accounts_max: null,
      unusual_hours: [{ from: '01:00', to: '05:00' }, { from: '23:30', to: '00:15' }],
    })).toEqual([
      'cap:CNY', '1000', 'cap:USD', '0', 'velocity_max', '5', 'velocity_window_s', '30', 'device_accounts_max', '0',
      'unusual_hours', '60-300,1410-15',
    ]);
    expect(settingsToFields({ velocity: null })).toEqual(['velocity_max', '0', 'velocity_window_s', '0']);
    expect(settingsToFields({ unusual_hours: [] })).toEqual(['unusual_hours', '']);
  });

  it('round-trips windows and evaluates [from, to), wrapping midnight', () => {
    const w = [{ from: '01:00', to: '05:00' }, { from: '23:00', to: '02:00' }, { from: '12:00', to: '24:00' }];
    expect(windowsFromField(windowsToField(w))).toEqual(w);
    expect(windowsFromField('')).toEqual([]);
    const one = [{ from: '01:00', to: '05:00' }];
    expect([59, 60, 299, 300].map((m) => inWindows(m, one))).toEqual([false, true, true, false]);
    const wrap = [{ from: '23:00', to: '02:00' }];
    expect([1379, 1380, 0, 119, 120].map((m) => inWindows(m, wrap))).toEqual([false, true, true, true, false]);
    expect(minuteOf('24:00')).toBe(1440);
  });

  it('shows what the script returns as the settings in force', () => {
    expect(effectiveFromLua({ caps: { USD: 0, CNY: 500_000 }, velocity_max: 20, velocity_window_s: 60, device_accounts_max: 3, unusual_hours: '' }))
      .toEqual(RISK_DEFAULTS);
    expect(effectiveFromLua({ caps: {}, velocity_max: 0, velocity_window_s: 0, device_accounts_max: 0, unusual_hours: '60-300' }))
      .toEqual({ daily_caps: {}, velocity: null, device_accounts_max: null, unusual_hours: [{ from: '01:00', to: '05:00' }] });
  });
});

describe('rebuilding settings', () => {
  it('writes the settings in force as a full update that reads back the same, CNY off included', () => {
    const luaOf = (fields: string[]) => {
      const h = new Map<string, string>();
      for (let i = 0; i < fields.length; i += 2) h.set(fields[i] as string, fields[i + 1] as string);
      const caps: Record<string, number> = { CNY: 500_000 };
      for (const [k, v] of h) if (k.startsWith('cap:')) caps[k.slice(4)] = Number(v);
      return effectiveFromLua({
        caps, velocity_max: Number(h.get('velocity_max') ?? 20), velocity_window_s: Number(h.get('velocity_window_s') ?? 60),
        device_accounts_max: Number(h.get('device_accounts_max') ?? 3), unusual_hours: h.get('unusual_hours') ?? '',
      });
    };
    for (const eff of [
      RISK_DEFAULTS,
      { daily_caps: { USD: 5 }, velocity: null, device_accounts_max: null, unusual_hours: [{ from: '23:00', to: '01:00' }] },
    ]) {
      expect(luaOf(settingsToFields(settingsFromEffective(eff)))).toEqual(eff);
    }
  });
});

describe('risk commands', () => {
  const base = { v: PROTOCOL_VERSION, cmd_id: 'cmd_1', merchant_id: 'm_1', ts_ms: 1 } as const;

  it('validate the blacklist value by its kind', () => {
    const bl = (kind: string, value: string) => commandSchema.safeParse({ ...base, type: 'risk.blacklist', action: 'add', kind, value }).success;
    expect(bl('ip', '203.0.113.9')).toBe(true);
    expect(bl('ip', '203.0.113.999')).toBe(false);
    expect(bl('user', 'x'.repeat(64))).toBe(true);
    expect(bl('user', 'x'.repeat(65))).toBe(false);
    expect(bl('device', 'x'.repeat(128))).toBe(true);
    expect(bl('email', 'a@b')).toBe(false);
    expect(commandSchema.safeParse({ ...base, type: 'payment.verify', payment_id: 'pay_1' }).success).toBe(true);
  });

  it('produce one event without postings, with the first application time, and a reply carrying the change', () => {
    const result: ScriptResult = {
      replayed: true, code: ScriptCode.Ok, payment: null, account: null, effects: [], events: ['risk.blacklist_changed'], existing: null,
      risk: { blacklist: { action: 'add', kind: 'user', value: 'u_9', changed: true, size: 1 } }, atMs: 1_000,
    };
    const o = riskOutcomeOf({ ...base, type: 'risk.blacklist', action: 'add', kind: 'user', value: 'u_9' }, result, 2_000);
    expect(o.events).toHaveLength(1);
    expect(o.events[0]).toMatchObject({ id: 'evt_cmd_1_0', type: 'risk.blacklist_changed', ts_ms: 1_000, postings: [], risk: result.risk });
    expect(o.reply).toMatchObject({ ok: true, replayed: true, risk: result.risk });
    const full = riskOutcomeOf({ ...base, type: 'risk.blacklist', action: 'add', kind: 'user', value: 'u_9' },
      { ...result, code: ScriptCode.RiskBlacklistFull, events: [], risk: undefined }, 2_000);
    expect(full.events).toEqual([]);
    expect(full.reply).toMatchObject({ ok: false, code: 'risk.blacklist_full' });
  });
});

describe('risk metrics', () => {
  const payment = (status: Payment['status'], failure: string | null): Payment => ({
    id: 'pay_1', merchant_id: 'm_1', out_trade_no: 'T1', amount: 100, currency: 'CNY', amount_captured: 0, amount_refunded: 0,
    method: 'balance', channel: 'balance', scene: 'pc', subject: null, account_id: 'a1', status,
    failure: failure ? { code: failure, message: 'x' } : null, next_action: status === 'requires_action' ? { type: 'verify' } : null,
    buyer: null, metadata: null, hold_expires_at: null, created_at: '2025-01-01T00:00:00.000Z', updated_at: '2025-01-01T00:00:00.000Z', version: 1,
  });
  const outcome = (type: EngineEvent['type'], p: Payment, replayed = false): Outcome => ({
    events: [{ v: 1, id: 'e', type, merchant_id: 'm_1', cmd_id: 'c', ts_ms: 1, payment: p, account: null, postings: [], memo: null }],
    reply: { v: 1, cmd_id: 'c', ok: true, replayed, payment: p, account: null },
    payment: p,
  });

  it('counts refusals by reason and challenges, never a replay or a funds failure', async () => {
    const m = engineMetrics(new Registry());
    observeRisk(m, outcome('payment.failed', payment('failed', 'risk.daily_cap_exceeded')));
    observeRisk(m, outcome('payment.failed', payment('failed', 'risk.daily_cap_exceeded')));
    observeRisk(m, outcome('payment.failed', payment('failed', 'risk.blacklisted'), true));
    observeRisk(m, outcome('payment.failed', payment('failed', 'balance.insufficient_funds')));
    observeRisk(m, outcome('payment.requires_action', payment('requires_action', null)));
    observeRisk(m, outcome('payment.authorized', payment('authorized', null)));
    expect(riskDecisionOf(outcome('payment.canceled', payment('canceled', null)))).toBeNull();
    const text = await m.registry.metrics();
    expect(text).toContain('peakpay_risk_refusals_total{reason="risk.daily_cap_exceeded"} 2');
    // Every reason is exported from the start (at 0), so the replayed refusal must have left it there.
    expect(text).toContain('peakpay_risk_refusals_total{reason="risk.blacklisted"} 0');
    expect(text).not.toContain('balance.insufficient_funds');
    expect(text).toContain('peakpay_risk_challenges_total{reason="risk.unusual_hours"} 1');
  });
});

describe('operator flags', () => {
  it('parse risk:set into validated settings', () => {
    expect(riskSettingsFromArgs({
      'daily-cap-cny': '500000', velocity: '20/60', 'device-accounts': '3', 'unusual-hours': '01:00-05:00, 23:00-24:00', 'daily-cap': ['USD=off'],
    })).toEqual({
      daily_caps: { CNY: 500_000, USD: null }, velocity: { max: 20, window_s: 60 }, device_accounts_max: 3,
      unusual_hours: [{ from: '01:00', to: '05:00' }, { from: '23:00', to: '24:00' }],
    });
    expect(riskSettingsFromArgs({ velocity: 'off', 'unusual-hours': 'none' })).toEqual({ velocity: null, unusual_hours: [] });
  });

  it.each<[RiskArgs, RegExp]>([
    [{}, /needs at least one/],
    [{ 'daily-cap-cny': '5000.50' }, /whole number of minor units/],
    [{ 'daily-cap-cny': '0' }, /daily_caps.CNY/],
    [{ velocity: '20' }, /<payments>\/<seconds>/],
    [{ velocity: '0/60' }, /velocity.max/],
    [{ 'device-accounts': 'three' }, /--device-accounts must be a whole number/],
    [{ 'unusual-hours': '1-5' }, /HH:MM-HH:MM/],
    [{ 'unusual-hours': '05:00-05:00' }, /from and to must differ/],
    [{ 'daily-cap': ['usd=5'] }, /CUR=amount/],
    [{ 'daily-cap': ['XXX=5'] }, /daily_caps/],
  ])('refuses bad risk:set flags %j with a clear message', (args, message) => {
    expect(() => riskSettingsFromArgs(args)).toThrow(OpsError);
    expect(() => riskSettingsFromArgs(args)).toThrow(message);
  });

  it('parse blacklist flags: exactly one valid entry', () => {
    expect(blacklistEntryFromArgs('m_1', 'add', { ip: '203.0.113.9' })).toEqual({ kind: 'ip', value: '203.0.113.9' });
    expect(() => blacklistEntryFromArgs('m_1', 'add', {})).toThrow(/exactly one/);
    expect(() => blacklistEntryFromArgs('m_1', 'add', { user: 'u', device: 'd' })).toThrow(/exactly one/);
    expect(() => blacklistEntryFromArgs('m_1', 'remove', { ip: '1.2.3' })).toThrow(/not a valid buyer ip/);
  });
});
