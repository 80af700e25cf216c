//! What crosses the bus: hints for sockets, each with the topics it goes to.
//!
//! **Invariant:** an event is published only after what it describes is committed.

use confab_domain::*;
use confab_realtime::{Routed, Topic};
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
            HubEvent::Conversation { summary, .. } => vec![
                Topic::Agents,
                Topic::Conversation(summary.conversation.id),
                Topic::Visitor(summary.conversation.contact_id),
            ],
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
