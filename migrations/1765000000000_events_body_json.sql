-- Up Migration

-- events.body as json, not jsonb. The settlement consumer writes every event once and the body is
-- read back rarely (a Redis rebuild, an audit): jsonb's conversion to its binary form (and the
-- compression of the larger result) made inserting an event ~40% dearer in Postgres
-- (docs/BENCHMARKS.md). json keeps the text the engine sent, checked to be JSON; ->, ->> and
-- json_typeof still work on it, and the rebuild's few queries parse it on read.
ALTER TABLE events ALTER COLUMN body TYPE json USING body::json;

-- Down Migration
ALTER TABLE events ALTER COLUMN body TYPE jsonb USING body::jsonb;
