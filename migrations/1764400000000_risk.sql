-- Up Migration

-- Risk configuration of each merchant as the engine applied it (events risk.configured), written by
-- the settlement consumer: the settings in force, defaults applied (docs/RISK.md). The full
-- history is in events; stream_seq makes the upsert order-independent and idempotent.
CREATE TABLE risk_settings (
  merchant_id text PRIMARY KEY,
  settings    jsonb NOT NULL,
  event_id    text NOT NULL REFERENCES events (id),
  stream_seq  bigint NOT NULL,
  updated_at  timestamptz NOT NULL
);

-- Blacklist entries (events risk.blacklist_changed): the latest add or remove of each entry wins by
-- stream_seq, so a redelivered or reordered batch converges to the same rows; listed = on the list.
CREATE TABLE risk_blacklist (
  merchant_id text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('user', 'device', 'ip')),
  value       text NOT NULL CHECK (length(value) BETWEEN 1 AND 128),
  listed      boolean NOT NULL,
  event_id    text NOT NULL REFERENCES events (id),
  stream_seq  bigint NOT NULL,
  changed_at  timestamptz NOT NULL,
  PRIMARY KEY (merchant_id, kind, value)
);
CREATE INDEX risk_blacklist_listed ON risk_blacklist (merchant_id) WHERE listed;

-- Down Migration
DROP TABLE risk_blacklist;
DROP TABLE risk_settings;
