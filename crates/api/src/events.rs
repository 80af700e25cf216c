//! What crosses the bus: hints for sockets, each with the topics it goes to.
//!
//! **Invariant:** an event is published only after what it describes is committed.

use confab_domain::*;
use confab_realtime::{Routed, Shelf, Topic};
use confab_store::ConversationSummary;
use serde::{Deserialize, Serialize};

use crate::wire::{AgentCard, VisitorConversation};

/// Who is typing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Typist {
    Visitor,
    Agent { id: AgentId, name: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HubEvent {
    /// A committed timeline entry.
    Message {
        message: Box<Message>,
    },
    /// A conversation changed: for inbox lists and for the visitor's header.
    Conversation {
        summary: Box<ConversationSummary>,
        visitor: VisitorConversation,
        /// The conversation before the change, when the change could alter who may see it
        /// (assignee or status): an agent who saw it then and cannot now is told to drop
        /// it; an agent who could never see it hears nothing.
        before: Option<Box<Conversation>>,
        /// The conversation has just started: no agent has read any of it, so a socket
        /// that holds no read position for it knows it is 0 without asking the store. (A
        /// read that overtakes this event on the bus reaches the socket as `AgentRead`.)
        #[serde(default)]
        started: bool,
    },
    /// The conversation was deleted (I5).
    Deleted {
        conversation_id: ConversationId,
        /// As it was, so that only agents who could see it are told.
        before: Box<Conversation>,
    },
    Typing {
        conversation_id: ConversationId,
        typist: Typist,
        typing: bool,
        note: bool,
    },
    /// Read receipts: the visitor's in visible terms; an agent's with both.
    VisitorRead {
        conversation_id: ConversationId,
        seq: Seq,
    },
    AgentRead {
        conversation_id: ConversationId,
        agent_id: AgentId,
        seq: Seq,
        visible_seq: Seq,
    },
    /// I7: the publishing node's own viewers of a conversation; sockets show the merge of
    /// all nodes' (see `Viewers::snapshot`).
    Viewers {
        node: String,
        conversation_id: ConversationId,
        viewing: Vec<AgentId>,
        typing: Vec<AgentId>,
    },
    /// A node's heartbeat: its connected agents and their availability (W4, I1).
    NodePresence {
        node: String,
        agents: Vec<(AgentId, bool)>,
    },
    Notification {
        notification: Notification,
    },
    Presence {
        agent: AgentCard,
        connected: bool,
        available: bool,
    },
    /// An agent's record changed (role, access, availability): their sockets reload it.
    AgentChanged {
        agent_id: AgentId,
    },
}

/// The shelves a conversation with this status and assignee is on ([`Topic::Rows`]).
fn shelves_of(status: Status, assignee: Option<AgentId>) -> impl Iterator<Item = Shelf> {
    let (first, second) = match (status, assignee) {
        (Status::Closed, _) => (Shelf::Closed, None),
        (Status::Snoozed, _) => (Shelf::Snoozed, None),
        (Status::Open, None) => (Shelf::Unassigned, None),
        (Status::Open, Some(a)) => (Shelf::Assigned, Some(Shelf::AssignedTo(a))),
    };
    std::iter::once(first).chain(second)
}

/// The shelves that hold every conversation `me` would see in `folders` (all folders:
/// `None`), and maybe others: the socket still picks its rows with `rules::folder_of`.
pub fn shelves_for(me: AgentId, folders: Option<&[Folder]>) -> impl Iterator<Item = Shelf> + '_ {
    folders
        .unwrap_or(&Folder::ALL)
        .iter()
        .map(move |f| match f {
            Folder::Unassigned => Shelf::Unassigned,
            Folder::Mine => Shelf::AssignedTo(me),
            Folder::Others => Shelf::Assigned,
            Folder::Snoozed => Shelf::Snoozed,
            Folder::Closed => Shelf::Closed,
        })
}

impl Routed for HubEvent {
    /// A conversation's new list row after a message, with its status and assignee
    /// unchanged: the inbox re-sorts, no count moves, nobody is waiting for it. Messages,
    /// new conversations, assignments and status changes wake sockets at once.
    fn can_wait(&self) -> bool {
        matches!(
            self,
            HubEvent::Conversation {
                before: None,
                started: false,
                ..
            }
        )
    }

