-- Up Migration

-- events_cmd was never read: the rebuild groups a merchant's recent events by cmd_id through
-- events_merchant_time, and nothing looks an event up by its command. Every settled payment paid
-- for it with two index inserts (two events), on the hottest table (docs/BENCHMARKS.md).
DROP INDEX events_cmd;

-- Down Migration
CREATE INDEX events_cmd ON events (cmd_id);
