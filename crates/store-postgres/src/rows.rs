//! Turning rows into the domain's types, and the column lists that go with them.
//!
//! Every column is read with `try_get`: a row that does not decode is reported as a
//! corrupt row (`StoreError::Internal`), never a panic.

use chrono::{DateTime, TimeZone, Utc};
use confab_domain::*;
use confab_store::{Result, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

pub fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_us(v: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_micros(v)
        .single()
        .ok_or_else(|| corrupt(format!("timestamp {v} out of range")))
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

/// One column, decoded.
pub fn col<'r, T>(r: &'r PgRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    r.try_get(name).map_err(|e| corrupt(format!("{name}: {e}")))
}

pub fn time(r: &PgRow, name: &str) -> Result<DateTime<Utc>> {
    from_us(col(r, name)?)
}

pub fn opt_time(r: &PgRow, name: &str) -> Result<Option<DateTime<Utc>>> {
    col::<Option<i64>>(r, name)?.map(from_us).transpose()
}

fn parsed<T: std::str::FromStr>(r: &PgRow, name: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    parse(col::<&str>(r, name)?)
}

fn json_col<T: serde::de::DeserializeOwned>(r: &PgRow, name: &str) -> Result<T> {
    json(col::<&str>(r, name)?)
}

pub const AGENT_COLUMNS: &str =
    "id, email, name, display_name, avatar_url, role, access, available, \
    notify_desktop, notify_sound, notify_all_messages, deactivated, created_at";

pub fn agent(r: &PgRow) -> Result<Agent> {
    Ok(Agent {
        id: AgentId(col(r, "id")?),
        email: col(r, "email")?,
        name: col(r, "name")?,
        display_name: col(r, "display_name")?,
        avatar_url: col(r, "avatar_url")?,
        role: parsed(r, "role")?,
        access: parsed(r, "access")?,
        available: col(r, "available")?,
        notify_desktop: col(r, "notify_desktop")?,
        notify_sound: col(r, "notify_sound")?,
        notify_all_messages: col(r, "notify_all_messages")?,
        deactivated: col(r, "deactivated")?,
        created_at: time(r, "created_at")?,
    })
}

pub const SITE_COLUMNS: &str = "id, name, public_key, identity_secret, settings, created_at";

pub fn site(r: &PgRow) -> Result<Site> {
    Ok(Site {
        id: SiteId(col(r, "id")?),
        name: col(r, "name")?,
        public_key: col(r, "public_key")?,
        identity_secret: col(r, "identity_secret")?,
        settings: json_col(r, "settings")?,
        created_at: time(r, "created_at")?,
    })
}

pub const CONTACT_COLUMNS: &str =
    "id, site_id, name, email, phone, external_id, verified, consent_text, \
    consent_at, user_agent, ip, location, tags, created_at";

pub fn contact(r: &PgRow) -> Result<Contact> {
    Ok(Contact {
        id: ContactId(col(r, "id")?),
        site_id: SiteId(col(r, "site_id")?),
        name: col(r, "name")?,
        email: col(r, "email")?,
        phone: col(r, "phone")?,
        external_id: col(r, "external_id")?,
        verified: col(r, "verified")?,
        consent_text: col(r, "consent_text")?,
        consent_at: opt_time(r, "consent_at")?,
        user_agent: col(r, "user_agent")?,
        ip: col(r, "ip")?,
        location: col(r, "location")?,
        tags: json_col(r, "tags")?,
        created_at: time(r, "created_at")?,
    })
}

pub const CONVERSATION_COLUMNS: &str = "c.id, c.site_id, c.contact_id, c.channel, c.status, c.assignee_id, \
    c.team_id, c.snoozed_until, c.closed_at, c.last_seq, c.last_visible_seq, c.last_visitor_seq, c.handoff_at, \
    c.agent_took_part, c.offline, c.rating, c.rating_comment, c.start_url, c.visitor_read_seq, \
    c.agent_read_seq, c.tags, c.created_at, c.last_message_at";

pub fn conversation(r: &PgRow) -> Result<Conversation> {
    Ok(Conversation {
        id: ConversationId(col(r, "id")?),
        site_id: SiteId(col(r, "site_id")?),
        contact_id: ContactId(col(r, "contact_id")?),
        channel: parsed(r, "channel")?,
        status: parsed(r, "status")?,
        assignee_id: col::<Option<i64>>(r, "assignee_id")?.map(AgentId),
        team_id: col::<Option<i64>>(r, "team_id")?.map(TeamId),
        snoozed_until: opt_time(r, "snoozed_until")?,
        closed_at: opt_time(r, "closed_at")?,
        last_seq: col(r, "last_seq")?,
        last_visible_seq: col(r, "last_visible_seq")?,
        handoff_at: opt_time(r, "handoff_at")?,
        agent_took_part: col(r, "agent_took_part")?,
        offline: col(r, "offline")?,
        rating: col::<Option<&str>>(r, "rating")?.map(parse).transpose()?,
        rating_comment: col(r, "rating_comment")?,
        start_url: col(r, "start_url")?,
        last_visitor_seq: col(r, "last_visitor_seq")?,
        visitor_read_seq: col(r, "visitor_read_seq")?,
        agent_read_seq: col(r, "agent_read_seq")?,
        tags: json_col(r, "tags")?,
        created_at: time(r, "created_at")?,
        last_message_at: time(r, "last_message_at")?,
    })
}

pub const MESSAGE_COLUMNS: &str =
    "m.id, m.conversation_id, m.seq, m.visible_seq, m.kind, m.author_kind, \
    m.agent_id, m.author_name, m.body, m.event, m.client_id, m.mentions, m.created_at, \
    a.id AS a_id, a.filename AS a_filename, a.content_type AS a_content_type, a.size AS a_size, \
    a.path AS a_path, a.created_at AS a_created_at";

pub fn message(r: &PgRow) -> Result<Message> {
    let conversation_id = ConversationId(col(r, "conversation_id")?);
    let attachment = match col::<Option<i64>>(r, "a_id")? {
        Some(id) => Some(Attachment {
            id: AttachmentId(id),
            conversation_id,
            filename: col(r, "a_filename")?,
            content_type: col(r, "a_content_type")?,
            size: col(r, "a_size")?,
            path: col(r, "a_path")?,
            created_at: time(r, "a_created_at")?,
        }),
        None => None,
    };
    Ok(Message {
        id: MessageId(col(r, "id")?),
        conversation_id,
        seq: col(r, "seq")?,
        visible_seq: col(r, "visible_seq")?,
        kind: parsed(r, "kind")?,
        author_kind: parsed(r, "author_kind")?,
        agent_id: col::<Option<i64>>(r, "agent_id")?.map(AgentId),
        author_name: col(r, "author_name")?,
        body: col(r, "body")?,
        event: col::<Option<&str>>(r, "event")?.map(json).transpose()?,
        attachment,
        client_id: col(r, "client_id")?,
        mentions: json_col(r, "mentions")?,
        created_at: time(r, "created_at")?,
    })
}

pub const ATTACHMENT_COLUMNS: &str =
    "id, conversation_id, filename, content_type, size, path, created_at";

pub fn attachment(r: &PgRow) -> Result<Attachment> {
    Ok(Attachment {
        id: AttachmentId(col(r, "id")?),
        conversation_id: ConversationId(col(r, "conversation_id")?),
        filename: col(r, "filename")?,
        content_type: col(r, "content_type")?,
        size: col(r, "size")?,
        path: col(r, "path")?,
        created_at: time(r, "created_at")?,
    })
}

pub const NOTIFICATION_COLUMNS: &str =
    "id, agent_id, kind, conversation_id, message_id, preview, created_at, read_at";

pub fn notification(r: &PgRow) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId(col(r, "id")?),
        agent_id: AgentId(col(r, "agent_id")?),
        kind: parsed(r, "kind")?,
        conversation_id: ConversationId(col(r, "conversation_id")?),
        message_id: col::<Option<i64>>(r, "message_id")?.map(MessageId),
        preview: col(r, "preview")?,
        created_at: time(r, "created_at")?,
        read_at: opt_time(r, "read_at")?,
    })
}
