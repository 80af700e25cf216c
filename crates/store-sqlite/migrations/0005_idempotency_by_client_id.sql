-- The idempotency index leads with the client id rather than the sender.
--
-- Why: the widget and the inbox make client ids that start with the time (docs/protocol.md),
-- so new ids now go to one end of the index: the messages of a commit share its last leaf
-- instead of changing a leaf each (their senders' runs lie all over the index). With
-- realistic traffic the server writes 12-21 % less per message (docs/performance.md,
-- round 18). An id that does not grow with time (another client's, or a browser whose
-- clock is far off) costs a leaf of its own, as every id did before.
--
-- Lookups give both columns (`author_key = ? AND client_id = ?`), so either order serves
-- them. The one statement that looked messages up by sender alone, re-keying a merged
-- contact's messages, now finds them through the contact's conversations.
DROP INDEX messages_idempotency;
CREATE UNIQUE INDEX messages_idempotency ON messages(client_id, author_key) WHERE client_id IS NOT NULL;
