//! A ceiling between the two halves: Confab's own SQLite store — the server's writer
//! thread, its group commit, rules, indexes, notifications and full text, exactly as the
//! server runs it — driven in this process at the throughput scenario's rates, with the
//! server around it removed: no sockets, no HTTP, no JSON, no fan-out.
//!
//! The relay with storage shows what the machine allows a chat server whose store writes
//! one row a message; this shows what Confab's data model allows on the same disk. The
//! gap between Confab and this is the server; between this and the relay, the store.

use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use confab_domain::rules;
use confab_domain::text::MessageBody;
use confab_domain::{
    Access, Agent, Channel, ContactId, ConversationId, MessageKind, ReopenPolicy, Role,
    SiteSettings,
};
use confab_store::{
    AgentPatch, Author, NewAgent, NewContact, NewConversation, NewMessage, NewSite, Store,
};
use confab_store_sqlite::{SqliteStore, WriterTimes};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::util::{self, r2};

/// The throughput scenario's cast, in a store of its own: a site, an owner and `agents`
/// available agents with full access, and a conversation for each of `visitors`, started
/// as the widget starts one while agents are online.
pub struct Cast {
    store: Arc<SqliteStore>,
    team: Arc<Vec<Agent>>,
    /// Each visitor's conversation, contact and agent.
    visitors: Vec<(ConversationId, ContactId, usize)>,
    /// Where the database lives: its bytes written per message are the process's.
    _dir: tempfile::TempDir,
}

