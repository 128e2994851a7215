-- Up Migration

-- Refunds through channels: when the channel confirms a refund, the money leaves the merchant's
-- settlement back to the channel's clearing account (postings of kind 'channel_refund').
ALTER TABLE postings DROP CONSTRAINT postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check
  CHECK (kind IN ('hold', 'release', 'capture', 'adjustment', 'refund', 'channel_capture', 'topup', 'fee', 'channel_refund'));

-- A channel refund names no wallet (account_id NULL). It is written pending (refund.pending) and
-- then takes the status the channel decided, with the channel's id of the refund.
ALTER TABLE refunds ALTER COLUMN account_id DROP NOT NULL;
ALTER TABLE refunds ADD COLUMN channel_refund_id text CHECK (channel_refund_id IS NULL OR length(channel_refund_id) BETWEEN 1 AND 128);
-- The pending channel refunds a Redis rebuild puts back into the watch set.
CREATE INDEX refunds_pending ON refunds (merchant_id) WHERE status = 'pending';

-- Down Migration
-- Only while no channel refund exists: the NOT NULL and the kind check fail otherwise, on purpose.
DROP INDEX refunds_pending;
ALTER TABLE refunds DROP COLUMN channel_refund_id;
ALTER TABLE refunds ALTER COLUMN account_id SET NOT NULL;
ALTER TABLE postings DROP CONSTRAINT postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check
  CHECK (kind IN ('hold', 'release', 'capture', 'adjustment', 'refund', 'channel_capture', 'topup', 'fee'));
