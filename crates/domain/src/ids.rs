//! Ids as newtypes, so that a contact id can never be passed where a conversation id goes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = i64)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id!(
    /// A team member who logs in.
    AgentId,
    /// A group of agents.
    TeamId,
    /// One website (an inbox) with its widget key.
    SiteId,
    /// A visitor, anonymous or identified.
    ContactId,
    ConversationId,
    MessageId,
    AttachmentId,
    NotificationId,
);

/// A conversation's gap-free sequence number over everything in it (agents' view).
pub type Seq = i64;
