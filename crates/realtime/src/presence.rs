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

/// Which agents have a socket open, and whether they are available.
#[derive(Default)]
pub struct Presence {
    agents: Mutex<HashMap<AgentId, AgentPresence>>,
}

impl Presence {
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

    /// W4 / I1: is any agent connected and available?
    pub fn any_available(&self) -> bool {
        self.agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|p| p.available && p.connections > 0)
    }
}

#[derive(Default)]
struct Viewer {
    sockets: usize,
    typing_until: Option<Instant>,
}

/// I7: who is viewing each conversation and who is typing a reply in it.
pub struct Viewers {
    map: Mutex<HashMap<ConversationId, HashMap<AgentId, Viewer>>>,
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
            typing_ttl,
        }
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

    /// (viewing, typing) for a conversation, sorted; expired typing is left out.
    pub fn snapshot(&self, conv: ConversationId) -> (Vec<AgentId>, Vec<AgentId>) {
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
