//! The delivery contract under cut connections: 1,000 messages (500 each way) sent over
//! sockets that are cut at random points and resumed arrive exactly once and in order on
//! the other side. Pending messages are retried with the same client id after a cut.
//! Set `DELIVERY_SEED` to replay a run.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const PER_SIDE: usize = 500;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Side {
    Visitor,
    Agent,
}

/// A client that keeps what it has seen and what is unacknowledged, like the widget does.
struct Reliable {
    side: Side,
    conv: i64,
    /// Last sequence number received (visible seq for the visitor, seq for the agent).
    last: i64,
    /// Sent but not acknowledged: client id → body.
    pending: BTreeMap<String, String>,
    acked: HashSet<String>,
    next: usize,
    /// Bodies of the other side's messages, in the order received.
    received: Vec<String>,
    violations: Vec<String>,
    cuts: usize,
}

impl Reliable {
    fn new(side: Side, conv: i64) -> Self {
        Self {
            side,
            conv,
            last: 0,
            pending: BTreeMap::new(),
            acked: HashSet::new(),
            next: 0,
            received: vec![],
            violations: vec![],
            cuts: 0,
        }
    }

    fn done(&self) -> bool {
        self.acked.len() == PER_SIDE && self.received.len() == PER_SIDE
    }

    fn prefix(&self) -> &'static str {
        match self.side {
            Side::Visitor => "v",
            Side::Agent => "a",
        }
    }

    fn on_frame(&mut self, f: &Value) {
        match f["type"].as_str() {
            Some("message") => {
                let m = &f["message"];
                let seq = m["seq"].as_i64().unwrap();
                if seq != self.last + 1 {
                    self.violations
                        .push(format!("{:?} got seq {seq} after {}", self.side, self.last));
                }
                self.last = self.last.max(seq);
                let body = m["body"].as_str().unwrap_or("").to_owned();
                let theirs = match self.side {
                    Side::Visitor => m["author"]["kind"] == "agent" && m["kind"] == "text",
                    Side::Agent => m["author_kind"] == "visitor",
                };
                if theirs {
                    self.received.push(body);
                }
            }
            Some("ack") => {
                let id = f["client_id"].as_str().unwrap().to_owned();
                self.pending.remove(&id);
                self.acked.insert(id);
            }
            Some("error") => self
                .violations
                .push(format!("{:?} error frame {f}", self.side)),
            _ => {}
        }
    }

    fn send_frame(&self, id: &str, body: &str) -> Value {
        match self.side {
            Side::Visitor => {
                json!({"type": "send", "conversation_id": self.conv, "client_id": id, "body": body})
            }
            Side::Agent => {
                json!({"type": "send", "conversation_id": self.conv, "client_id": id, "body": body, "kind": "text"})
            }
        }
    }
}

async fn connect(side: Side, c: &Reliable, visitor: &Visitor, agent: &Agent) -> Socket {
    match side {
        Side::Visitor => visitor.ws(json!({ c.conv.to_string(): c.last })).await,
        Side::Agent => {
            let mut s = agent.ws().await;
            s.send(json!({"type": "subscribe", "conversation_id": c.conv, "after": c.last}))
                .await;
            s
        }
    }
}

async fn run_side(side: Side, conv: i64, visitor: Visitor, agent: Agent, seed: u64) -> Reliable {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Reliable::new(side, conv);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !c.done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{side:?} did not finish: {} acked, {} received, {} pending",
            c.acked.len(),
            c.received.len(),
            c.pending.len()
        );
        let mut s = connect(side, &c, &visitor, &agent).await;
        // Retry everything unacknowledged, with the same client ids.
        for (id, body) in c.pending.clone() {
            s.send(c.send_frame(&id, &body)).await;
        }
        // Live for a random number of steps, then cut without a close frame.
        let steps = rng.gen_range(5..60);
        for _ in 0..steps {
            if c.next < PER_SIDE && rng.gen_bool(0.7) {
                let id = format!("{}-{}", c.prefix(), c.next);
                let body = format!("{}:{}", c.prefix(), c.next);
                c.next += 1;
                c.pending.insert(id.clone(), body.clone());
                s.send(c.send_frame(&id, &body)).await;
            }
            if let Some(f) = s
                .next_within(Duration::from_millis(if c.next < PER_SIDE {
                    2
                } else {
                    50
                }))
                .await
            {
                c.on_frame(&f);
            }
            if c.done() {
                break;
            }
        }
        c.cuts += 1;
        drop(s);
    }
    c
}

