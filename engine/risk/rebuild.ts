// Rebuilding a merchant's risk configuration in Redis from Postgres (MISSION §4.4): the settings
// hash from risk_settings (the settings in force, written from risk.configured events) and the
// blacklist set from risk_blacklist (entries whose latest change was an add). One more entry of
// engine/rebuild's REBUILDERS.
//
// Not rebuilt: the day counters, velocity logs and device sets (they live at most two days), nor op
// records of risk commands (re-applying a risk command is harmless: it sets the same values). After a
// rebuild the rules restart from zero for the rest of the day; see docs/RISK.md.
import type { Rebuilder } from '../rebuild/rebuilders.ts';
import { blacklistEntry, type BlacklistKind } from './rules.ts';
import { effectiveRiskSettingsSchema, settingsToFields, type EffectiveRiskSettings, type RiskSettings } from './settings.ts';

/** Rows per Postgres page of blacklist entries. */
export const BLACKLIST_PAGE_ROWS = 1_000;

/**
 * The settings in force as a full update of the settings hash. A currency absent from daily_caps
 * has no cap; for CNY, which has a default, that must be written explicitly (null → "0").
 */
export function settingsFromEffective(s: EffectiveRiskSettings): RiskSettings {
  return {
    daily_caps: { CNY: null, ...s.daily_caps },
    velocity: s.velocity,
    device_accounts_max: s.device_accounts_max,
    unusual_hours: s.unusual_hours,
  };
}

export const riskRebuilder: Rebuilder = {
  name: 'risk',
  owns: ['risk:cfg', 'risk:bl'],
  async rebuild(ctx) {
    let written = 0;
    const s = await ctx.pool.query<{ settings: unknown }>('SELECT settings FROM risk_settings WHERE merchant_id = $1', [ctx.merchantId]);
    const row = s.rows[0];
    if (row) {
      const fields = settingsToFields(settingsFromEffective(effectiveRiskSettingsSchema.parse(row.settings)));
      await ctx.batch.add((p) => p.hset(ctx.keys.riskConfig, ...fields));
      written++;
    }
    let after = { kind: '', value: '' };
    for (;;) {
      const page = await ctx.pool.query<{ kind: BlacklistKind; value: string }>(
        `SELECT kind, value FROM risk_blacklist WHERE merchant_id = $1 AND listed AND (kind, value) > ($2::text, $3::text)
         ORDER BY kind, value LIMIT $4`,
        [ctx.merchantId, after.kind, after.value, BLACKLIST_PAGE_ROWS],
      );
      const last = page.rows[page.rows.length - 1];
      if (!last) break;
      const members = page.rows.map((r) => blacklistEntry(r.kind, r.value));
      await ctx.batch.add((p) => p.sadd(ctx.keys.riskBlacklist, ...members));
      written += members.length;
      if (page.rows.length < BLACKLIST_PAGE_ROWS) break;
      after = last;
    }
    return written;
  },
};
