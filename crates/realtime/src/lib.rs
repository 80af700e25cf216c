//! Real-time fan-out: which sockets want which events, and who is around.
//!
//! - [`Registry`]: every open socket with a bounded queue and the topics it listens to.
//!   Delivery never blocks and never drops silently: when a socket's queue is full the
//!   socket is marked *lagged* and its loop tells the client to resync from the store.
//! - [`Presence`]: which agents are connected and available (W4, I1).
//! - [`Viewers`]: who is looking at and typing in a conversation (I7), with time-outs.
//! - [`Bus`]: how events reach the registries of every node. [`LocalBus`] serves one node.
//!
//! **Invariant:** nothing here is persisted; events are hints, and every message can be
//! recovered from the store by its sequence number.
//! The event type is generic, so this crate knows nothing of HTTP or JSON.

pub mod nats;
mod presence;
mod registry;

pub use presence::{AgentPresence, Presence, Viewers};
pub use registry::{Connection, Recv, Registry, Shelf, Topic};

use std::sync::Arc;

/// An event that knows which topics it goes to.
pub trait Routed: Send + Sync + 'static {
    fn topics(&self) -> Vec<Topic>;

    /// The event may wait up to [`registry::LATER`] before it wakes a socket (it still
    /// goes out at once with anything urgent queued behind it, in order). For updates
    /// nobody waits on, such as an inbox row moving up after a message: on a busy node
    /// every such row woke every agent's socket, and those wake-ups delayed everything
    /// else (docs/performance.md, round 8).
    fn can_wait(&self) -> bool {
        false
    }
}

/// Carries events to every node's registry (one node: [`LocalBus`]; many: NATS).
pub trait Bus<E: Routed>: Send + Sync + 'static {
    /// Hands the event over for delivery everywhere; never blocks.
    fn publish(&self, event: Arc<E>);
}

/// The bus of a single node: delivers straight into the local registry.
pub struct LocalBus<E: Routed> {
    registry: Arc<Registry<E>>,
}

impl<E: Routed> LocalBus<E> {
    pub fn new(registry: Arc<Registry<E>>) -> Self {
        Self { registry }
    }
}

impl<E: Routed> Bus<E> for LocalBus<E> {
    fn publish(&self, event: Arc<E>) {
        self.registry.deliver(event);
    }
}
