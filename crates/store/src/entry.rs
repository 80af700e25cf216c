//! One new timeline entry, as both backends append it: the sequence numbers it takes and
//! the message it becomes once inserted. Only the insert itself is the backend's.

use chrono::{DateTime, SubsecRound, Utc};
use confab_domain::*;

use crate::{Result, StoreError};

/// What one new timeline entry is.
pub struct Entry<'a> {
    pub kind: MessageKind,
    pub author_kind: AuthorKind,
    pub agent_id: Option<AgentId>,
    pub author_name: Option<String>,
    /// Who sent it, for the idempotency key `(author_key, client_id)`.
    pub author_key: Option<String>,
    pub body: &'a str,
    pub event: Option<&'a Event>,
    pub attachment_id: Option<AttachmentId>,
    pub client_id: Option<&'a str>,
    pub mentions: &'a [AgentId],
    pub now: DateTime<Utc>,
}

impl<'a> Entry<'a> {
    /// An event entry, by an agent or (`by: None`) by the system.
    pub fn event(event: &'a Event, by: Option<&Agent>, now: DateTime<Utc>) -> Self {
        Entry {
            kind: MessageKind::Event,
            author_kind: if by.is_some() {
                AuthorKind::Agent
            } else {
                AuthorKind::System
            },
            agent_id: by.map(|a| a.id),
            author_name: by.map(|a| a.display_name.clone()),
            author_key: None,
            body: "",
            event: Some(event),
            attachment_id: None,
            client_id: None,
            mentions: &[],
            now,
        }
    }

    /// The entry's time as the stores keep it (microseconds), so that what a post returns
    /// equals what a later read, or a retry, returns.
    fn stored_now(&self) -> DateTime<Utc> {
        self.now.trunc_subsecs(6)
    }

    /// Advances the conversation's sequence numbers for this entry: the entry's `seq` is
    /// the new `last_seq`, and this returns its `visible_seq` if the visitor sees it.
    pub fn advance(&self, c: &mut Conversation) -> Option<Seq> {
        let visible = match self.kind {
            MessageKind::Text => true,
            MessageKind::Note => false,
            MessageKind::Event => self.event.is_some_and(Event::visible_to_visitor),
        };
        c.last_seq += 1;
        let visible_seq = visible.then(|| {
            c.last_visible_seq += 1;
            c.last_visible_seq
        });
        if self.author_kind == AuthorKind::Visitor && self.kind == MessageKind::Text {
            c.last_visitor_seq = c.last_seq;
        }
        if self.kind != MessageKind::Event {
            c.last_message_at = self.stored_now();
        }
        visible_seq
    }

    pub fn event_json(&self) -> Result<Option<String>> {
        self.event.map(to_json).transpose()
    }

    pub fn mentions_json(&self) -> Result<String> {
        to_json(self.mentions)
    }

    /// The stored entry, once inserted as `id` into `c` (after [`Entry::advance`]).
    pub fn into_message(
        self,
        id: MessageId,
        c: &Conversation,
        visible_seq: Option<Seq>,
        attachment: Option<Attachment>,
    ) -> Message {
        let created_at = self.stored_now();
        Message {
            id,
            conversation_id: c.id,
            seq: c.last_seq,
            visible_seq,
            kind: self.kind,
            author_kind: self.author_kind,
            agent_id: self.agent_id,
            author_name: self.author_name,
            body: self.body.to_owned(),
            event: self.event.cloned(),
            attachment,
            client_id: self.client_id.map(str::to_owned),
            mentions: self.mentions.to_vec(),
            created_at,
        }
    }
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(e.to_string()))
}
