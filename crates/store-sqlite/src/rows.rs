//! Turning rows into the domain's types, and the column lists that go with them.

use chrono::{DateTime, TimeZone, Utc};
use confab_domain::*;
use confab_store::{NewNotification, Result, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

pub fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_us(v: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(v).single().unwrap_or_default()
}

pub fn opt_from_us(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(from_us)
}

pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt row: {what}"))
}

pub fn parse<T: std::str::FromStr>(s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(corrupt)
}

pub fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(corrupt)
}

pub const AGENT_COLUMNS: &str =
    "id, email, name, display_name, avatar_url, role, access, available, \
    notify_desktop, notify_sound, notify_all_messages, deactivated, created_at";

pub fn agent(r: &impl Cols) -> Result<Agent> {
    Ok(Agent {
        id: AgentId(r.int("id")?),
        email: r.text("email")?,
        name: r.text("name")?,
        display_name: r.text("display_name")?,
        avatar_url: r.opt_text("avatar_url")?,
        role: parse(&r.text("role")?)?,
        access: parse(&r.text("access")?)?,
        available: r.flag("available")?,
        notify_desktop: r.flag("notify_desktop")?,
        notify_sound: r.flag("notify_sound")?,
        notify_all_messages: r.flag("notify_all_messages")?,
        deactivated: r.flag("deactivated")?,
        created_at: from_us(r.int("created_at")?),
    })
}

pub fn site(r: &SqliteRow) -> Result<Site> {
    Ok(Site {
        id: SiteId(r.get("id")),
        name: r.get("name"),
        public_key: r.get("public_key"),
        identity_secret: r.get("identity_secret"),
        settings: json(r.get::<&str, _>("settings"))?,
        created_at: from_us(r.get("created_at")),
    })
}

pub const CONTACT_COLUMNS: &str =
    "id, site_id, name, email, phone, external_id, verified, consent_text, \
    consent_at, user_agent, ip, location, tags, created_at";

pub fn contact(r: &impl Cols) -> Result<Contact> {
    Ok(Contact {
        id: ContactId(r.int("id")?),
        site_id: SiteId(r.int("site_id")?),
        name: r.opt_text("name")?,
        email: r.opt_text("email")?,
        phone: r.opt_text("phone")?,
        external_id: r.opt_text("external_id")?,
        verified: r.flag("verified")?,
        consent_text: r.opt_text("consent_text")?,
        consent_at: r.opt_int("consent_at")?.map(from_us),
        user_agent: r.opt_text("user_agent")?,
        ip: r.opt_text("ip")?,
        location: r.opt_text("location")?,
        tags: json(&r.text("tags")?)?,
        created_at: from_us(r.int("created_at")?),
    })
}

pub const CONVERSATION_COLUMNS: &str = "c.id, c.site_id, c.contact_id, c.channel, c.status, c.assignee_id, \
    c.team_id, c.snoozed_until, c.closed_at, c.last_seq, c.last_visible_seq, c.last_visitor_seq, c.handoff_at, \
    c.agent_took_part, c.offline, c.rating, c.rating_comment, c.start_url, c.visitor_read_seq, \
    c.agent_read_seq, c.tags, c.created_at, c.last_message_at";

/// A row's columns by name, whichever driver read it: sqlx's rows for the async store,
/// rusqlite's on the group commit's own thread (`writer.rs`). The mappers below take
/// either, so both paths build the same values from the same columns.
pub trait Cols {
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }
}

impl Cols for SqliteRow {
    fn int(&self, col: &str) -> Result<i64> {
        self.try_get(col).map_err(corrupt)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.try_get(col).map_err(corrupt)
    }
    fn text(&self, col: &str) -> Result<String> {
        self.try_get(col).map_err(corrupt)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.try_get(col).map_err(corrupt)
    }
}

/// A rusqlite row whose columns are found by name starting after the last one found.
///
/// rusqlite finds a named column by asking SQLite for every column's name from the first
/// on, so a mapper reading a row's n columns by name asks about n²/2 times; for the
/// conversation row read by every post that was a tenth of the writer thread's time
/// (docs/performance.md, round 4). The mappers read columns in about the order they are
/// selected, so starting from the one after the last match finds most at the first try.
pub struct Named<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    next: std::cell::Cell<usize>,
}

impl<'r, 's> Named<'r, 's> {
    pub fn new(row: &'r rusqlite::Row<'s>) -> Self {
        Named {
            row,
            next: std::cell::Cell::new(0),
        }
    }

    fn index(&self, col: &str) -> Result<usize> {
        let stmt: &rusqlite::Statement<'_> = self.row.as_ref();
        let n = stmt.column_count();
        let start = self.next.get();
        for k in 0..n {
            let i = (start + k) % n;
            if stmt
                .column_name(i)
                .is_ok_and(|name| name.eq_ignore_ascii_case(col))
            {
                self.next.set(i + 1);
                return Ok(i);
            }
        }
        Err(corrupt(format!("no column {col}")))
    }

