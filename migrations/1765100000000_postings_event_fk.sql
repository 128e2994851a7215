-- Up Migration

-- No foreign key from postings to events. Postgres checks one with a query per inserted row that
-- also locks the event row (FOR KEY SHARE, a WAL record of its own): four per settled payment, on
-- the hottest table, for rows the same transaction inserted a moment before. Inserting postings
-- took 2.4× as long with it (docs/BENCHMARKS.md). The settlement writer is the only writer, and it
-- writes an event's postings only in the transaction that inserted that event; the writer's tests
-- (test/integration/settlement-writer.test.ts) check that no posting is ever without its event.
ALTER TABLE postings DROP CONSTRAINT postings_event_id_fkey;

-- Down Migration
ALTER TABLE postings ADD CONSTRAINT postings_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id);
