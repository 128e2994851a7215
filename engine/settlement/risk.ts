// The settlement side of the risk commands: risk.configured and risk.blacklist_changed events
// become rows of risk_settings and risk_blacklist (migrations/1764400000000_risk.sql), inside the
// writer's transaction and only for events seen for the first time. The latest stream sequence
// wins, so a redelivered batch changes nothing and the rows always match the event log.
import type pg from 'pg';
import type { StoredEvent } from './writer.ts';

const iso = (ms: number) => new Date(ms).toISOString();

/** Keeps the row of the highest stream sequence per key: an upsert may not touch a row twice. */
function latestBy<T extends { stream_seq: number }>(rows: T[], key: (r: T) => string): T[] {
  const out = new Map<string, T>();
  for (const r of rows) if ((out.get(key(r))?.stream_seq ?? -1) < r.stream_seq) out.set(key(r), r);
  return [...out.values()];
}

export async function writeRiskChanges(client: pg.PoolClient, fresh: readonly StoredEvent[]): Promise<void> {
  const settings = latestBy(
    fresh.flatMap(({ seq, event: e }) =>
      e.type === 'risk.configured' && e.risk?.settings
        ? [{ merchant_id: e.merchant_id, settings: e.risk.settings, event_id: e.id, stream_seq: seq, updated_at: iso(e.ts_ms) }]
        : []),
    (r) => r.merchant_id,
  );
  if (settings.length > 0) {
    await client.query(
      `INSERT INTO risk_settings AS r (merchant_id, settings, event_id, stream_seq, updated_at)
       SELECT merchant_id, settings, event_id, stream_seq, updated_at
       FROM jsonb_to_recordset($1::jsonb) AS x(merchant_id text, settings jsonb, event_id text, stream_seq bigint, updated_at timestamptz)
       ON CONFLICT (merchant_id) DO UPDATE SET settings = EXCLUDED.settings, event_id = EXCLUDED.event_id,
          stream_seq = EXCLUDED.stream_seq, updated_at = EXCLUDED.updated_at
       WHERE r.stream_seq < EXCLUDED.stream_seq`,
      [JSON.stringify(settings)],
    );
  }

  const entries = latestBy(
    fresh.flatMap(({ seq, event: e }) => {
      const b = e.type === 'risk.blacklist_changed' ? e.risk?.blacklist : undefined;
      return b
        ? [{ merchant_id: e.merchant_id, kind: b.kind, value: b.value, listed: b.action === 'add', event_id: e.id, stream_seq: seq, changed_at: iso(e.ts_ms) }]
        : [];
    }),
    (r) => `${r.merchant_id}\u0000${r.kind}\u0000${r.value}`,
  );
  if (entries.length > 0) {
    await client.query(
      `INSERT INTO risk_blacklist AS b (merchant_id, kind, value, listed, event_id, stream_seq, changed_at)
       SELECT merchant_id, kind, value, listed, event_id, stream_seq, changed_at
       FROM jsonb_to_recordset($1::jsonb) AS x(merchant_id text, kind text, value text, listed boolean, event_id text,
            stream_seq bigint, changed_at timestamptz)
       ON CONFLICT (merchant_id, kind, value) DO UPDATE SET listed = EXCLUDED.listed, event_id = EXCLUDED.event_id,
          stream_seq = EXCLUDED.stream_seq, changed_at = EXCLUDED.changed_at
       WHERE b.stream_seq < EXCLUDED.stream_seq`,
      [JSON.stringify(entries)],
    );
  }
}
