-- Up Migration

-- Channel payments: the channel collects (channel:<name>:clearing) for the merchant or, for a
-- top-up, for a wallet; the channel's fee moves merchant:settlement → channel:<name>:fees.
ALTER TABLE postings DROP CONSTRAINT postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check
  CHECK (kind IN ('hold', 'release', 'capture', 'adjustment', 'refund', 'channel_capture', 'topup', 'fee'));

-- One row per channel payment that succeeded, from its payment.succeeded event (the event's
-- `settlement`): the platform's side of the three-way reconciliation against the channel's bill.
CREATE TABLE channel_settlements (
  payment_id       text PRIMARY KEY,
  merchant_id      text NOT NULL,
  event_id         text NOT NULL,
  channel          text NOT NULL,
  channel_trade_no text,
  amount           bigint NOT NULL CHECK (amount > 0),
  currency         char(3) NOT NULL,
  channel_amount   bigint NOT NULL CHECK (channel_amount > 0),
  channel_currency char(3) NOT NULL,
  fx_rate          text,
  fx_as_of         text,
  fee              bigint NOT NULL CHECK (fee >= 0),
  fee_bps          integer NOT NULL CHECK (fee_bps BETWEEN 0 AND 10000),
  settled_at       timestamptz NOT NULL
);
CREATE INDEX channel_settlements_channel_day ON channel_settlements (channel, settled_at);

-- Down Migration
DROP TABLE channel_settlements;
ALTER TABLE postings DROP CONSTRAINT postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check
  CHECK (kind IN ('hold', 'release', 'capture', 'adjustment', 'refund'));
