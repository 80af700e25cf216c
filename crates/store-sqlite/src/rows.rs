//! Turning rows into the domain's types, and the column lists that go with them.

use chrono::{DateTime, TimeZone, Utc};
use confab_domain::*;
use confab_store::{Result, StoreError};
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

pub fn agent(r: &SqliteRow) -> Result<Agent> {
    Ok(Agent {
        id: AgentId(r.get("id")),
        email: r.get("email"),
        name: r.get("name"),
        display_name: r.get("display_name"),
        avatar_url: r.get("avatar_url"),
        role: parse(r.get::<&str, _>("role"))?,
        access: parse(r.get::<&str, _>("access"))?,
        available: r.get("available"),
        notify_desktop: r.get("notify_desktop"),
        notify_sound: r.get("notify_sound"),
        notify_all_messages: r.get("notify_all_messages"),
        deactivated: r.get("deactivated"),
        created_at: from_us(r.get("created_at")),
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

pub fn contact(r: &SqliteRow) -> Result<Contact> {
    Ok(Contact {
        id: ContactId(r.get("id")),
        site_id: SiteId(r.get("site_id")),
        name: r.get("name"),
        email: r.get("email"),
        phone: r.get("phone"),
        external_id: r.get("external_id"),
        verified: r.get("verified"),
        consent_text: r.get("consent_text"),
        consent_at: opt_from_us(r.get("consent_at")),
        user_agent: r.get("user_agent"),
        ip: r.get("ip"),
        location: r.get("location"),
        tags: json(r.get::<&str, _>("tags"))?,
        created_at: from_us(r.get("created_at")),
    })
}

pub const CONVERSATION_COLUMNS: &str = "c.id, c.site_id, c.contact_id, c.channel, c.status, c.assignee_id, \
    c.team_id, c.snoozed_until, c.closed_at, c.last_seq, c.last_visible_seq, c.last_visitor_seq, c.handoff_at, \
    c.agent_took_part, c.offline, c.rating, c.rating_comment, c.start_url, c.visitor_read_seq, \
    c.agent_read_seq, c.tags, c.created_at, c.last_message_at";

/// A conversation as loaded for a change: mutated in memory, then saved once.
pub struct ConversationRow {
    pub conversation: Conversation,
}

pub fn conversation(r: &SqliteRow) -> Result<ConversationRow> {
    Ok(ConversationRow {
        conversation: Conversation {
            id: ConversationId(r.get("id")),
            site_id: SiteId(r.get("site_id")),
            contact_id: ContactId(r.get("contact_id")),
            channel: parse(r.get::<&str, _>("channel"))?,
            status: parse(r.get::<&str, _>("status"))?,
            assignee_id: r.get::<Option<i64>, _>("assignee_id").map(AgentId),
            team_id: r.get::<Option<i64>, _>("team_id").map(TeamId),
            snoozed_until: opt_from_us(r.get("snoozed_until")),
            closed_at: opt_from_us(r.get("closed_at")),
            last_seq: r.get("last_seq"),
            last_visible_seq: r.get("last_visible_seq"),
            handoff_at: opt_from_us(r.get("handoff_at")),
            agent_took_part: r.get("agent_took_part"),
            offline: r.get("offline"),
            rating: r.get::<Option<&str>, _>("rating").map(parse).transpose()?,
            rating_comment: r.get("rating_comment"),
            start_url: r.get("start_url"),
            last_visitor_seq: r.get("last_visitor_seq"),
            visitor_read_seq: r.get("visitor_read_seq"),
            agent_read_seq: r.get("agent_read_seq"),
            tags: json(r.get::<&str, _>("tags"))?,
            created_at: from_us(r.get("created_at")),
            last_message_at: from_us(r.get("last_message_at")),
        },
    })
}

pub const MESSAGE_COLUMNS: &str =
    "m.id, m.conversation_id, m.seq, m.visible_seq, m.kind, m.author_kind, \
    m.agent_id, m.author_name, m.body, m.event, m.client_id, m.mentions, m.created_at, \
    a.id AS a_id, a.filename AS a_filename, a.content_type AS a_content_type, a.size AS a_size, \
    a.path AS a_path, a.created_at AS a_created_at";

pub fn message(r: &SqliteRow) -> Result<Message> {
    let conversation_id = ConversationId(r.get("conversation_id"));
    let attachment = r.get::<Option<i64>, _>("a_id").map(|id| Attachment {
        id: AttachmentId(id),
        conversation_id,
        filename: r.get("a_filename"),
        content_type: r.get("a_content_type"),
        size: r.get("a_size"),
        path: r.get("a_path"),
        created_at: from_us(r.get("a_created_at")),
    });
    Ok(Message {
        id: MessageId(r.get("id")),
        conversation_id,
        seq: r.get("seq"),
        visible_seq: r.get("visible_seq"),
        kind: parse(r.get::<&str, _>("kind"))?,
        author_kind: parse(r.get::<&str, _>("author_kind"))?,
        agent_id: r.get::<Option<i64>, _>("agent_id").map(AgentId),
        author_name: r.get("author_name"),
        body: r.get("body"),
        event: r.get::<Option<&str>, _>("event").map(json).transpose()?,
        attachment,
        client_id: r.get("client_id"),
        mentions: json(r.get::<&str, _>("mentions"))?,
        created_at: from_us(r.get("created_at")),
    })
}

pub fn attachment(r: &SqliteRow) -> Attachment {
    Attachment {
        id: AttachmentId(r.get("id")),
        conversation_id: ConversationId(r.get("conversation_id")),
        filename: r.get("filename"),
        content_type: r.get("content_type"),
        size: r.get("size"),
        path: r.get("path"),
        created_at: from_us(r.get("created_at")),
    }
}

pub fn notification(r: &SqliteRow) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId(r.get("id")),
        agent_id: AgentId(r.get("agent_id")),
        kind: parse(r.get::<&str, _>("kind"))?,
        conversation_id: ConversationId(r.get("conversation_id")),
        message_id: r.get::<Option<i64>, _>("message_id").map(MessageId),
        preview: r.get("preview"),
        created_at: from_us(r.get("created_at")),
        read_at: opt_from_us(r.get("read_at")),
    })
}