/// A server with its owner, and a visitor's conversation assigned to the owner (taken
/// first, so the visitor's sequence is only text from here on).
async fn assigned_conversation() -> (TestApp, Agent, Visitor, i64) {
    let (app, owner) = TestApp::start().await.with_owner().await;
    owner.set_available(true).await;
    let visitor = app.visitor().await;
    let conv = visitor.start().await;
    owner
        .post(
            &format!("/api/v1/conversations/{conv}/assign"),
            json!({"assignee_id": owner.id}),
        )
        .await;
    (app, owner, visitor, conv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_over_cut_connections_arrive_exactly_once_in_order() {
    let seed: u64 = std::env::var("DELIVERY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("DELIVERY_SEED={seed}");
    let (_app, owner, visitor, conv) = assigned_conversation().await;

    let v = tokio::spawn(run_side(
        Side::Visitor,
        conv,
        visitor.clone(),
        owner.clone(),
        seed,
    ));
    let a = tokio::spawn(run_side(
        Side::Agent,
        conv,
        visitor.clone(),
        owner.clone(),
        seed.wrapping_add(1),
    ));
    let (v, a) = (v.await.unwrap(), a.await.unwrap());
    println!("cuts: visitor {}, agent {}", v.cuts, a.cuts);
    assert!(v.cuts > 5 && a.cuts > 5, "the connections were really cut");
    assert!(v.violations.is_empty(), "{:?}", v.violations);
    assert!(a.violations.is_empty(), "{:?}", a.violations);
    // Exactly once, in the order sent (each side sends in order on one connection at a time).
    let expect = |p: &str| {
        (0..PER_SIDE)
            .map(|i| format!("{p}:{i}"))
            .collect::<Vec<_>>()
    };
    let sorted = |mut x: Vec<String>| {
        x.sort_by_key(|b| b[2..].parse::<usize>().unwrap());
        x
    };
    assert_eq!(
        sorted(a.received.clone()),
        expect("v"),
        "the agent got each visitor message once"
    );
    assert_eq!(
        sorted(v.received.clone()),
        expect("a"),
        "the visitor got each agent message once"
    );
    // The store agrees: each client id once, sequence gap-free.
    let (_, all) = owner
        .get(&format!("/api/v1/conversations/{conv}/messages?limit=1000"))
        .await;
    let mut all = all.as_array().unwrap().clone();
    let (_, more) = owner
        .get(&format!(
            "/api/v1/conversations/{conv}/messages?after={}&limit=1000",
            all.len()
        ))
        .await;
    all.extend(more.as_array().unwrap().iter().cloned());
    let seqs: Vec<i64> = all.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let ids: Vec<&str> = all.iter().filter_map(|m| m["client_id"].as_str()).collect();
    assert_eq!(ids.len(), 2 * PER_SIDE);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 2 * PER_SIDE);
}

/// A backlog longer than a catch-up's pages (a small first one, then pages of 500) arrives
/// whole and in order: on a visitor's resume and on an agent's subscribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_backlog_arrives_whole_on_resume_and_subscribe() {
    let (_app, owner, visitor, conv) = assigned_conversation().await;
    // 32 + 500 + 68: the first page, a full page, and the rest.
    for i in 0..600 {
        let (st, _) = owner.send(conv, &format!("b-{i}"), &format!("b:{i}")).await;
        assert!(st.is_success(), "{st}");
    }
    let (_, c) = owner.get(&format!("/api/v1/conversations/{conv}")).await;
    let (last, last_visible) = (
        c["conversation"]["last_seq"].as_i64().unwrap(),
        c["conversation"]["last_visible_seq"].as_i64().unwrap(),
    );
    assert!(last_visible > 600, "{c}");
    // Every entry from 1 on, each once, in order.
    async fn all_after_zero(mut s: Socket, last: i64) {
        let mut seen = Vec::new();
        while seen.last() != Some(&last) {
            let f = s.next_of("message").await;
            seen.push(f["message"]["seq"].as_i64().unwrap());
        }
        assert_eq!(seen, (1..=last).collect::<Vec<_>>());
    }
    all_after_zero(
        visitor.ws(json!({ conv.to_string(): 0 })).await,
        last_visible,
    )
    .await;
    let mut agent = owner.ws().await;
    agent
        .send(json!({"type": "subscribe", "conversation_id": conv, "after": 0}))
        .await;
    all_after_zero(agent, last).await;
}
