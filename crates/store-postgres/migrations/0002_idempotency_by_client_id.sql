-- The idempotency index leads with the client id rather than the sender: the clients'
-- ids start with the time, so new ones go to one end of the index and a commit's messages
-- share its last leaf (see the SQLite store's migration 0005 and docs/performance.md,
-- round 18). Lookups give both columns; re-keying a merged contact's messages finds them
-- through the contact's conversations.
DROP INDEX messages_idempotency;
CREATE UNIQUE INDEX messages_idempotency ON messages(client_id, author_key) WHERE client_id IS NOT NULL;