    fn get<T: rusqlite::types::FromSql>(&self, col: &str) -> Result<T> {
        self.row.get(self.index(col)?).map_err(corrupt)
    }
}

impl Cols for Named<'_, '_> {
    fn int(&self, col: &str) -> Result<i64> {
        self.get(col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.get(col)
    }
    fn text(&self, col: &str) -> Result<String> {
        self.get(col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.get(col)
    }
}

/// A conversation as loaded for a change: mutated in memory, then saved once.
pub struct ConversationRow {
    pub conversation: Conversation,
}

pub fn conversation(r: &impl Cols) -> Result<ConversationRow> {
    Ok(ConversationRow {
        conversation: Conversation {
            id: ConversationId(r.int("id")?),
            site_id: SiteId(r.int("site_id")?),
            contact_id: ContactId(r.int("contact_id")?),
            channel: parse(&r.text("channel")?)?,
            status: parse(&r.text("status")?)?,
            assignee_id: r.opt_int("assignee_id")?.map(AgentId),
            team_id: r.opt_int("team_id")?.map(TeamId),
            snoozed_until: opt_from_us(r.opt_int("snoozed_until")?),
            closed_at: opt_from_us(r.opt_int("closed_at")?),
            last_seq: r.int("last_seq")?,
            last_visible_seq: r.int("last_visible_seq")?,
            handoff_at: opt_from_us(r.opt_int("handoff_at")?),
            agent_took_part: r.flag("agent_took_part")?,
            offline: r.flag("offline")?,
            rating: r.opt_text("rating")?.as_deref().map(parse).transpose()?,
            rating_comment: r.opt_text("rating_comment")?,
            start_url: r.opt_text("start_url")?,
            last_visitor_seq: r.int("last_visitor_seq")?,
            visitor_read_seq: r.int("visitor_read_seq")?,
            agent_read_seq: r.int("agent_read_seq")?,
            tags: json(&r.text("tags")?)?,
            created_at: from_us(r.int("created_at")?),
            last_message_at: from_us(r.int("last_message_at")?),
        },
    })
}

pub const MESSAGE_COLUMNS: &str =
    "m.id, m.conversation_id, m.seq, m.visible_seq, m.kind, m.author_kind, \
    m.agent_id, m.author_name, m.body, m.event, m.client_id, m.mentions, m.created_at, \
    a.id AS a_id, a.filename AS a_filename, a.content_type AS a_content_type, a.size AS a_size, \
    a.path AS a_path, a.created_at AS a_created_at";

pub fn message(r: &impl Cols) -> Result<Message> {
    let conversation_id = ConversationId(r.int("conversation_id")?);
    let attachment = match r.opt_int("a_id")? {
        Some(id) => Some(Attachment {
            id: AttachmentId(id),
            conversation_id,
            filename: r.text("a_filename")?,
            content_type: r.text("a_content_type")?,
            size: r.int("a_size")?,
            path: r.text("a_path")?,
            created_at: from_us(r.int("a_created_at")?),
        }),
        None => None,
    };
    Ok(Message {
        id: MessageId(r.int("id")?),
        conversation_id,
        seq: r.int("seq")?,
        visible_seq: r.opt_int("visible_seq")?,
        kind: parse(&r.text("kind")?)?,
        author_kind: parse(&r.text("author_kind")?)?,
        agent_id: r.opt_int("agent_id")?.map(AgentId),
        author_name: r.opt_text("author_name")?,
        body: r.text("body")?,
        event: r.opt_text("event")?.as_deref().map(json).transpose()?,
        attachment,
        client_id: r.opt_text("client_id")?,
        mentions: json(&r.text("mentions")?)?,
        created_at: from_us(r.int("created_at")?),
    })
}

pub fn attachment(r: &impl Cols) -> Result<Attachment> {
    Ok(Attachment {
        id: AttachmentId(r.int("id")?),
        conversation_id: ConversationId(r.int("conversation_id")?),
        filename: r.text("filename")?,
        content_type: r.text("content_type")?,
        size: r.int("size")?,
        path: r.text("path")?,
        created_at: from_us(r.int("created_at")?),
    })
}

/// A notification just inserted with row id `id`, as a read of its row would give it.
pub fn inserted_notification(n: &NewNotification, id: i64) -> Notification {
    Notification {
        id: NotificationId(id),
        agent_id: n.agent_id,
        kind: n.kind,
        conversation_id: n.conversation_id,
        message_id: n.message_id,
        preview: n.preview.clone(),
        created_at: from_us(us(n.now)),
        read_at: None,
    }
}

pub fn notification(r: &impl Cols) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId(r.int("id")?),
        agent_id: AgentId(r.int("agent_id")?),
        kind: parse(&r.text("kind")?)?,
        conversation_id: ConversationId(r.int("conversation_id")?),
        message_id: r.opt_int("message_id")?.map(MessageId),
        preview: r.text("preview")?,
        created_at: from_us(r.int("created_at")?),
        read_at: opt_from_us(r.opt_int("read_at")?),
    })
}
