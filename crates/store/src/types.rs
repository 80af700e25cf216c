//! What goes into and comes out of a [`crate::Store`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use confab_domain::rules::{self, Handoff};
use confab_domain::text::MessageBody;
use confab_domain::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub email: String,
    pub name: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub access: Access,
    pub now: DateTime<Utc>,
}

/// Fields left `None` are not changed.
#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<Option<String>>,
    pub role: Option<Role>,
    pub access: Option<Access>,
    pub available: Option<bool>,
    pub notify_desktop: Option<bool>,
    pub notify_sound: Option<bool>,
    pub notify_all_messages: Option<bool>,
    pub deactivated: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub agent_id: AgentId,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSession {
    /// The agent, read with the session (one statement per authenticated request).
    pub agent: Agent,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i64,
    pub agent_id: AgentId,
    pub name: String,
    #[serde(serialize_with = "confab_domain::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewSite {
    pub name: String,
    pub public_key: String,
    pub identity_secret: String,
    pub settings: SiteSettings,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct NewContact {
    pub site_id: Option<SiteId>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub verified: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub now: Option<DateTime<Utc>>,
}

/// Fields left `None` are not changed; `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub external_id: Option<Option<String>>,
    pub verified: Option<bool>,
    pub consent: Option<(String, DateTime<Utc>)>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorSession {
    pub site_id: SiteId,
    pub contact_id: ContactId,
}

#[derive(Debug, Clone)]
pub struct NewConversation {
    pub site_id: SiteId,
    pub contact_id: ContactId,
    pub channel: Channel,
    pub start_url: Option<String>,
    /// W4: what handing the conversation to people does; None keeps it with the bot.
    pub handoff: Option<Handoff>,
    /// E3: the team, to decide who hears of the new conversation, and what their
    /// notifications show. The store writes them in the conversation's own transaction.
    pub notify: Arc<Vec<Agent>>,
    pub notify_preview: String,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Started {
    pub conversation: Conversation,
    /// False when the contact's open conversation was returned instead.
    pub created: bool,
    /// The timeline entries written on creation (the online or offline message).
    pub messages: Vec<Message>,
    /// E3: the notifications the new conversation caused, committed with it.
    pub notifications: Vec<Notification>,
}

/// A search over the inbox. The folder filter comes from [`confab_domain::rules::folder_filter`];
/// the rest narrows it. Every value is bound as a parameter.
#[derive(Debug, Clone)]
pub struct ConversationQuery {
    /// Whose unread markers to compute.
    pub viewer: AgentId,
    /// Just this conversation (for a live update of one list row).
    pub id: Option<ConversationId>,
    pub filter: Option<rules::FolderFilter>,
    /// Restricts to what a restricted agent may see, when the filter does not.
    pub visible_to: Option<AgentId>,
    pub status: Option<Status>,
    pub assignee: Option<AgentId>,
    pub site: Option<SiteId>,
    pub tag: Option<String>,
    /// Full text over messages (I9).
    pub text: Option<String>,
    pub channel: Option<Channel>,
    pub rating: Option<Rating>,
    pub team: Option<TeamId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset paging: only conversations whose last activity is before this one.
    pub before: Option<(DateTime<Utc>, ConversationId)>,
    pub limit: i64,
}

impl ConversationQuery {
    pub fn new(viewer: AgentId) -> Self {
        Self {
            viewer,
            id: None,
            filter: None,
            visible_to: None,
            status: None,
            assignee: None,
            site: None,
            tag: None,
            text: None,
            channel: None,
            rating: None,
            team: None,
            since: None,
            until: None,
            before: None,
            limit: 50,
        }
    }
}

/// A row of the inbox list (I2): the conversation, who it is with, the last message and
/// whether the viewer has read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    pub conversation: Conversation,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub last_message: Option<Preview>,
    /// The last `seq` the viewer has read; unread while `conversation.last_visitor_seq` is
    /// greater.
    pub my_read_seq: Seq,
    pub unread: bool,
}

/// The unread marker's sender and preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preview {
    pub author_kind: AuthorKind,
    pub author_name: Option<String>,
    pub kind: MessageKind,
    pub body: String,
    #[serde(serialize_with = "confab_domain::wire_time::serialize")]
    pub created_at: DateTime<Utc>,
}

