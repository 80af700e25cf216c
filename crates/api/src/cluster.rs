//! Running as one node of many (PostgreSQL + NATS): what other nodes tell us, and the
//! heartbeat that tells them about us.
//!
//! - Presence (W4, I1): each node publishes its connected agents on every change and every
//!   two seconds; a node silent for 15 s is taken for dead and its agents fall offline.
//! - Viewers (I7): each node publishes its own viewers of a conversation; sockets show the
//!   merge; a dead node's viewers are forgotten.
//! - Anything the bus may have lost makes every local socket resync from the store.

use std::sync::Arc;
use std::time::Duration;

use confab_domain::ConversationId;
use confab_realtime::nats::{Inbound, Sink};
use confab_realtime::{Presence, Registry, Viewers};

use crate::events::HubEvent;
use crate::state::AppState;
use crate::wire::AgentCard;

/// How events from the bus reach this node.
pub fn inbound(
    registry: Arc<Registry<HubEvent>>,
    presence: Arc<Presence>,
    viewers: Arc<Viewers>,
    me: String,
) -> Sink<HubEvent> {
    Arc::new(move |inbound| match inbound {
        Inbound::Lost => registry.lag_all(),
        Inbound::Event(e) => {
            match &*e {
                HubEvent::NodePresence { node, agents } => {
                    if *node != me {
                        presence.set_remote(node, agents.clone());
                    }
                    return;
                }
                HubEvent::Viewers {
                    node,
                    conversation_id,
                    viewing,
                    typing,
                } if *node != me => {
                    viewers.set_remote(node, *conversation_id, viewing.clone(), typing.clone());
                }
                _ => {}
            }
            registry.deliver(e);
        }
    })
}

/// This node's viewers of a conversation changed.
pub fn publish_viewers(state: &AppState, id: ConversationId) {
    let (viewing, typing) = state.viewers.local_snapshot(id);
    state.publish(HubEvent::Viewers {
        node: state.settings.node_id.clone(),
        conversation_id: id,
        viewing,
        typing,
    });
}

/// An agent connected, disconnected or changed availability here: tell the cluster what
/// this node has now, then what the agent's state is cluster-wide.
pub fn presence_changed(state: &AppState, agent: &confab_domain::Agent) {
    state.publish(HubEvent::NodePresence {
        node: state.settings.node_id.clone(),
        agents: state.presence.local(),
    });
    let cluster = state.presence.cluster_get(agent.id);
    state.publish(HubEvent::Presence {
        agent: AgentCard::from(agent),
        connected: cluster.is_some(),
        available: cluster.unwrap_or(false),
    });
}

/// The heartbeat, and the expiry of dead nodes. Runs until shutdown.
pub async fn heartbeat(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.shutdown.cancelled() => return,
        }
        state.publish(HubEvent::NodePresence {
            node: state.settings.node_id.clone(),
            agents: state.presence.local(),
        });
        for (node, agents) in state.presence.expire() {
            tracing::warn!(%node, agents = agents.len(), "node stopped answering; its agents and viewers are gone");
            for conv in state.viewers.forget_node(&node) {
                let (viewing, typing) = state.viewers.snapshot(conv);
                state.registry.deliver(Arc::new(HubEvent::Viewers {
                    node: node.clone(),
                    conversation_id: conv,
                    viewing,
                    typing,
                }));
            }
            for (id, _) in agents {
                if state.presence.cluster_get(id).is_none() {
                    if let Some(a) = state.agent_by_id(id).await {
                        state.registry.deliver(Arc::new(HubEvent::Presence {
                            agent: AgentCard::from(&a),
                            connected: false,
                            available: false,
                        }));
                    }
                }
            }
        }
    }
}
