// Per-merchant risk thresholds: the zod schema of `risk.configure`, its translation into the fields
// of the merchant's Redis hash (pp:{m}:risk:cfg) that risk.lua reads, and back into the effective
// settings (defaults applied by the script) that the event and the reply carry.
import { z } from 'zod';
import { amountSchema, currencySchema } from '../protocol/money.ts';
import {
  DEVICE_ACCOUNTS_MAX_MAX, UNUSUAL_WINDOWS_MAX, VELOCITY_MAX_MAX, VELOCITY_WINDOW_S_MAX,
} from './rules.ts';

const HHMM = /^(?:[01]\d|2[0-3]):[0-5]\d$/;
const HHMM_OR_24 = /^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$/;

/** A local (Asia/Shanghai) window [from, to): from inclusive, to exclusive; from > to wraps midnight. */
export const hourWindowSchema = z
  .strictObject({
    from: z.string().regex(HHMM, 'must be HH:MM, 00:00-23:59'),
    to: z.string().regex(HHMM_OR_24, 'must be HH:MM, 00:00-24:00'),
  })
  .refine((w) => minuteOf(w.from) !== minuteOf(w.to) % 1440, { message: 'from and to must differ (an empty or whole-day window)' });
export type HourWindow = z.infer<typeof hourWindowSchema>;

export const velocitySchema = z.strictObject({
  max: z.number().int().min(1).max(VELOCITY_MAX_MAX),
  window_s: z.number().int().min(1).max(VELOCITY_WINDOW_S_MAX),
});

/**
 * What `risk.configure` carries: a partial update (absent = unchanged). `null` switches a rule off
 * (a currency's cap, velocity, the device rule); `unusual_hours: []` removes every window.
 */
export const riskSettingsSchema = z
  .strictObject({
    daily_caps: z.partialRecord(currencySchema, amountSchema.nullable()).optional(),
    velocity: velocitySchema.nullable().optional(),
    device_accounts_max: z.number().int().min(1).max(DEVICE_ACCOUNTS_MAX_MAX).nullable().optional(),
    unusual_hours: z.array(hourWindowSchema).max(UNUSUAL_WINDOWS_MAX).optional(),
  })
  .refine((s) => Object.values(s).some((v) => v !== undefined), { message: 'at least one setting is required' });
export type RiskSettings = z.infer<typeof riskSettingsSchema>;

/** The settings in force (defaults applied); what `risk.configured` records. */
export const effectiveRiskSettingsSchema = z.object({
  daily_caps: z.record(z.string(), z.number().int().positive()),
  velocity: velocitySchema.nullable(),
  device_accounts_max: z.number().int().positive().nullable(),
  unusual_hours: z.array(z.object({ from: z.string(), to: z.string() })),
});
export type EffectiveRiskSettings = z.infer<typeof effectiveRiskSettingsSchema>;

export function minuteOf(hhmm: string): number {
  const [h, m] = hhmm.split(':');
  return Number(h) * 60 + Number(m);
}

const hhmmOf = (minute: number): string =>
  `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;

/** Windows as risk.lua reads them: `from-to` in minutes of the day, comma-separated ("60-300"). */
export function windowsToField(windows: readonly HourWindow[]): string {
  return windows.map((w) => `${minuteOf(w.from)}-${minuteOf(w.to)}`).join(',');
}

export function windowsFromField(field: string): HourWindow[] {
  if (field === '') return [];
  return field.split(',').map((part) => {
    const m = /^(\d{1,4})-(\d{1,4})$/.exec(part);
    if (!m) throw new Error(`assertion: malformed unusual_hours field ${JSON.stringify(field)}`);
    return { from: hhmmOf(Number(m[1])), to: hhmmOf(Number(m[2])) };
  });
}

/** Is the minute of the day inside any window? The same rule as inUnusualHours() in risk.lua. */
export function inWindows(minute: number, windows: readonly HourWindow[]): boolean {
  return windows.some((w) => {
    const from = minuteOf(w.from);
    const to = minuteOf(w.to);
    return from < to ? minute >= from && minute < to : minute >= from || minute < to;
  });
}

/**
 * The HSET arguments for a partial update: field, value, field, value … All values are integer
 * strings or the windows string; "0" means "rule off" (risk.lua's convention; absent = default).
 */
export function settingsToFields(s: RiskSettings): string[] {
  const out: string[] = [];
  for (const [currency, cap] of Object.entries(s.daily_caps ?? {})) out.push(`cap:${currency}`, String(cap ?? 0));
  if (s.velocity !== undefined) out.push('velocity_max', String(s.velocity?.max ?? 0), 'velocity_window_s', String(s.velocity?.window_s ?? 0));
  if (s.device_accounts_max !== undefined) out.push('device_accounts_max', String(s.device_accounts_max ?? 0));
  if (s.unusual_hours !== undefined) out.push('unusual_hours', windowsToField(s.unusual_hours));
  return out;
}

/** What risk.lua's riskSettings() returns (cmsgpack), before it is shown as EffectiveRiskSettings. */
export const luaRiskSettingsSchema = z.object({
  // cmsgpack packs an empty Lua table as an array.
  caps: z.preprocess((v) => (Array.isArray(v) && v.length === 0 ? {} : v), z.record(z.string(), z.number().int().min(0))),
  velocity_max: z.number().int().min(0),
  velocity_window_s: z.number().int().min(0),
  device_accounts_max: z.number().int().min(0),
  unusual_hours: z.string(),
});
export type LuaRiskSettings = z.infer<typeof luaRiskSettingsSchema>;

export function effectiveFromLua(raw: LuaRiskSettings): EffectiveRiskSettings {
  const caps: Record<string, number> = {};
  for (const [currency, cap] of Object.entries(raw.caps).sort(([a], [b]) => a.localeCompare(b))) if (cap > 0) caps[currency] = cap;
  return {
    daily_caps: caps,
    velocity: raw.velocity_max > 0 ? { max: raw.velocity_max, window_s: raw.velocity_window_s } : null,
    device_accounts_max: raw.device_accounts_max > 0 ? raw.device_accounts_max : null,
    unusual_hours: windowsFromField(raw.unusual_hours),
  };
}

export const BLACKLIST_KINDS = ['user', 'device', 'ip'] as const;
export const blacklistKindSchema = z.enum(BLACKLIST_KINDS);

/** One blacklist change as the script applied it (value canonical; changed = the set changed). */
export const blacklistChangeSchema = z.object({
  action: z.enum(['add', 'remove']),
  kind: blacklistKindSchema,
  value: z.string().min(1).max(128),
  changed: z.boolean(),
  size: z.number().int().min(0),
});
export type BlacklistChange = z.infer<typeof blacklistChangeSchema>;

/** What a risk command changed: carried by its event (risk.configured / risk.blacklist_changed) and reply. */
export const riskChangeSchema = z.object({
  settings: effectiveRiskSettingsSchema.optional(),
  blacklist: blacklistChangeSchema.optional(),
});
export type RiskChange = z.infer<typeof riskChangeSchema>;