impl ConversationSummary {
    /// The list row of `conversation` right after `message` was posted to it (the newest
    /// entry, so the row's preview), as [`crate::Store::list_conversations`] gives it to a
    /// viewer who has read nothing: built without reading the store again.
    pub fn after_post(posted: &Posted) -> Self {
        let message = &posted.message;
        let last_message = (message.kind != MessageKind::Event).then(|| Preview {
            author_kind: message.author_kind,
            author_name: message.author_name.clone(),
            kind: message.kind,
            body: notification_preview(&message.body),
            created_at: message.created_at,
        });
        Self {
            unread: posted.conversation.last_visitor_seq > 0,
            my_read_seq: 0,
            contact_name: posted.contact.name.clone(),
            contact_email: posted.contact.email.clone(),
            last_message,
            conversation: posted.conversation.clone(),
        }
    }

    /// The list row of a conversation that has just started, as
    /// [`crate::Store::list_conversations`] gives it to a viewer who has read nothing: no
    /// preview, since nobody has written in it yet (its handoff entry is an event, which
    /// rows do not preview).
    pub fn after_start(conversation: &Conversation, contact: &Contact) -> Self {
        Self {
            unread: conversation.last_visitor_seq > 0,
            my_read_seq: 0,
            contact_name: contact.name.clone(),
            contact_email: contact.email.clone(),
            last_message: None,
            conversation: conversation.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FolderCounts {
    pub unassigned: i64,
    pub mine: i64,
    /// None for restricted agents, who have no Others' folder.
    pub others: Option<i64>,
    pub snoozed: i64,
    pub closed: i64,
}

/// Conversations counted per status and assignee.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationCounts {
    pub groups: Vec<(Status, Option<AgentId>, i64)>,
}

impl ConversationCounts {
    /// I2: the counts of the folders `agent` sees. A restricted agent has no Others'
    /// folder and sees only the unassigned and their own snoozed conversations.
    pub fn for_agent(&self, agent: &Agent) -> FolderCounts {
        let restricted = rules::effective_access(agent) == Access::Restricted;
        let mut c = FolderCounts::default();
        let mut others = 0;
        for &(status, assignee, n) in &self.groups {
            match (status, assignee) {
                (Status::Open, None) => c.unassigned += n,
                (Status::Open, Some(a)) if a == agent.id => c.mine += n,
                (Status::Open, Some(_)) => others += n,
                (Status::Snoozed, Some(a)) if restricted && a != agent.id => {}
                (Status::Snoozed, _) => c.snoozed += n,
                (Status::Closed, _) => c.closed += n,
            }
        }
        c.others = (!restricted).then_some(others);
        c
    }
}

/// Who writes a message.
#[derive(Debug, Clone)]
pub enum Author {
    /// The message carries the contact's name as it is when the message commits.
    Visitor {
        contact_id: ContactId,
    },
    /// The full agent, so that reply-assigns (I3) can check availability.
    Agent(Agent),
    Bot {
        name: String,
    },
    System,
}

impl Author {
    /// S2, I3: whether this author may write to `conv` at all. Stores check it first, before
    /// a retry is recognised, so that a client id never opens a conversation to someone who
    /// cannot see it.
    pub fn check_sees(&self, conv: &Conversation) -> Result<(), rules::Refusal> {
        match self {
            Author::Visitor { contact_id } if *contact_id != conv.contact_id => {
                Err(rules::Refusal::NotVisible)
            }
            Author::Agent(a) if !rules::can_view(a, conv) => Err(rules::Refusal::NotVisible),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: ConversationId,
    pub author: Author,
    /// `Text` or `Note`.
    pub kind: MessageKind,
    pub body: MessageBody,
    pub client_id: Option<String>,
    pub attachment_id: Option<AttachmentId>,
    pub mentions: Vec<AgentId>,
    /// I4: the site's policy when a closed conversation hears from its contact. Read for
    /// visitors' posts only: nothing else reopens a conversation by writing to it.
    pub reopen_policy: ReopenPolicy,
    /// W4: what starting a new conversation does, for a visitor writing to a closed
    /// conversation under the `final` policy.
    pub handoff_if_new: Option<Handoff>,
    /// E3: the team, to decide who hears of this message. The store writes the
    /// notifications in the message's own transaction (one commit, one fsync, and never
    /// a message without its notifications or the other way round).
    pub notify: Arc<Vec<Agent>>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Posted {
    /// The message as stored (with its sequence numbers).
    pub message: Message,
    /// False when this was a retry of an already-stored message.
    pub created: bool,
    /// Everything written, in sequence order: events the message caused (wake, reopen,
    /// joined) and the message itself. Empty on a retry.
    pub written: Vec<Message>,
    /// The conversation after the message (a new one under the `final` policy).
    pub conversation: Conversation,
    /// Set when the message started a new conversation (I4 `final`).
    pub started_new: bool,
    /// Set when the message assigned the conversation (I3 reply-assigns).
    pub assigned: bool,
    /// E3: the notifications the message caused, committed with it. Empty on a retry.
    pub notifications: Vec<Notification>,
    /// The conversation the message was sent to, as it was before (read in the post's
    /// transaction, so callers need no read of their own).
    pub before: Conversation,
    /// The conversation's contact, as list rows show it.
    pub contact: ContactCard,
}

/// A contact's name and email, as a conversation's list row shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactCard {
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Changed {
    /// The conversation as it was before the change (who could see it, for the inboxes).
    pub before: Conversation,
    pub conversation: Conversation,
    /// The event messages the change wrote.
    pub written: Vec<Message>,
    /// The conversation's list row after the change, as
    /// [`crate::Store::list_conversations`] gives it to a viewer who has read nothing, when
    /// the backend read it with the change (SQLite's group commit does, on its own
    /// thread); with `None` the service reads it.
    pub summary: Option<ConversationSummary>,
}

#[derive(Debug, Clone)]
pub enum StatusChange {
    /// `by: None` is the system (inactivity) or the visitor ending the chat (`by_visitor`).
    Close {
        by: Option<Agent>,
        by_visitor: bool,
    },
    Reopen {
        by: Agent,
        policy: ReopenPolicy,
    },
    Snooze {
        by: Agent,
        until: DateTime<Utc>,
    },
    /// The snooze time came.
    Wake,
}

#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub conversation_id: ConversationId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub path: String,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewNotification {
    pub agent_id: AgentId,
    pub kind: NotificationKind,
    pub conversation_id: ConversationId,
    pub message_id: Option<MessageId>,
    pub preview: String,
    pub now: DateTime<Utc>,
}

/// How much of a message a notification or a list row shows.
const PREVIEW_CHARS: usize = 140;

/// A notification's or list row's preview of `text`.
pub fn notification_preview(text: &str) -> String {
    text.chars().take(PREVIEW_CHARS).collect()
}

impl NewNotification {
    /// E3: the notifications a conversation just started causes.
    pub fn for_new_conversation(
        conv: &Conversation,
        agents: &[Agent],
        preview: &str,
        now: DateTime<Utc>,
    ) -> Vec<NewNotification> {
        let preview = notification_preview(preview);
        rules::new_conversation_notifications(conv, agents)
            .into_iter()
            .map(|(agent_id, kind)| NewNotification {
                agent_id,
                kind,
                conversation_id: conv.id,
                message_id: None,
                preview: preview.clone(),
                now,
            })
            .collect()
    }

    /// E3: the notifications a new message causes in `conv` (the conversation after it),
    /// `started_new` when it also started that conversation (I4 `final`).
    pub fn for_message(
        conv: &Conversation,
        msg: &Message,
        started_new: bool,
        agents: &[Agent],
        now: DateTime<Utc>,
    ) -> Vec<NewNotification> {
        let mut items = rules::message_notifications(conv, msg, agents);
        if started_new {
            items.extend(rules::new_conversation_notifications(conv, agents));
        }
        let preview = notification_preview(&msg.body);
        items
            .into_iter()
            .map(|(agent_id, kind)| NewNotification {
                agent_id,
                kind,
                conversation_id: conv.id,
                message_id: Some(msg.id),
                preview: preview.clone(),
                now,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// W4: check whether anyone took the chat.
    WaitExpiry,
    /// I4: wake a snoozed conversation.
    SnoozeWake,
    /// I4: close a bot-only conversation that went quiet.
    InactivityClose,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::WaitExpiry => "wait_expiry",
            JobKind::SnoozeWake => "snooze_wake",
            JobKind::InactivityClose => "inactivity_close",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "wait_expiry" => JobKind::WaitExpiry,
            "snooze_wake" => JobKind::SnoozeWake,
            "inactivity_close" => JobKind::InactivityClose,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub conversation_id: ConversationId,
    pub run_at: DateTime<Utc>,
}
