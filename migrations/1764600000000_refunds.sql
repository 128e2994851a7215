-- Up Migration

-- Refunds move captured money back to the buyer's wallet: postings of kind 'refund'
-- (merchant:settlement -amount, wallet:<account>:available +amount).
ALTER TABLE postings DROP CONSTRAINT postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check
  CHECK (kind IN ('hold', 'release', 'capture', 'adjustment', 'refund'));

-- One row per refund (events refund.succeeded), written by the settlement consumer in the same
-- transaction as its event, postings and the payment's amount_refunded. What GET /v1/refunds/{id}
-- reads when Redis no longer has the refund, and what a Redis rebuild re-creates the refund hashes
-- (pp:{m}:refund:<id>) from. created_at keeps the engine's milliseconds exactly.
CREATE TABLE refunds (
  merchant_id text NOT NULL,
  id          text NOT NULL CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  payment_id  text NOT NULL REFERENCES payments (id),
  account_id  text NOT NULL,
  amount      bigint NOT NULL CHECK (amount > 0),
  currency    char(3) NOT NULL,
  status      text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  reason      text CHECK (reason IS NULL OR length(reason) BETWEEN 1 AND 200),
  event_id    text NOT NULL REFERENCES events (id),
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (merchant_id, id)
);
CREATE INDEX refunds_payment ON refunds (payment_id);

-- Down Migration
DROP TABLE refunds;
ALTER TABLE postings DROP CONSTRAINT postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check
  CHECK (kind IN ('hold', 'release', 'capture', 'adjustment'));
