//! The things Confab keeps: agents, teams, sites, contacts, conversations and messages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::*;
use crate::office_hours::OfficeHours;

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $s:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok(Self::$variant),)*
                    _ => Err(UnknownVariant { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A stored or sent string that names no variant of an enum.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind}: {value:?}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

string_enum!(
    /// What an agent may administer. Only the owner deletes permanently (I5).
    Role { Owner = "owner", Admin = "admin", Agent = "agent" }
);
string_enum!(
    /// Which conversations an agent sees (I3).
    Access { Full = "full", Restricted = "restricted" }
);
string_enum!(
    /// I4.
    Status { Open = "open", Snoozed = "snoozed", Closed = "closed" }
);
string_enum!(
    /// Where a conversation happens (CH). Only web chat is built so far.
    Channel { Web = "web", Email = "email", Messenger = "messenger", Whatsapp = "whatsapp", Sms = "sms", Api = "api" }
);
string_enum!(
    /// What a site does when a closed conversation hears from its contact again (I4).
    ReopenPolicy { Reopen = "reopen", Final = "final" }
);
string_enum!(
    /// W3: who may chat on a site.
    WhoMayChat { Anyone = "anyone", LoggedInToChat = "logged_in_to_chat", LoggedInOnly = "logged_in_only" }
);
string_enum!(
    /// Who wrote a message.
    AuthorKind { Visitor = "visitor", Agent = "agent", Bot = "bot", System = "system" }
);
string_enum!(
    /// `text` goes to both sides; `note` is internal (never shown to the visitor);
    /// `event` records a change (assignment, status, rating) in the conversation's timeline.
    MessageKind { Text = "text", Note = "note", Event = "event" }
);
string_enum!(
    /// W8.
    Rating { Good = "good", Bad = "bad" }
);
string_enum!(
    /// The folders of the inbox (I2).
    Folder { Unassigned = "unassigned", Mine = "mine", Others = "others", Snoozed = "snoozed", Closed = "closed" }
);

impl Folder {
    pub const ALL: [Folder; 5] = [
        Folder::Unassigned,
        Folder::Mine,
        Folder::Others,
        Folder::Snoozed,
        Folder::Closed,
    ];
}

/// A team member who logs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: AgentId,
    pub email: String,
    /// The full name, for the team.
    pub name: String,
    /// What visitors see when this agent joins (W5).
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub access: Access,
    /// I1: only available agents can be given new conversations.
    pub available: bool,
    /// Whether in-app notifications play a sound and show on the desktop (E3).
    pub notify_desktop: bool,
    pub notify_sound: bool,
    /// Opt-in: new messages in others' and unassigned conversations (E3).
    pub notify_all_messages: bool,
    pub deactivated: bool,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

impl Agent {
    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Owner | Role::Admin)
    }
}

/// A group of agents (I10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub members: Vec<AgentId>,
}

/// A site's settings: everything an admin edits about one website's chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SiteSettings {
    /// Origins (scheme://host[:port]) whose pages may load the widget (W1).
    pub allowed_origins: Vec<String>,
    /// Markdown; bold, italic, links, lists and images (W4).
    pub welcome_message: String,
    pub online_message: String,
    pub offline_message: String,
    /// W4: how long a visitor waits for an agent to take the chat.
    pub wait_time_secs: u32,
    pub office_hours: OfficeHours,
    pub reopen_policy: ReopenPolicy,
    pub who_may_chat: WhoMayChat,
    pub privacy_url: Option<String>,
    pub terms_url: Option<String>,
    /// W2: show a consent checkbox with this text before the first message.
    pub consent_text: Option<String>,
    /// I4: bot-only conversations close after this long without a message.
    pub inactivity_timeout_secs: u32,
    /// W9: a booking link agents can insert and the widget can show.
    pub meeting_url: Option<String>,
    /// W6: largest attachment, in bytes.
    pub max_attachment_bytes: u64,
}

impl Default for SiteSettings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            welcome_message: "Hi! How can we help you today?".into(),
            online_message: "We're online and will be with you in a moment.".into(),
            offline_message: "We're away right now. Leave your email and we'll get back to you."
                .into(),
            wait_time_secs: 120,
            office_hours: OfficeHours::default(),
            reopen_policy: ReopenPolicy::Reopen,
            who_may_chat: WhoMayChat::Anyone,
            privacy_url: None,
            terms_url: None,
            consent_text: None,
            inactivity_timeout_secs: 30 * 60,
            meeting_url: None,
            max_attachment_bytes: 10 * 1024 * 1024,
        }
    }
}

/// One website (an inbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    /// Public: goes into the embed snippet.
    pub public_key: String,
    /// Secret: signs logged-in customers' ids (W3). Never shown to visitors.
    pub identity_secret: String,
    pub settings: SiteSettings,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

/// A person on one of the company's sites (C1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    pub id: ContactId,
    pub site_id: SiteId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The customer's id on the company's site, once identified by HMAC (W3).
    pub external_id: Option<String>,
    pub verified: bool,
    pub consent_text: Option<String>,
    #[serde(serialize_with = "crate::wire_time::option")]
    pub consent_at: Option<DateTime<Utc>>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub location: Option<String>,
    pub tags: Vec<String>,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

