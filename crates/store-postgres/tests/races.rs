//! Races that only a multi-writer backend can lose: two nodes (two pools on one database)
//! doing the same thing at the same moment. Each round lines the callers up on a barrier so
//! that they really start together.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestDb;
use confab_domain::rules;
use confab_domain::text::MessageBody;
use confab_domain::*;
use confab_store::*;
use confab_store_postgres::PgStore;
use tokio::sync::Barrier;

const ROUNDS: usize = 50;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

/// Two nodes: two stores, each with a pool of its own, on one fresh database.
async fn two_nodes() -> (TestDb, Arc<PgStore>, Arc<PgStore>) {
    let db = TestDb::create().await;
    let a = Arc::new(db.store().await);
    let b = Arc::new(db.store().await);
    (db, a, b)
}

async fn site(s: &dyn Store) -> Site {
    s.create_site(NewSite {
        name: "shop".into(),
        public_key: "k".into(),
        identity_secret: "secret".into(),
        settings: SiteSettings::default(),
        now: t0(),
    })
    .await
    .unwrap()
}

async fn contact(s: &dyn Store, site: SiteId) -> Contact {
    s.create_contact(NewContact {
        site_id: Some(site),
        now: Some(t0()),
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn available_agent(s: &dyn Store, email: &str) -> Agent {
    let a = s
        .create_agent(NewAgent {
            email: email.into(),
            name: email.into(),
            display_name: email.split('@').next().unwrap().into(),
            password_hash: "hash".into(),
            role: Role::Agent,
            access: Access::Full,
            now: t0(),
        })
        .await
        .unwrap();
    s.update_agent(
        a.id,
        AgentPatch {
            available: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn new_conversation(site: SiteId, contact: ContactId) -> NewConversation {
    NewConversation {
        site_id: site,
        contact_id: contact,
        channel: Channel::Web,
        start_url: None,
        handoff: Some(rules::handoff(&SiteSettings::default(), true, t0())),
        notify: Default::default(),
        notify_preview: String::new(),
        now: t0(),
    }
}

/// Every entry has its place: seqs are 1..=last_seq and visible seqs 1..=last_visible_seq.
async fn assert_timeline_consistent(s: &dyn Store, id: ConversationId) -> Vec<Message> {
    let conv = s.conversation(id).await.unwrap();
    let all = s.messages(id, 0, 1000, false).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=conv.last_seq).collect::<Vec<_>>(),
        "seqs are gap-free and end at last_seq"
    );
    let visible = s.messages(id, 0, 1000, true).await.unwrap();
    assert_eq!(
        visible
            .iter()
            .map(|m| m.visible_seq.unwrap_or(-1))
            .collect::<Vec<_>>(),
        (1..=conv.last_visible_seq).collect::<Vec<_>>(),
        "visible seqs are gap-free and end at last_visible_seq"
    );
    all
}

fn joined_agents(timeline: &[Message]) -> Vec<AgentId> {
    timeline
        .iter()
        .filter_map(|m| match &m.event {
            Some(Event::Joined { agent_id, .. }) => Some(*agent_id),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_starting_the_same_chat_make_one_conversation() {
    let (_db, n1, n2) = two_nodes().await;
    let st = site(&*n1).await;
    for round in 0..ROUNDS {
        let ct = contact(&*n1, st.id).await;
        let barrier = Arc::new(Barrier::new(2));
        let tasks = [n1.clone(), n2.clone()].map(|node| {
            let barrier = barrier.clone();
            let n = new_conversation(st.id, ct.id);
            tokio::spawn(async move {
                barrier.wait().await;
                node.start_conversation(n).await.unwrap()
            })
        });
        let mut ids = HashSet::new();
        let mut created = 0;
        for t in tasks {
            let started = t.await.unwrap();
            ids.insert(started.conversation.id);
            created += usize::from(started.created);
        }
        assert_eq!((ids.len(), created), (1, 1), "round {round}");
        let convs = n2.visitor_conversations(ct.id).await.unwrap();
        assert_eq!(convs.len(), 1, "round {round}: one conversation stored");
        let timeline = assert_timeline_consistent(&*n2, convs[0].id).await;
        assert_eq!(timeline.len(), 1, "round {round}: one handoff entry");
    }
    // One wait-time check per conversation, not per start.
    let jobs = n1
        .claim_due_jobs(t0() + Duration::days(1), Duration::seconds(30), 1000)
        .await
        .unwrap();
    assert_eq!(jobs.len(), ROUNDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_taking_the_same_chat_leave_one_assignee_and_a_true_timeline() {
    let (_db, n1, n2) = two_nodes().await;
    let st = site(&*n1).await;
    let ann = available_agent(&*n1, "ann@example.com").await;
    let bob = available_agent(&*n1, "bob@example.com").await;
    let mut both_changed = 0;
    for round in 0..ROUNDS {
        let ct = contact(&*n1, st.id).await;
        let conv = n1
            .start_conversation(new_conversation(st.id, ct.id))
            .await
            .unwrap()
            .conversation;
        let barrier = Arc::new(Barrier::new(2));
        let tasks = [(n1.clone(), ann.clone()), (n2.clone(), bob.clone())].map(|(node, me)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                // Reassigning is allowed at any time (I3), so both may succeed; what must
                // hold is that they are applied one after the other.
                node.assign(conv.id, Some(&me), Some(&me), t0())
                    .await
                    .unwrap()
            })
        });
        let mut changes = 0;
        for t in tasks {
            let changed = t.await.unwrap();
            assert!(changed.written.len() <= 1);
            changes += changed.written.len();
        }
        both_changed += usize::from(changes == 2);
        let after = n2.conversation(conv.id).await.unwrap();
        let assignee = after.assignee_id.expect("someone took it");
        assert!(assignee == ann.id || assignee == bob.id);
        let timeline = assert_timeline_consistent(&*n2, conv.id).await;
        let joined = joined_agents(&timeline);
        assert!(changes >= 1, "round {round}: it was unassigned");
        assert_eq!(
            joined.len(),
            changes,
            "round {round}: one Joined per assignment that reported a change"
        );
        assert_eq!(
            joined.last(),
            Some(&assignee),
            "round {round}: the last Joined names the assignee"
        );
        let mut distinct = joined.clone();
        distinct.dedup();
        assert_eq!(
            distinct, joined,
            "round {round}: nobody joins twice in a row"
        );
    }
    // Both orders are correct; how often the second one changed something is informative.
    eprintln!("{both_changed} of {ROUNDS} rounds applied both assignments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_taking_a_chat_from_two_tabs_joins_once() {
    let (_db, n1, n2) = two_nodes().await;
    let st = site(&*n1).await;
    let ann = available_agent(&*n1, "ann@example.com").await;
    for round in 0..ROUNDS {
        let ct = contact(&*n1, st.id).await;
        let conv = n1
            .start_conversation(new_conversation(st.id, ct.id))
            .await
            .unwrap()
            .conversation;
        let barrier = Arc::new(Barrier::new(2));
        let tasks = [n1.clone(), n2.clone()].map(|node| {
            let barrier = barrier.clone();
            let me = ann.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.assign(conv.id, Some(&me), Some(&me), t0())
                    .await
                    .unwrap()
            })
        });
        let mut changes = 0;
        for t in tasks {
            changes += t.await.unwrap().written.len();
        }
        assert_eq!(changes, 1, "round {round}: exactly one assign changed it");
        let timeline = assert_timeline_consistent(&*n2, conv.id).await;
        assert_eq!(joined_agents(&timeline), vec![ann.id], "round {round}");
    }
}

fn visitor_post(conv: &Conversation, client_id: &str, body: &str) -> NewMessage {
    NewMessage {
        conversation_id: conv.id,
        author: Author::Visitor {
            contact_id: conv.contact_id,
        },
        kind: MessageKind::Text,
        body: MessageBody::parse(body, false).unwrap(),
        client_id: Some(client_id.into()),
        attachment_id: None,
        mentions: vec![],
        reopen_policy: ReopenPolicy::Reopen,
        handoff_if_new: None,
        notify: Default::default(),
        now: t0(),
    }
}

/// The conformance case `concurrent_posts_keep_order`, spread over three nodes, with every
/// post also retried at once from another node (a client resending after a lost ack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_and_retries_from_three_nodes() {
    let db = TestDb::create().await;
    let nodes = [
        Arc::new(db.store().await),
        Arc::new(db.store().await),
        Arc::new(db.store().await),
    ];
    let st = site(&*nodes[0]).await;
    let ct = contact(&*nodes[0], st.id).await;
    let conv = nodes[0]
        .start_conversation(new_conversation(st.id, ct.id))
        .await
        .unwrap()
        .conversation;
    const POSTS: usize = 200;
    let mut tasks = Vec::new();
    for i in 0..POSTS {
        for copy in 0..2 {
            let node = nodes[(i + copy) % nodes.len()].clone();
            let m = visitor_post(&conv, &format!("c{i}"), &format!("m{i}"));
            tasks.push(tokio::spawn(async move {
                (i, node.post_message(m).await.unwrap())
            }));
        }
    }
    let mut by_client = vec![Vec::new(); POSTS];
    for t in tasks {
        let (i, posted) = t.await.unwrap();
        by_client[i].push(posted);
    }
    let mut seqs = Vec::new();
    for (i, pair) in by_client.iter().enumerate() {
        assert_eq!(
            pair.iter().filter(|p| p.created).count(),
            1,
            "c{i}: stored once"
        );
        assert_eq!(
            pair[0].message, pair[1].message,
            "c{i}: the retry gets the same message"
        );
        seqs.push(pair[0].message.seq);
    }
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), POSTS);
    let all = assert_timeline_consistent(&*nodes[1], conv.id).await;
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=POSTS as i64 + 1).collect::<Vec<_>>()
    );
    let last = nodes[2].conversation(conv.id).await.unwrap();
    assert_eq!(last.last_visitor_seq, POSTS as i64 + 1);
}

