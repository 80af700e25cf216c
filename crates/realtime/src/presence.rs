//! Who is around: connected and available agents (W4, I1) and who is viewing or typing in
//! a conversation (I7). Memory only, with time-outs; never persisted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use confab_domain::{AgentId, ConversationId};

/// An agent's presence on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentPresence {
    pub connections: usize,
    pub available: bool,
}

/// Which agents have a socket open, and whether they are available: on this node, and on
/// the others as their last heartbeat said. A node whose heartbeat is older than the
/// time-out is taken for dead, and its agents for gone.
pub struct Presence {
    agents: Mutex<HashMap<AgentId, AgentPresence>>,
    remote: Mutex<RemoteNodes>,
    ttl: Duration,
}

impl Default for Presence {
    fn default() -> Self {
        Self::new(Duration::from_secs(15))
    }
}

impl Presence {
    /// `ttl`: how long another node's heartbeat counts.
    pub fn new(ttl: Duration) -> Self {
        Self {
            agents: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// This node's agents, for its heartbeat: (agent, available).
    pub fn local(&self) -> Vec<(AgentId, bool)> {
        let m = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = m
            .iter()
            .filter(|(_, p)| p.connections > 0)
            .map(|(a, p)| (*a, p.available))
            .collect();
        v.sort();
        v
    }

    /// Another node's heartbeat.
    pub fn set_remote(&self, node: &str, agents: Vec<(AgentId, bool)>) {
        self.remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_owned(), (Instant::now(), agents));
    }

    /// Nodes whose heartbeat is older than the time-out are forgotten; returns them with
    /// the agents they had.
    pub fn expire(&self) -> Vec<(String, Vec<(AgentId, bool)>)> {
        let mut m = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        let dead: Vec<String> = m
            .iter()
            .filter(|(_, (at, _))| at.elapsed() > self.ttl)
            .map(|(n, _)| n.clone())
            .collect();
        dead.into_iter()
            .filter_map(|n| m.remove(&n).map(|(_, agents)| (n, agents)))
            .collect()
    }

    fn remote_get(&self, agent: AgentId) -> Option<bool> {
        let m = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for (at, agents) in m.values() {
            if at.elapsed() > self.ttl {
                continue;
            }
            for (a, available) in agents {
                if *a == agent {
                    found = Some(found.unwrap_or(false) || *available);
                }
            }
        }
        found
    }

    /// Whether the agent has a socket open anywhere in the cluster, and is available.
    pub fn cluster_get(&self, agent: AgentId) -> Option<bool> {
        let local = self.get(agent).map(|p| p.available);
        match (local, self.remote_get(agent)) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(false) || b.unwrap_or(false)),
        }
    }

    /// Records a socket; returns true when the agent just came online.
    pub fn connect(&self, agent: AgentId, available: bool) -> bool {
        let mut m = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        let p = m.entry(agent).or_insert(AgentPresence {
            connections: 0,
            available,
        });
        p.connections += 1;
        p.available = available;
        p.connections == 1
    }

    /// Forgets a socket; returns true when the agent's last socket closed.
    pub fn disconnect(&self, agent: AgentId) -> bool {
        let mut m = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(&agent) {
            Some(p) if p.connections > 1 => {
                p.connections -= 1;
                false
            }
            Some(_) => {
                m.remove(&agent);
                true
            }
            None => false,
        }
    }

    pub fn set_available(&self, agent: AgentId, available: bool) {
        let mut m = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = m.get_mut(&agent) {
            p.available = available;
        }
    }

    pub fn get(&self, agent: AgentId) -> Option<AgentPresence> {
        self.agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&agent)
            .copied()
    }

    /// W4 / I1: is any agent connected and available, here or on a live node?
    pub fn any_available(&self) -> bool {
        let local = self
            .agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|p| p.available && p.connections > 0);
        local
            || self
                .remote
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .any(|(at, agents)| at.elapsed() <= self.ttl && agents.iter().any(|(_, a)| *a))
    }
}

#[derive(Default)]
struct Viewer {
    sockets: usize,
    typing_until: Option<Instant>,
}

/// (when heard, viewing, typing) as another node last said.
type RemoteViewers = HashMap<(String, ConversationId), (Instant, Vec<AgentId>, Vec<AgentId>)>;
/// (when heard, that node's agents and their availability).
type RemoteNodes = HashMap<String, (Instant, Vec<(AgentId, bool)>)>;

/// I7: who is viewing each conversation and who is typing a reply in it, on this node and
/// (as they last said) on the others.
pub struct Viewers {
    map: Mutex<HashMap<ConversationId, HashMap<AgentId, Viewer>>>,
    /// (node, conversation) → (when, viewing, typing) from other nodes.
    remote: Mutex<RemoteViewers>,
    typing_ttl: Duration,
}

impl Default for Viewers {
    fn default() -> Self {
        Self::new(Duration::from_secs(6))
    }
}

