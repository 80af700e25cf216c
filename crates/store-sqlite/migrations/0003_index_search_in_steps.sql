-- I9: the full-text index is written in steps of many messages instead of in each
-- message's own batch (see `writer::index_search` in src/writer.rs).
--
-- Why: every commit that adds entries makes FTS5 write a new segment, its index entry and
-- the structure record, and merge segments later: a third of the pages the writer wrote
-- to the log per batch at 5,000 msg/s, and the flush a twelfth of its time
-- (docs/performance.md, round 9). Written every few dozen messages instead, that work is
-- shared by all of them.
--
-- `indexed_upto` is the highest message id the index has seen: every searchable message
-- at or below it is in the index, none above it is. A search first asks the writer to
-- index what is above it (read-your-writes), and opening the store does the same after a
-- crash.
CREATE TABLE search_progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto INTEGER NOT NULL
);
-- Until now every message was indexed in its own transaction.
INSERT INTO search_progress (id, indexed_upto) VALUES (1, COALESCE((SELECT MAX(id) FROM messages), 0));

-- FTS5 must be told only of deletes of what it holds: a 'delete' of a row it never
-- indexed corrupts it. A message not indexed yet just goes (the next step will not find it).
DROP TRIGGER messages_fts_delete;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.kind <> 'event' AND old.id <= (SELECT indexed_upto FROM search_progress) BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