/// Four nodes' job loops polling at once: every due job is claimed by exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_due_job_is_claimed_by_one_node() {
    let db = TestDb::create().await;
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(Arc::new(db.store().await));
    }
    let st = site(&*nodes[0]).await;
    let ct = contact(&*nodes[0], st.id).await;
    let mut n = new_conversation(st.id, ct.id);
    n.handoff = None; // no wait-time job of its own
    let conv = nodes[0].start_conversation(n).await.unwrap().conversation;
    const JOBS: usize = 300;
    for i in 0..JOBS {
        nodes[0]
            .schedule_job(
                JobKind::SnoozeWake,
                conv.id,
                t0() + Duration::seconds(i as i64),
            )
            .await
            .unwrap();
    }
    let due = t0() + Duration::hours(1);
    let barrier = Arc::new(Barrier::new(nodes.len()));
    let tasks: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|node| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut mine = Vec::new();
                loop {
                    let claimed = node
                        .claim_due_jobs(due, Duration::minutes(5), 7)
                        .await
                        .unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "no job was claimed twice");
    assert_eq!(all.len(), JOBS, "every due job was claimed");
    // The leases run out: all of them come back, once.
    let again = nodes[3]
        .claim_due_jobs(due + Duration::minutes(6), Duration::minutes(5), 1000)
        .await
        .unwrap();
    assert_eq!(again.len(), JOBS);
}