impl Viewers {
    /// `typing_ttl`: a typing signal not renewed within this long is over.
    pub fn new(typing_ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            typing_ttl,
        }
    }

    /// Another node's viewers of a conversation.
    pub fn set_remote(
        &self,
        node: &str,
        conv: ConversationId,
        viewing: Vec<AgentId>,
        typing: Vec<AgentId>,
    ) {
        let mut m = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        if viewing.is_empty() {
            m.remove(&(node.to_owned(), conv));
        } else {
            m.insert((node.to_owned(), conv), (Instant::now(), viewing, typing));
        }
    }

    /// Forgets what a dead node said; returns the conversations that changed.
    pub fn forget_node(&self, node: &str) -> Vec<ConversationId> {
        let mut m = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<ConversationId> = m
            .keys()
            .filter(|(n, _)| n == node)
            .map(|(_, c)| *c)
            .collect();
        m.retain(|(n, _), _| n != node);
        gone
    }

    pub fn view(&self, conv: ConversationId, agent: AgentId) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(conv).or_default().entry(agent).or_default().sockets += 1;
    }

    pub fn leave(&self, conv: ConversationId, agent: AgentId) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = m.get_mut(&conv) {
            if let Some(x) = v.get_mut(&agent) {
                x.sockets = x.sockets.saturating_sub(1);
                if x.sockets == 0 {
                    v.remove(&agent);
                }
            }
            if v.is_empty() {
                m.remove(&conv);
            }
        }
    }

    pub fn typing(&self, conv: ConversationId, agent: AgentId, typing: bool) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = m.get_mut(&conv).and_then(|v| v.get_mut(&agent)) {
            x.typing_until = typing.then(|| Instant::now() + self.typing_ttl);
        }
    }

    /// This node's own viewers of a conversation, for publishing to the others.
    pub fn local_snapshot(&self, conv: ConversationId) -> (Vec<AgentId>, Vec<AgentId>) {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let Some(v) = m.get(&conv) else {
            return (vec![], vec![]);
        };
        let mut viewing: Vec<AgentId> = v.keys().copied().collect();
        let mut typing: Vec<AgentId> = v
            .iter()
            .filter(|(_, x)| x.typing_until.is_some_and(|t| t > now))
            .map(|(a, _)| *a)
            .collect();
        viewing.sort();
        typing.sort();
        (viewing, typing)
    }

    /// (viewing, typing) for a conversation across the cluster, sorted and deduplicated;
    /// expired typing is left out.
    pub fn snapshot(&self, conv: ConversationId) -> (Vec<AgentId>, Vec<AgentId>) {
        let (mut viewing, mut typing) = self.local_snapshot(conv);
        let m = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        for ((_, c), (at, v, t)) in m.iter() {
            if *c == conv {
                viewing.extend(v);
                if at.elapsed() < self.typing_ttl {
                    typing.extend(t);
                }
            }
        }
        viewing.sort();
        viewing.dedup();
        typing.sort();
        typing.dedup();
        (viewing, typing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_counts_sockets() {
        let p = Presence::default();
        assert!(!p.any_available());
        assert!(p.connect(AgentId(1), false));
        assert!(!p.any_available(), "connected but away");
        assert!(!p.connect(AgentId(1), true));
        assert!(p.any_available());
        assert!(!p.disconnect(AgentId(1)));
        assert!(p.disconnect(AgentId(1)));
        assert!(!p.any_available());
    }

    #[test]
    fn remote_nodes_count_until_their_heartbeat_expires() {
        let p = Presence::new(Duration::from_millis(30));
        p.set_remote("n2", vec![(AgentId(7), true)]);
        assert!(p.any_available());
        assert_eq!(p.cluster_get(AgentId(7)), Some(true));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!p.any_available(), "a dead node's agents fall offline");
        assert_eq!(
            p.expire(),
            vec![("n2".to_string(), vec![(AgentId(7), true)])]
        );
        assert_eq!(p.cluster_get(AgentId(7)), None);
    }

    #[test]
    fn viewers_merge_across_nodes() {
        let v = Viewers::new(Duration::from_secs(6));
        let c = ConversationId(1);
        v.view(c, AgentId(1));
        v.set_remote("n2", c, vec![AgentId(2), AgentId(1)], vec![AgentId(2)]);
        assert_eq!(
            v.snapshot(c),
            (vec![AgentId(1), AgentId(2)], vec![AgentId(2)])
        );
        assert_eq!(v.local_snapshot(c), (vec![AgentId(1)], vec![]));
        assert_eq!(v.forget_node("n2"), vec![c]);
        assert_eq!(v.snapshot(c), (vec![AgentId(1)], vec![]));
    }

    #[test]
    fn viewers_and_typing_expire() {
        let v = Viewers::new(Duration::from_millis(30));
        let c = ConversationId(1);
        v.view(c, AgentId(2));
        v.view(c, AgentId(1));
        v.typing(c, AgentId(2), true);
        assert_eq!(
            v.snapshot(c),
            (vec![AgentId(1), AgentId(2)], vec![AgentId(2)])
        );
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(v.snapshot(c).1, vec![]);
        v.leave(c, AgentId(1));
        v.leave(c, AgentId(2));
        assert_eq!(v.snapshot(c), (vec![], vec![]));
    }
}