/// A conversation and what the inbox needs to file it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Conversation {
    pub id: ConversationId,
    pub site_id: SiteId,
    pub contact_id: ContactId,
    pub channel: Channel,
    pub status: Status,
    pub assignee_id: Option<AgentId>,
    pub team_id: Option<TeamId>,
    #[serde(serialize_with = "crate::wire_time::option")]
    pub snoozed_until: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::wire_time::option")]
    pub closed_at: Option<DateTime<Utc>>,
    /// The last sequence number over everything in the conversation.
    pub last_seq: Seq,
    /// The last sequence number over what the visitor sees (text and visible events).
    pub last_visible_seq: Seq,
    /// When the conversation was handed to people (None: the bot alone has it).
    #[serde(serialize_with = "crate::wire_time::option")]
    pub handoff_at: Option<DateTime<Utc>>,
    /// Whether an agent has written in it (E1: transcripts go only where a person took part).
    pub agent_took_part: bool,
    /// W4: nobody took it within the wait time (or it came in offline).
    pub offline: bool,
    pub rating: Option<Rating>,
    pub rating_comment: Option<String>,
    /// Where the chat started (E1).
    pub start_url: Option<String>,
    /// The seq of the visitor's last text message (agents' unread markers).
    pub last_visitor_seq: Seq,
    /// The `visible_seq` of the last entry the visitor has read (read receipts to agents).
    pub visitor_read_seq: Seq,
    /// The `visible_seq` of the last entry any agent has read (read receipts to the visitor).
    pub agent_read_seq: Seq,
    pub tags: Vec<String>,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub last_message_at: DateTime<Utc>,
}

/// What changed, for an `event` message. Visible ones are shown to the visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// W5: an agent took the conversation; the widget switches to their name and avatar.
    Joined {
        agent_id: AgentId,
        display_name: String,
        avatar_url: Option<String>,
        by: Option<AgentId>,
    },
    /// Back to Unassigned.
    Unassigned {
        by: Option<AgentId>,
    },
    Closed {
        by: Option<AgentId>,
    },
    Reopened {
        by: Option<AgentId>,
    },
    Snoozed {
        by: AgentId,
        #[serde(serialize_with = "crate::wire_time::serialize")]
        until: DateTime<Utc>,
    },
    Woke,
    /// W8: the visitor ended the chat.
    EndedByVisitor,
    Rated {
        rating: Rating,
        comment: Option<String>,
    },
    /// W4: nobody took the chat in time, or the site is offline.
    Offline {
        message: String,
    },
    /// W4: the site was online when the visitor wrote.
    Online {
        message: String,
    },
}

impl Event {
    /// Whether the visitor sees this event in their timeline.
    pub fn visible_to_visitor(&self) -> bool {
        matches!(
            self,
            Event::Joined { .. }
                | Event::Closed { .. }
                | Event::Reopened { .. }
                | Event::EndedByVisitor
                | Event::Offline { .. }
                | Event::Online { .. }
        )
    }
}

/// One entry of a conversation's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    /// Gap-free over the whole conversation.
    pub seq: Seq,
    /// Gap-free over what the visitor sees; None for notes and internal events.
    pub visible_seq: Option<Seq>,
    pub kind: MessageKind,
    pub author_kind: AuthorKind,
    pub agent_id: Option<AgentId>,
    /// The author's name as shown (agent display name, bot name, contact name).
    pub author_name: Option<String>,
    pub body: String,
    pub event: Option<Event>,
    pub attachment: Option<Attachment>,
    /// The sender's idempotency key.
    pub client_id: Option<String>,
    pub mentions: Vec<AgentId>,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

/// A file in a conversation (W6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    pub id: AttachmentId,
    pub conversation_id: ConversationId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// Where the bytes live, relative to the data folder. Not sent to clients.
    #[serde(skip)]
    pub path: String,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

/// A page the visitor saw (W10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PageView {
    pub url: String,
    pub title: Option<String>,
    pub referrer: Option<String>,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

/// A note on a contact, shared by all agents (I8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactNote {
    pub id: i64,
    pub contact_id: ContactId,
    pub agent_id: AgentId,
    pub body: String,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

string_enum!(
    /// E3: why an agent is told.
    NotificationKind {
        NewUnassigned = "new_unassigned",
        AssignedToMe = "assigned_to_me",
        NewMessageMine = "new_message_mine",
        NewMessageOther = "new_message_other",
        Mention = "mention",
        OfflineMessage = "offline_message",
        MissedChat = "missed_chat",
    }
);

/// An in-app notification (E3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub id: NotificationId,
    pub agent_id: AgentId,
    pub kind: NotificationKind,
    pub conversation_id: ConversationId,
    pub message_id: Option<MessageId>,
    pub preview: String,
    #[serde(serialize_with = "crate::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::wire_time::option")]
    pub read_at: Option<DateTime<Utc>>,
}
