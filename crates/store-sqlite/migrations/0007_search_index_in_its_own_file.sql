-- The full-text index (I9) moves to a file of its own beside the database, kept by a
-- thread of its own (src/search.rs): its steps no longer run on the writer thread, in the
-- database's log, between the group commits (docs/performance.md, round 21). The index
-- there is built from the messages when the store next opens.
DROP TRIGGER IF EXISTS messages_fts_delete;
DROP TABLE IF EXISTS messages_fts;
DROP TABLE IF EXISTS search_progress;

-- What the index must forget: every deleted message that may have an entry there, written
-- in the same transaction as the delete. The index thread removes the entries, syncs, and
-- then deletes these rows; AUTOINCREMENT keeps ids from being given twice, so the index's
-- mark of what it has applied stays right.
CREATE TABLE search_erasures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL
);
CREATE TRIGGER messages_search_erasure AFTER DELETE ON messages
WHEN old.kind <> 'event' BEGIN
    INSERT INTO search_erasures (message_id) VALUES (old.id);
END;
