-- Confab's schema on SQLite. Times are INTEGER microseconds since the Unix epoch (UTC),
-- the same representation as the PostgreSQL backend's BIGINT columns.

CREATE TABLE agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    avatar_url TEXT,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'agent')),
    access TEXT NOT NULL CHECK (access IN ('full', 'restricted')),
    available INTEGER NOT NULL DEFAULT 0,
    notify_desktop INTEGER NOT NULL DEFAULT 1,
    notify_sound INTEGER NOT NULL DEFAULT 1,
    notify_all_messages INTEGER NOT NULL DEFAULT 0,
    deactivated INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_agent ON sessions(agent_id);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE teams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE team_members (
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, agent_id)
);

CREATE TABLE sites (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    identity_secret TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    name TEXT,
    email TEXT,
    phone TEXT,
    external_id TEXT,
    verified INTEGER NOT NULL DEFAULT 0,
    consent_text TEXT,
    consent_at INTEGER,
    user_agent TEXT,
    ip TEXT,
    location TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX contacts_external ON contacts(site_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX contacts_email ON contacts(site_id, email);

CREATE TABLE contact_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX contact_notes_contact ON contact_notes(contact_id);

CREATE TABLE page_views (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    title TEXT,
    referrer TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX page_views_contact ON page_views(contact_id, id);

CREATE TABLE visitor_sessions (
    token_hash TEXT PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);
CREATE INDEX visitor_sessions_contact ON visitor_sessions(contact_id);

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'snoozed', 'closed')),
    assignee_id INTEGER REFERENCES agents(id),
    team_id INTEGER REFERENCES teams(id) ON DELETE SET NULL,
    snoozed_until INTEGER,
    closed_at INTEGER,
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_visible_seq INTEGER NOT NULL DEFAULT 0,
    last_visitor_seq INTEGER NOT NULL DEFAULT 0,
    handoff_at INTEGER,
    agent_took_part INTEGER NOT NULL DEFAULT 0,
    offline INTEGER NOT NULL DEFAULT 0,
    rating TEXT,
    rating_comment TEXT,
    start_url TEXT,
    visitor_read_seq INTEGER NOT NULL DEFAULT 0,
    agent_read_seq INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    last_message_at INTEGER NOT NULL
);
-- One live conversation per contact, site and channel: two tabs starting a chat at once
-- get the same one.
CREATE UNIQUE INDEX conversations_one_live ON conversations(contact_id, site_id, channel)
    WHERE status <> 'closed';
CREATE INDEX conversations_inbox ON conversations(status, assignee_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_contact ON conversations(contact_id);

CREATE TABLE conversation_tags (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (conversation_id, tag)
);
CREATE INDEX conversation_tags_tag ON conversation_tags(tag);

CREATE TABLE attachments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    path TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    visible_seq INTEGER,
    kind TEXT NOT NULL,
    author_kind TEXT NOT NULL,
    agent_id INTEGER REFERENCES agents(id),
    author_name TEXT,
    -- The idempotency scope: 'v<contact id>' or 'a<agent id>'.
    author_key TEXT,
    body TEXT NOT NULL,
    event TEXT,
    attachment_id INTEGER REFERENCES attachments(id) ON DELETE SET NULL,
    client_id TEXT,
    mentions TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_visible ON messages(conversation_id, visible_seq) WHERE visible_seq IS NOT NULL;
CREATE UNIQUE INDEX messages_idempotency ON messages(author_key, client_id) WHERE client_id IS NOT NULL;

-- I9: full text over message bodies, kept in step by triggers so that a delete (I5, C5)
-- also removes the index entries.
CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='id');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind <> 'event' BEGIN
    INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.kind <> 'event' BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

CREATE TABLE agent_reads (
    agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    PRIMARY KEY (agent_id, conversation_id)
);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    message_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    preview TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    read_at INTEGER
);
CREATE INDEX notifications_agent ON notifications(agent_id, id DESC);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    run_at INTEGER NOT NULL,
    locked_until INTEGER
);
CREATE INDEX jobs_due ON jobs(run_at);