impl Cast {
    pub async fn new(visitors: usize, agents: usize) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("confab-bench-store-")
            .tempdir()?;
        let store = Arc::new(SqliteStore::open(&dir.path().join("confab.db")).await?);
        let now = Utc::now();
        let settings = SiteSettings::default();
        let site = store
            .create_site(NewSite {
                name: "Bench".into(),
                public_key: "bench-site".into(),
                identity_secret: "bench-secret".into(),
                settings: settings.clone(),
                now,
            })
            .await?;
        let mut team = Vec::new();
        for i in 0..=agents {
            let role = if i == 0 { Role::Owner } else { Role::Agent };
            let a = store
                .create_agent(NewAgent {
                    email: format!("agent{i}@bench.example"),
                    name: format!("Agent {i}"),
                    display_name: format!("Agent {i}"),
                    password_hash: "not used".into(),
                    role,
                    access: Access::Full,
                    now,
                })
                .await?;
            let patch = AgentPatch {
                available: Some(true),
                ..Default::default()
            };
            team.push(store.update_agent(a.id, patch).await?);
        }
        let team = Arc::new(team);
        let mut convs = Vec::with_capacity(visitors);
        for i in 0..visitors {
            let contact = store
                .create_contact(NewContact {
                    site_id: Some(site.id),
                    now: Some(now),
                    ..Default::default()
                })
                .await?;
            let started = store
                .start_conversation(NewConversation {
                    site_id: site.id,
                    contact_id: contact.id,
                    channel: Channel::Web,
                    start_url: Some("https://shop.example.com/".into()),
                    handoff: Some(rules::handoff(&settings, true, now)),
                    notify: team.clone(),
                    notify_preview: String::new(),
                    now,
                })
                .await?;
            // Agents 1..=n answer, as the load generator's agents do (the owner only hears).
            convs.push((started.conversation.id, contact.id, 1 + i % agents.max(1)));
        }
        Ok(Self {
            store,
            team,
            visitors: convs,
            _dir: dir,
        })
    }

    fn message(&self, turn: usize, visitor: bool, client_id: String, body: &str) -> NewMessage {
        let (conversation_id, contact_id, agent) = self.visitors[turn];
        NewMessage {
            conversation_id,
            author: if visitor {
                Author::Visitor { contact_id }
            } else {
                Author::Agent(self.team[agent].clone())
            },
            kind: MessageKind::Text,
            body: MessageBody::parse(body, false).expect("a bench line is a valid body"),
            client_id: Some(client_id),
            attachment_id: None,
            mentions: vec![],
            reopen_policy: ReopenPolicy::Reopen,
            handoff_if_new: None,
            notify: self.team.clone(),
            now: Utc::now(),
        }
    }

    /// Every conversation gets a visitor's message and its agent's reply (which assigns
    /// it), as the throughput scenario's warm-up leaves them; not measured.
    pub async fn warm_up(&self) -> anyhow::Result<()> {
        let mut talk = util::Talk::new(1);
        for turn in 0..self.visitors.len() {
            for visitor in [true, false] {
                let (prefix, dir) = if visitor { ("w", 'v') } else { ("a", 'a') };
                let body = util::body(util::now_ns(), dir, "warm", &talk.line(dir));
                let m = self.message(turn, visitor, talk.client_id(prefix), &body);
                self.store.post_message(m).await.context("warm-up post")?;
            }
        }
        Ok(())
    }

    /// Posts at `rate` for `secs`, open loop: each post's latency counts from the time it
    /// was due, so a store that falls behind cannot hide it. Half the posts are visitors',
    /// half their agents' replies, visitors taking turns in a shuffled order.
    pub async fn paced(&self, step: usize, rate: f64, secs: f64) -> anyhow::Result<Value> {
        let me = std::process::id();
        let (cpu0, written0) = (util::cpu_secs(me), util::written_bytes(me));
        let mut talk = util::Talk::new(step as u64 + 2);
        let turns = talk.shuffled(self.visitors.len());
        let _ = self.store.take_writer_times();
        let p = util::open_loop(rate, secs, |i, due_ns| {
            let visitor = i % 2 == 0;
            let (prefix, dir) = if visitor { ("w", 'v') } else { ("a", 'a') };
            let body = util::body(due_ns, dir, &format!("{step}-{i}"), &talk.line(dir));
            let turn = turns[(i / 2) as usize % turns.len()];
            let m = self.message(turn, visitor, talk.client_id(prefix), &body);
            let store = self.store.clone();
            async move {
                store
                    .post_message(m)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        // This process does nothing else meanwhile (the load generator's workers are
        // processes of their own): its CPU time is the store's, plus the small pacer.
        let cores = (util::cpu_secs(me) - cpu0) / p.secs;
        let writer = writer_json(&self.store.take_writer_times(), p.secs);
        let written = util::written_bytes(me).saturating_sub(written0);
        let posted = p.lat.len() as f64;
        let per_s = posted / p.secs.max(secs);
        let l = util::lat(&p.lat);
        Ok(json!({
            "offered_per_s": rate,
            "posted": posted,
            "posted_per_s": per_s.round(),
            "errors": p.errors,
            "first_error": p.first_error,
            "sustained": p.errors == 0 && per_s >= 0.95 * rate && l.p99_ms <= 50.0,
            "cpu_cores": r2(cores),
            "written_kib_per_msg": r2(written as f64 / 1024.0 / posted.max(1.0)),
            "post_latency": l,
            "writer": writer,
        }))
    }

    pub async fn close(self) {
        self.store.close().await;
    }
}

/// Where the store's writer spent a step (see [`WriterTimes`]): batches and syncs per
/// second, ops per batch, each part of a batch's time in µs, and the share of the step the
/// writer thread spent in statements and commits.
fn writer_json(t: &WriterTimes, secs: f64) -> Value {
    let q = |h: &Histogram<u64>| {
        json!({
            "p50_us": h.value_at_quantile(0.5),
            "p99_us": h.value_at_quantile(0.99),
            "p999_us": h.value_at_quantile(0.999),
            "max_us": h.max(),
            "mean_us": r2(h.mean()),
        })
    };
    let spent = |h: &Histogram<u64>| h.mean() * h.len() as f64 / 1e6;
    json!({
        "batches": t.ops.len(),
        "ops": t.ops_total(),
        "batches_per_s": r2(t.ops.len() as f64 / secs),
        "ops_per_batch": r2(t.ops.mean()),
        "syncs_per_s": r2(t.sync.len() as f64 / secs),
        "wait_us": q(&t.wait),
        "apply_us": q(&t.apply),
        "commit_us": q(&t.commit),
        "sync_us": q(&t.sync),
        "busy": r2((spent(&t.apply) + spent(&t.commit)) / secs),
    })
}

/// The store alone at each of `rates` in turn, on one database as the server's steps are,
/// until a rate is not sustained (its posts then queue without end).
pub async fn run(
    visitors: usize,
    agents: usize,
    rates: &[f64],
    secs: f64,
) -> anyhow::Result<Value> {
    let cast = Cast::new(visitors, agents).await?;
    cast.warm_up().await?;
    let mut steps = Vec::new();
    let mut best = 0.0f64;
    for (k, &rate) in rates.iter().enumerate() {
        let st = cast.paced(k, rate, secs).await?;
        eprintln!(
            "  store alone {rate:>7} posts/s: {} /s, p50 {} p99 {} ms, {} cores, {} KiB/msg",
            st["posted_per_s"],
            st["post_latency"]["p50_ms"],
            st["post_latency"]["p99_ms"],
            st["cpu_cores"],
            st["written_kib_per_msg"]
        );
        let w = &st["writer"];
        let part = |k: &str| format!("{} / {}", w[k]["p50_us"], w[k]["p99_us"]);
        eprintln!(
            "    its writer: {} batches/s of {} posts, busy {}; µs p50 / p99: wait {}, statements {}, commit {}, sync {}",
            w["batches_per_s"],
            w["ops_per_batch"],
            w["busy"],
            part("wait_us"),
            part("apply_us"),
            part("commit_us"),
            part("sync_us")
        );
        let ok = st["sustained"] == json!(true);
        if let Some(e) = st["first_error"].as_str() {
            anyhow::bail!("the store refused a post: {e}");
        }
        if ok {
            best = best.max(st["posted_per_s"].as_f64().unwrap_or(0.0));
        }
        steps.push(st);
        if !ok {
            break;
        }
    }
    cast.close().await;
    Ok(json!({ "steps": steps, "best_sustained_per_s": best }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store alone posts what it is offered, into the conversations it made, and
    /// counts each post once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_alone_posts_what_it_is_offered() {
        let cast = Cast::new(6, 2).await.unwrap();
        cast.warm_up().await.unwrap();
        let st = cast.paced(0, 200.0, 0.5).await.unwrap();
        assert_eq!(st["posted"], json!(100.0));
        assert_eq!(st["errors"], json!(0));
        // The writer's times cover the step's posts, and only them (the warm-up's were
        // taken before it).
        let w = &st["writer"];
        assert_eq!(w["ops"], json!(100), "{w}");
        assert!((1..=100).contains(&w["batches"].as_u64().unwrap()), "{w}");
        assert!(w["sync_us"]["max_us"].as_u64().unwrap() > 0, "{w}");
        let (conv, _, _) = cast.visitors[0];
        let c = cast.store.conversation(conv).await.unwrap();
        assert!(c.assignee_id.is_some(), "the warm-up's reply assigns");
        let total: i64 = futures::future::join_all(
            cast.visitors
                .iter()
                .map(|(id, _, _)| cast.store.conversation(*id)),
        )
        .await
        .into_iter()
        .map(|c| c.unwrap().last_seq)
        .sum();
        // Each conversation: the handoff event, 2 warm-up messages and an assignment event.
        assert_eq!(total, 6 * 4 + 100);
        cast.close().await;
    }
}
