-- Up Migration

-- Merchants: configuration, not money. The API secret is stored encrypted (AES-256-GCM with the
-- deployment's master key): nonce(12) | tag(16) | ciphertext.
CREATE TABLE merchants (
  id                 text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  name               text NOT NULL,
  secret_enc         bytea NOT NULL,
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  payment_amount_max bigint NOT NULL DEFAULT 5000000 CHECK (payment_amount_max > 0),
  settings           jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at         timestamptz NOT NULL DEFAULT now()
);

-- Every event the engine emitted, once (id = the JetStream Nats-Msg-Id). The audit trail.
CREATE TABLE events (
  id          text PRIMARY KEY,
  stream_seq  bigint NOT NULL,
  merchant_id text NOT NULL,
  type        text NOT NULL,
  cmd_id      text NOT NULL,
  payment_id  text,
  account_id  text,
  occurred_at timestamptz NOT NULL,
  body        jsonb NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_merchant_time ON events (merchant_id, occurred_at);
CREATE INDEX events_payment ON events (payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX events_cmd ON events (cmd_id);

-- Wallet accounts (agents' and buyers' prepaid balances). Balances are the ledger's sums.
CREATE TABLE accounts (
  merchant_id text NOT NULL,
  account_id  text NOT NULL,
  currency    char(3) NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (merchant_id, account_id)
);

-- Latest known state of each payment (the event with the highest version wins).
CREATE TABLE payments (
  id              text PRIMARY KEY,
  merchant_id     text NOT NULL,
  out_trade_no    text NOT NULL,
  amount          bigint NOT NULL CHECK (amount > 0),
  currency        char(3) NOT NULL,
  amount_captured bigint NOT NULL CHECK (amount_captured >= 0),
  amount_refunded bigint NOT NULL CHECK (amount_refunded >= 0 AND amount_refunded <= amount_captured),
  method          text NOT NULL,
  channel         text,
  scene           text NOT NULL,
  subject         text,
  account_id      text,
  status          text NOT NULL,
  failure_code    text,
  failure_message text,
  buyer           jsonb,
  metadata        jsonb,
  hold_expires_at timestamptz,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  version         integer NOT NULL,
  UNIQUE (merchant_id, out_trade_no)
);
CREATE INDEX payments_merchant_status ON payments (merchant_id, status);

-- Double-entry postings: each event's rows sum to zero per currency. Signed minor units.
CREATE TABLE postings (
  id             bigserial PRIMARY KEY,
  event_id       text NOT NULL REFERENCES events (id),
  merchant_id    text NOT NULL,
  ledger_account text NOT NULL,
  currency       char(3) NOT NULL,
  amount         bigint NOT NULL CHECK (amount <> 0),
  kind           text NOT NULL CHECK (kind IN ('hold', 'release', 'capture', 'adjustment')),
  memo           text,
  created_at     timestamptz NOT NULL
);
CREATE INDEX postings_account ON postings (merchant_id, ledger_account);
CREATE INDEX postings_event ON postings (event_id);

CREATE VIEW ledger_balances AS
  SELECT merchant_id, ledger_account, currency, sum(amount)::bigint AS balance, count(*) AS postings
  FROM postings GROUP BY merchant_id, ledger_account, currency;

-- Down Migration
DROP VIEW ledger_balances;
DROP TABLE postings;
DROP TABLE payments;
DROP TABLE accounts;
DROP TABLE events;
DROP TABLE merchants;
