//! The JSON shapes of the API and the sockets. Only this crate knows them.
//!
//! Requests refuse unknown fields, so a typo is an error rather than silently ignored.

use chrono::{DateTime, Utc};
use confab_domain::rich_text::render_markdown;
use confab_domain::*;
use confab_store::{ConversationSummary, FolderCounts};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `Some(None)` when the field is `null` (clear it), `None` when it is absent (keep it).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ---- Shared ----------------------------------------------------------------------------

/// How a person appears in a conversation (W5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentCard {
    pub id: AgentId,
    pub display_name: String,
    pub avatar_url: Option<String>,
}

impl From<&Agent> for AgentCard {
    fn from(a: &Agent) -> Self {
        Self {
            id: a.id,
            display_name: a.display_name.clone(),
            avatar_url: a.avatar_url.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttachmentInfo {
    pub id: AttachmentId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

impl From<&Attachment> for AttachmentInfo {
    fn from(a: &Attachment) -> Self {
        Self {
            id: a.id,
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    pub seq: Seq,
}

// ---- Visitor ---------------------------------------------------------------------------

/// What the widget needs to show itself (W2–W4, W9).
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetConfig {
    pub site_name: String,
    pub welcome_html: String,
    /// W4: an available agent is connected, inside office hours.
    pub online: bool,
    pub online_message_html: String,
    /// Includes when the team is back, when office hours say so.
    pub offline_message_html: String,
    #[serde(serialize_with = "confab_domain::wire_time::option")]
    pub next_open: Option<DateTime<Utc>>,
    pub privacy_url: Option<String>,
    pub terms_url: Option<String>,
    pub consent_text: Option<String>,
    pub who_may_chat: WhoMayChat,
    /// W3: false when only logged-in customers see the chat.
    pub visible: bool,
    pub meeting_url: Option<String>,
    pub max_attachment_bytes: u64,
    pub attachment_types: Vec<String>,
    pub wait_time_secs: u32,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ConfigQuery {
    pub site_key: String,
}

/// W3: a logged-in customer, signed by the site's backend.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub id: String,
    /// hex(HMAC-SHA256(identity_secret, id))
    pub hmac: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub site_key: String,
    pub identity: Option<Identity>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub contact: VisitorContact,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VisitorContact {
    pub id: ContactId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub verified: bool,
}

impl From<&Contact> for VisitorContact {
    fn from(c: &Contact) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            verified: c.verified,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitorContactUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The page the chat started on (E1).
    pub url: Option<String>,
    /// W2: the visitor ticked the consent box.
    pub consent: Option<bool>,
}

/// A conversation as its visitor sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VisitorConversation {
    pub id: ConversationId,
    pub status: Status,
    /// The last visible sequence number.
    pub seq: Seq,
    /// W5: who has the conversation.
    pub agent: Option<AgentCard>,
    /// How far an agent has read (in visible terms): "Seen".
    pub agent_read_seq: Seq,
    pub visitor_read_seq: Seq,
    pub rating: Option<Rating>,
    #[serde(serialize_with = "confab_domain::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

impl VisitorConversation {
    pub fn new(c: &Conversation, agent: Option<&Agent>) -> Self {
        Self {
            id: c.id,
            status: c.status,
            seq: c.last_visible_seq,
            agent: agent.map(AgentCard::from),
            agent_read_seq: c.agent_read_seq,
            visitor_read_seq: c.visitor_read_seq,
            rating: c.rating,
            created_at: c.created_at,
        }
    }
}

/// Who wrote an entry, as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorCard {
    pub kind: AuthorKind,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// A timeline entry as the visitor sees it; `seq` is the visible sequence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VisitorMessage {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub kind: MessageKind,
    pub author: AuthorCard,
    pub body: String,
    /// Sanitized HTML for agent, bot and system texts.
    pub html: Option<String>,
    pub event: Option<Event>,
    pub attachment: Option<AttachmentInfo>,
    /// Only on the visitor's own messages.
    pub client_id: Option<String>,
    #[serde(serialize_with = "confab_domain::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

impl VisitorMessage {
    /// None for entries the visitor does not see.
    pub fn from_message(m: &Message, avatar: Option<String>) -> Option<Self> {
        let seq = m.visible_seq?;
        let own = m.author_kind == AuthorKind::Visitor;
        let event = m.event.clone().map(|e| match e {
            Event::Online { message } => Event::Online {
                message: render_markdown(&message),
            },
            Event::Offline { message } => Event::Offline {
                message: render_markdown(&message),
            },
            Event::Joined {
                agent_id,
                display_name,
                avatar_url,
                ..
            } => Event::Joined {
                agent_id,
                display_name,
                avatar_url,
                by: None,
            },
            Event::Closed { .. } => Event::Closed { by: None },
            Event::Reopened { .. } => Event::Reopened { by: None },
            other => other,
        });
        Some(Self {
            id: m.id,
            conversation_id: m.conversation_id,
            seq,
            kind: m.kind,
            author: AuthorCard {
                kind: m.author_kind,
                name: if own { None } else { m.author_name.clone() },
                avatar_url: avatar,
            },
            body: m.body.clone(),
            html: (!own && m.kind == MessageKind::Text).then(|| render_markdown(&m.body)),
            event,
            attachment: m.attachment.as_ref().map(AttachmentInfo::from),
            client_id: if own { m.client_id.clone() } else { None },
            created_at: m.created_at,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitorSendRequest {
    pub client_id: String,
    #[serde(default)]
    pub body: String,
    pub attachment_id: Option<AttachmentId>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Entries after this sequence number.
    #[serde(default)]
    pub after: Seq,
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    pub rating: Rating,
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageViewRequest {
    pub url: String,
    pub title: Option<String>,
    pub referrer: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UploadQuery {
    pub filename: String,
}

// ---- Agent -----------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct SetupStatus {
    pub needs_setup: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    pub email: String,
    pub name: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// The signed-in agent; `csrf_token` goes in `X-CSRF-Token` on changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub agent: Agent,
    pub csrf_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    pub name: Option<String>,
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub avatar_url: Option<Option<String>>,
    pub notify_desktop: Option<bool>,
    pub notify_sound: Option<bool>,
    pub notify_all_messages: Option<bool>,
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityRequest {
    pub available: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub id: i64,
    pub name: String,
    /// Shown once; send as `Authorization: Bearer <token>`.
    pub token: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    pub folder: Option<Folder>,
    pub status: Option<Status>,
    pub assignee: Option<AgentId>,
    pub site: Option<SiteId>,
    pub tag: Option<String>,
    /// Full text over messages.
    pub q: Option<String>,
    pub channel: Option<Channel>,
    pub rating: Option<Rating>,
    pub team: Option<TeamId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Paging: pass the last row's `last_message_at` and `id`.
    pub before_time: Option<DateTime<Utc>>,
    pub before_id: Option<ConversationId>,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    pub contact: Contact,
    pub assignee: Option<AgentCard>,
    pub site_name: String,
    pub reopen_policy: ReopenPolicy,
    /// Entries at the end of the timeline (the newest `limit`, default 100).
    pub my_read_seq: Seq,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSendRequest {
    pub client_id: String,
    #[serde(default)]
    pub body: String,
    #[serde(default = "default_kind")]
    pub kind: MessageKind,
    #[serde(default)]
    pub mentions: Vec<AgentId>,
    pub attachment_id: Option<AttachmentId>,
}

fn default_kind() -> MessageKind {
    MessageKind::Text
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// null: back to Unassigned.
    pub assignee_id: Option<AgentId>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnoozeRequest {
    pub until: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactDetail {
    pub contact: Contact,
    pub conversations: Vec<Conversation>,
    pub page_views: Vec<PageView>,
    pub notes: Vec<ContactNote>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchRequest {
    #[serde(default, deserialize_with = "double_option")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub phone: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    pub body: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationsReadRequest {
    pub ids: Vec<NotificationId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMember {
    pub agent: Agent,
    /// Has a socket open now.
    pub connected: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgentRequest {
    pub email: String,
    pub name: String,
    pub display_name: Option<String>,
    pub password: String,
    pub role: Role,
    pub access: Access,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatchRequest {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub access: Option<Access>,
    pub deactivated: Option<bool>,
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamRequest {
    pub name: Option<String>,
    pub members: Option<Vec<AgentId>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteRequest {
    pub name: Option<String>,
    /// Only the fields given change; the others keep their values (defaults on create).
    #[schema(value_type = Option<SiteSettings>)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A site as admins see it, with the snippet to paste into pages.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteView {
    pub id: SiteId,
    pub name: String,
    pub public_key: String,
    /// For the site's backend to sign customers (W3); admins only.
    pub identity_secret: Option<String>,
    pub settings: SiteSettings,
    pub embed_snippet: String,
    #[serde(serialize_with = "confab_domain::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

// ---- Socket frames ---------------------------------------------------------------------

/// Visitor → server.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VisitorClientFrame {
    Hello {
        token: String,
        #[serde(default)]
        resume: std::collections::HashMap<String, Seq>,
    },
    Subscribe {
        conversation_id: ConversationId,
        #[serde(default)]
        after: Seq,
    },
    Send {
        conversation_id: ConversationId,
        client_id: String,
        #[serde(default)]
        body: String,
        attachment_id: Option<AttachmentId>,
    },
    Typing {
        conversation_id: ConversationId,
        typing: bool,
    },
    Read {
        conversation_id: ConversationId,
        seq: Seq,
    },
    /// A struct variant, so that unknown fields are refused like everywhere else.
    Ping {},
}

/// Server → visitor.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitorServerFrame {
    Ready {
        contact_id: ContactId,
    },
    Message {
        conversation_id: ConversationId,
        message: VisitorMessage,
    },
    Ack {
        client_id: String,
        message: VisitorMessage,
    },
    Error {
        code: String,
        message: String,
        client_id: Option<String>,
    },
    Typing {
        conversation_id: ConversationId,
        author: AuthorCard,
        typing: bool,
    },
    Read {
        conversation_id: ConversationId,
        seq: Seq,
    },
    Conversation {
        conversation: VisitorConversation,
    },
    Resync,
    Pong,
}

/// Agent → server.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentClientFrame {
    Hello {
        token: Option<String>,
    },
    Subscribe {
        conversation_id: ConversationId,
        #[serde(default)]
        after: Seq,
    },
    Unsubscribe {
        conversation_id: ConversationId,
    },
    Send {
        conversation_id: ConversationId,
        client_id: String,
        #[serde(default)]
        body: String,
        #[serde(default = "default_kind")]
        kind: MessageKind,
        #[serde(default)]
        mentions: Vec<AgentId>,
        attachment_id: Option<AttachmentId>,
    },
    Typing {
        conversation_id: ConversationId,
        typing: bool,
        #[serde(default = "default_kind")]
        kind: MessageKind,
    },
    Read {
        conversation_id: ConversationId,
        seq: Seq,
    },
    /// The inbox folders this socket shows. From then on `conversation` rows come only for
    /// conversations in one of them (before or after the change) and for the ones it has
    /// subscribed to; counts, `removed` and everything else are unchanged. Until the first
    /// `view`, rows come for every folder.
    View {
        folders: Vec<Folder>,
    },
    /// A struct variant, so that unknown fields are refused like everywhere else.
    Ping {},
}

/// Who read, in an agent's `read` frame.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reader {
    Visitor,
    /// This agent, in another tab.
    Me,
    Agent,
}

/// Server → agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentServerFrame {
    Ready {
        agent_id: AgentId,
        counts: FolderCounts,
    },
    Message {
        conversation_id: ConversationId,
        message: Message,
    },
    Ack {
        client_id: String,
        message: Message,
    },
    Conversation {
        summary: ConversationSummary,
    },
    /// The conversation is gone from this agent's view (deleted, or no longer visible).
    Removed {
        conversation_id: ConversationId,
    },
    Counts {
        counts: FolderCounts,
    },
    Viewers {
        conversation_id: ConversationId,
        viewing: Vec<AgentId>,
        typing: Vec<AgentId>,
    },
    Typing {
        conversation_id: ConversationId,
        author: AuthorCard,
        typing: bool,
        note: bool,
    },
    Read {
        conversation_id: ConversationId,
        reader: Reader,
        seq: Seq,
    },
    Notification {
        notification: Notification,
    },
    Presence {
        agent: AgentCard,
        connected: bool,
        available: bool,
    },
    Resync,
    Error {
        code: String,
        message: String,
        client_id: Option<String>,
    },
    Pong,
}