    fn topics(&self) -> Vec<Topic> {
        match self {
            HubEvent::Message { message } => vec![Topic::Conversation(message.conversation_id)],
            HubEvent::Conversation { summary, .. } => {
                let c = &summary.conversation;
                let mut topics = vec![Topic::Conversation(c.id), Topic::Visitor(c.contact_id)];
                if self.can_wait() {
                    topics.extend(shelves_of(c.status, c.assignee_id).map(Topic::Rows));
                } else {
                    // New, or its status or assignee changed: every agent's counts may move.
                    topics.push(Topic::Agents);
                }
                topics
            }
            HubEvent::Deleted {
                conversation_id, ..
            } => {
                vec![Topic::Agents, Topic::Conversation(*conversation_id)]
            }
            HubEvent::Typing {
                conversation_id, ..
            }
            | HubEvent::VisitorRead {
                conversation_id, ..
            }
            | HubEvent::Viewers {
                conversation_id, ..
            } => vec![Topic::Conversation(*conversation_id)],
            HubEvent::AgentRead {
                conversation_id,
                agent_id,
                ..
            } => {
                vec![
                    Topic::Conversation(*conversation_id),
                    Topic::Agent(*agent_id),
                ]
            }
            HubEvent::Notification { notification } => vec![Topic::Agent(notification.agent_id)],
            HubEvent::Presence { .. } => vec![Topic::Agents],
            // Consumed by the bus's inbound side, never by sockets.
            HubEvent::NodePresence { .. } => vec![],
            HubEvent::AgentChanged { agent_id } => vec![Topic::Agent(*agent_id), Topic::Agents],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row a socket's folders show must reach it: for each status, assignee and set
    /// of folders, a conversation in one of the folders is on one of their shelves.
    #[test]
    fn the_shelves_of_a_view_hold_every_conversation_in_it() {
        let me: Agent = serde_json::from_value(serde_json::json!({
            "id": 1, "email": "a1@example.com", "name": "Agent 1", "display_name": "A1",
            "avatar_url": null, "role": "agent", "access": "full", "available": true,
            "notify_desktop": true, "notify_sound": true, "notify_all_messages": false,
            "deactivated": false, "created_at": "2026-11-22T00:00:00Z"
        }))
        .expect("an agent");
        let mut conv: Conversation = serde_json::from_value(serde_json::json!({
            "id": 7, "site_id": 1, "contact_id": 1, "channel": "web", "status": "open",
            "assignee_id": null, "team_id": null, "snoozed_until": null, "closed_at": null,
            "last_seq": 0, "last_visible_seq": 0, "last_visitor_seq": 0, "handoff_at": null,
            "agent_took_part": false, "offline": false, "rating": null, "rating_comment": null,
            "start_url": null, "visitor_read_seq": 0, "agent_read_seq": 0, "tags": [],
            "created_at": "2026-11-22T00:00:00Z", "last_message_at": "2026-11-22T00:00:00Z"
        }))
        .expect("a conversation");
        for mask in 0..(1u32 << Folder::ALL.len()) {
            let folders: Vec<Folder> = (0..Folder::ALL.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| Folder::ALL[i])
                .collect();
            let shelves: Vec<Shelf> = shelves_for(me.id, Some(&folders)).collect();
            for status in [Status::Open, Status::Snoozed, Status::Closed] {
                for assignee in [None, Some(me.id), Some(AgentId(2))] {
                    conv.status = status;
                    conv.assignee_id = assignee;
                    let shown = rules::folder_of(&me, &conv).is_some_and(|f| folders.contains(&f));
                    let routed = shelves_of(status, assignee).any(|s| shelves.contains(&s));
                    assert!(
                        routed || !shown,
                        "{status:?} {assignee:?} is shown in {folders:?} but not on {shelves:?}"
                    );
                }
            }
        }
        // Mine alone is one agent's shelf, not everything assigned.
        assert_eq!(
            shelves_for(me.id, Some(&[Folder::Mine])).collect::<Vec<_>>(),
            vec![Shelf::AssignedTo(me.id)]
        );
        assert!(!shelves_of(Status::Open, Some(AgentId(2))).any(|s| s == Shelf::AssignedTo(me.id)));
    }
}
