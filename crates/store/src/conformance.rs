//! The conformance cases every backend must pass, as plain async functions over
//! `&dyn Store`. A backend runs them all with [`conformance_tests!`](crate::conformance_tests),
//! giving each case a fresh, empty store. Its set-up helpers (`site`, `contact`, `start`,
//! `visitor_msg`) serve a backend's own tests too.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use confab_domain::rules::{self, Handoff};
use confab_domain::text::MessageBody;
use confab_domain::*;

use crate::*;

/// Generates one `#[tokio::test]` per conformance case. `$make` is an expression evaluating
/// to a future of `(Arc<dyn Store>, guard)`; the guard is kept alive for the test's length.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            agents_sessions_and_tokens, teams_and_sites, contacts_merge_and_pages,
            start_is_one_conversation_per_contact, a_visitors_conversations_come_back_newest_first,
            concurrent_starts_make_one_conversation,
            sequence_numbers_are_gap_free, idempotent_posts, visitor_view_skips_internal_entries,
            reply_assigns_available_agents_only, visitor_message_wakes_and_reopens,
            final_policy_starts_a_new_conversation, assignment_and_status_rules_inside_the_store,
            folder_counts_match_the_domain, listing_filters_and_search, delete_removes_everything,
            read_receipts_only_grow, jobs_are_claimed_once_and_leases_expire,
            concurrent_posts_keep_order, refused_posts_among_many_leave_nothing_behind,
            notifications_roundtrip, posts_commit_their_notifications, list_row_after_a_post,
            list_row_after_a_change,
            posts_and_other_writes_at_once, starts_commit_their_notifications,
            attachments_belong_to_their_conversation, timeline_writes_of_every_kind_at_once
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (store, _guard) = $make.await;
            $crate::conformance::$case(store).await;
        }
    )*};
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

pub async fn agent(
    s: &dyn Store,
    email: &str,
    role: Role,
    access: Access,
    available: bool,
) -> Agent {
    let a = s
        .create_agent(NewAgent {
            email: email.into(),
            name: email.into(),
            display_name: email.split('@').next().unwrap().into(),
            password_hash: "hash".into(),
            role,
            access,
            now: t0(),
        })
        .await
        .unwrap();
    if available {
        s.update_agent(
            a.id,
            AgentPatch {
                available: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap()
    } else {
        a
    }
}

pub async fn site(s: &dyn Store, key: &str) -> Site {
    s.create_site(NewSite {
        name: key.into(),
        public_key: key.into(),
        identity_secret: "secret".into(),
        settings: SiteSettings::default(),
        now: t0(),
    })
    .await
    .unwrap()
}

pub async fn contact(s: &dyn Store, site: SiteId) -> Contact {
    s.create_contact(NewContact {
        site_id: Some(site),
        now: Some(t0()),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn online() -> Option<Handoff> {
    Some(rules::handoff(&SiteSettings::default(), true, t0()))
}

pub async fn start(s: &dyn Store, site: SiteId, contact: ContactId) -> Conversation {
    s.start_conversation(NewConversation {
        site_id: site,
        contact_id: contact,
        channel: Channel::Web,
        start_url: Some("https://shop.example.com/".into()),
        handoff: online(),
        notify: Default::default(),
        notify_preview: String::new(),
        now: t0(),
    })
    .await
    .unwrap()
    .conversation
}

pub fn visitor_msg(conv: &Conversation, client_id: &str, body: &str) -> NewMessage {
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
        handoff_if_new: online(),
        notify: Default::default(),
        now: t0(),
    }
}

fn agent_msg(
    conv: &Conversation,
    a: &Agent,
    kind: MessageKind,
    client_id: &str,
    body: &str,
) -> NewMessage {
    NewMessage {
        author: Author::Agent(a.clone()),
        kind,
        ..visitor_msg(conv, client_id, body)
    }
}

/// A conversation with an online handoff and `n` visitor messages.
async fn fixture(s: &dyn Store) -> (Site, Contact, Conversation) {
    let st = site(s, "k1").await;
    let ct = contact(s, st.id).await;
    let c = start(s, st.id, ct.id).await;
    (st, ct, c)
}

pub async fn agents_sessions_and_tokens(s: Arc<dyn Store>) {
    let s = &*s;
    assert_eq!(s.count_agents().await.unwrap(), 0);
    let a = agent(s, "ann@example.com", Role::Owner, Access::Full, false).await;
    assert!(!a.available);
    assert!(matches!(
        s.create_agent(NewAgent {
            email: "ann@example.com".into(),
            name: "x".into(),
            display_name: "x".into(),
            password_hash: "h".into(),
            role: Role::Agent,
            access: Access::Full,
            now: t0()
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    let (got, hash) = s
        .agent_credentials("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.id, hash.as_str()), (a.id, "hash"));
    assert!(s
        .agent_credentials("nobody@example.com")
        .await
        .unwrap()
        .is_none());
    let a2 = s
        .update_agent(
            a.id,
            AgentPatch {
                display_name: Some("Ann".into()),
                avatar_url: Some(Some("https://x/a.png".into())),
                available: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            a2.display_name.as_str(),
            a2.avatar_url.as_deref(),
            a2.available
        ),
        ("Ann", Some("https://x/a.png"), true)
    );
    assert_eq!(a2.name, a.name, "fields left out are kept");
    assert!(matches!(
        s.agent(AgentId(999)).await,
        Err(StoreError::NotFound(_))
    ));

    s.create_session(NewSession {
        token_hash: "th".into(),
        agent_id: a.id,
        csrf_token: "c".into(),
        created_at: t0(),
        expires_at: t0() + Duration::hours(1),
    })
    .await
    .unwrap();
    // The session comes with its agent as stored now.
    assert_eq!(
        s.session("th", t0()).await.unwrap().unwrap().agent,
        s.agent(a.id).await.unwrap()
    );
    assert!(
        s.session("th", t0() + Duration::hours(2))
            .await
            .unwrap()
            .is_none(),
        "expired sessions are gone"
    );
    s.delete_agent_sessions(a.id).await.unwrap();
    assert!(s.session("th", t0()).await.unwrap().is_none());
    s.create_api_token(a.id, "ci", "tok", t0()).await.unwrap();
    assert_eq!(s.agent_by_api_token("tok").await.unwrap(), Some(a.id));
    assert_eq!(s.agent_by_api_token("nope").await.unwrap(), None);
    s.set_password(a.id, "new").await.unwrap();
    assert_eq!(
        s.agent_credentials("ann@example.com")
            .await
            .unwrap()
            .unwrap()
            .1,
        "new"
    );
}

pub async fn teams_and_sites(s: Arc<dyn Store>) {
    let s = &*s;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    let t = s.create_team("Support", &[a.id]).await.unwrap();
    assert_eq!(t.members, vec![a.id]);
    assert!(matches!(
        s.create_team("Support", &[]).await,
        Err(StoreError::Conflict(_))
    ));
    let t = s.update_team(t.id, Some("Sales"), Some(&[])).await.unwrap();
    assert_eq!((t.name.as_str(), t.members.len()), ("Sales", 0));
    assert!(matches!(
        s.update_team(t.id, None, Some(&[AgentId(999)])).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.team(t.id).await.unwrap().members.len(),
        0,
        "a failed update changes nothing"
    );
    s.delete_team(t.id).await.unwrap();
    assert!(matches!(s.team(t.id).await, Err(StoreError::NotFound(_))));

    let st = site(s, "key-1").await;
    assert_eq!(s.site_by_key("key-1").await.unwrap().unwrap().id, st.id);
    assert!(s.site_by_key("key-2").await.unwrap().is_none());
    let mut settings = st.settings.clone();
    settings.allowed_origins = vec!["https://shop.example.com".into()];
    settings.reopen_policy = ReopenPolicy::Final;
    let st2 = s
        .update_site(st.id, Some("Shop"), Some(&settings))
        .await
        .unwrap();
    assert_eq!((st2.name.as_str(), &st2.settings), ("Shop", &settings));
    assert_eq!(s.list_sites().await.unwrap().len(), 1);
}

pub async fn contacts_merge_and_pages(s: Arc<dyn Store>) {
    let s = &*s;
    let st = site(s, "k").await;
    let anon = contact(s, st.id).await;
    let known = s
        .create_contact(NewContact {
            site_id: Some(st.id),
            email: Some("c@example.com".into()),
            external_id: Some("42".into()),
            verified: true,
            now: Some(t0()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        s.contact_by_external_id(st.id, "42")
            .await
            .unwrap()
            .unwrap()
            .id,
        known.id
    );
    assert_eq!(
        s.contact_by_email(st.id, "c@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        known.id
    );
    // Refused one-row writes: named, and nothing stored.
    let dup = NewContact {
        site_id: Some(st.id),
        external_id: Some("42".into()),
        now: Some(t0()),
        ..Default::default()
    };
    assert!(matches!(
        s.create_contact(dup.clone()).await,
        Err(StoreError::Conflict("contact"))
    ));
    let nowhere = NewContact {
        site_id: Some(SiteId(999_999)),
        ..dup
    };
    assert!(matches!(
        s.create_contact(nowhere).await,
        Err(StoreError::NotFound("site"))
    ));
    let view = |url: &str| PageView {
        url: url.into(),
        title: Some("A".into()),
        referrer: None,
        created_at: t0(),
    };
    assert!(matches!(
        s.add_page_view(ContactId(999_999), view("https://shop.example.com/x"))
            .await,
        Err(StoreError::NotFound("contact"))
    ));
    s.create_visitor_session("vt", st.id, anon.id, t0())
        .await
        .unwrap();
    assert!(matches!(
        s.create_visitor_session("vt", st.id, known.id, t0()).await,
        Err(StoreError::Conflict("visitor session"))
    ));
    assert!(matches!(
        s.create_visitor_session("vt2", st.id, ContactId(999_999), t0())
            .await,
        Err(StoreError::NotFound("contact"))
    ));
    assert_eq!(
        s.visitor_session("vt").await.unwrap().unwrap().contact_id,
        anon.id
    );
    assert!(s.visitor_session("vt2").await.unwrap().is_none());
    s.add_page_view(
        anon.id,
        PageView {
            url: "https://shop.example.com/a".into(),
            title: Some("A".into()),
            referrer: None,
            created_at: t0(),
        },
    )
    .await
    .unwrap();
    let c = start(s, st.id, anon.id).await;
    s.post_message(visitor_msg(&c, "m1", "hi")).await.unwrap();
    let merged = s.merge_contacts(anon.id, known.id).await.unwrap();
    assert_eq!(merged.id, known.id);
    assert!(matches!(
        s.contact(anon.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.visitor_session("vt").await.unwrap().unwrap().contact_id,
        known.id
    );
    assert_eq!(s.page_views(known.id, 10).await.unwrap().len(), 1);
    assert_eq!(s.contact_conversations(known.id).await.unwrap()[0].id, c.id);
    // The merged contact's retry of an earlier message is still recognised.
    let mut retry = visitor_msg(&s.conversation(c.id).await.unwrap(), "m1", "hi");
    retry.author = Author::Visitor {
        contact_id: known.id,
    };
    assert!(!s.post_message(retry).await.unwrap().created);

    let c2 = s
        .update_contact(
            known.id,
            ContactPatch {
                name: Some(Some("Cleo".into())),
                phone: Some(Some("+46 70 1".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (c2.name.as_deref(), c2.phone.as_deref(), c2.email.as_deref()),
        (Some("Cleo"), Some("+46 70 1"), Some("c@example.com"))
    );
    let c3 = s
        .update_contact(
            known.id,
            ContactPatch {
                phone: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(c3.phone, None);
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    s.add_contact_note(known.id, a.id, "VIP", t0())
        .await
        .unwrap();
    assert_eq!(s.contact_notes(known.id).await.unwrap()[0].body, "VIP");
}

pub async fn start_is_one_conversation_per_contact(s: Arc<dyn Store>) {
    let s = &*s;
    let st = site(s, "k").await;
    let ct = contact(s, st.id).await;
    let first = s
        .start_conversation(NewConversation {
            site_id: st.id,
            contact_id: ct.id,
            channel: Channel::Web,
            start_url: None,
            handoff: online(),
            notify: Default::default(),
            notify_preview: String::new(),
            now: t0(),
        })
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.messages.len(), 1, "the online message is written");
    assert!(matches!(
        first.messages[0].event,
        Some(Event::Online { .. })
    ));
    assert_eq!(first.conversation.last_seq, 1);
    let again = s
        .start_conversation(NewConversation {
            site_id: st.id,
            contact_id: ct.id,
            channel: Channel::Web,
            start_url: None,
            handoff: online(),
            notify: Default::default(),
            notify_preview: String::new(),
            now: t0(),
        })
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.conversation.id, first.conversation.id);
    // The wait-time check was scheduled (W4).
    let jobs = s
        .claim_due_jobs(t0() + Duration::hours(1), Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].kind, jobs[0].conversation_id),
        (JobKind::WaitExpiry, first.conversation.id)
    );
}

/// A returning visitor's whole history, newest first: short ones and one longer than
/// SQLite reads on the calling thread (32 rows, `store-sqlite/src/inline.rs`).
pub async fn a_visitors_conversations_come_back_newest_first(s: Arc<dyn Store>) {
    let s = &*s;
    let st = site(s, "k").await;
    let ct = contact(s, st.id).await;
    let other = contact(s, st.id).await;
    start(s, st.id, other.id).await;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    let mut ids = Vec::new();
    for n in 1..=40 {
        let c = start(s, st.id, ct.id).await;
        ids.insert(0, c.id);
        if [1, 32, 33, 40].contains(&n) {
            let got = s.visitor_conversations(ct.id).await.unwrap();
            assert_eq!(
                got.iter().map(|c| c.id).collect::<Vec<_>>(),
                ids,
                "after {n}"
            );
            assert!(got.iter().all(|c| c.contact_id == ct.id));
        }
        let close = StatusChange::Close {
            by: Some(a.clone()),
            by_visitor: false,
        };
        s.change_status(c.id, close, t0()).await.unwrap();
    }
}

pub async fn concurrent_starts_make_one_conversation(s: Arc<dyn Store>) {
    let st = site(&*s, "k").await;
    let ct = contact(&*s, st.id).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.start_conversation(NewConversation {
                site_id: st.id,
                contact_id: ct.id,
                channel: Channel::Web,
                start_url: None,
                handoff: online(),
                notify: Default::default(),
                notify_preview: String::new(),
                now: t0(),
            })
            .await
            .unwrap()
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let r = t.await.unwrap();
        ids.insert(r.conversation.id);
        created += usize::from(r.created);
    }
    assert_eq!((ids.len(), created), (1, 1));
}

pub async fn sequence_numbers_are_gap_free(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    for i in 0..10 {
        s.post_message(visitor_msg(&c, &format!("v{i}"), "hello"))
            .await
            .unwrap();
        s.post_message(agent_msg(
            &c,
            &a,
            MessageKind::Note,
            &format!("n{i}"),
            "internal",
        ))
        .await
        .unwrap();
    }
    let all = s.messages(c.id, 0, 1000, false).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>());
    let conv = s.conversation(c.id).await.unwrap();
    assert_eq!(conv.last_seq, all.len() as i64);
    // Resume from the middle returns exactly the rest.
    let rest = s.messages(c.id, 7, 1000, false).await.unwrap();
    assert_eq!(rest.first().unwrap().seq, 8);
    assert_eq!(rest.len(), all.len() - 7);
}

pub async fn idempotent_posts(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    let first = s
        .post_message(visitor_msg(&c, "same", "hello"))
        .await
        .unwrap();
    assert!(first.created);
    let retry = s
        .post_message(visitor_msg(&c, "same", "hello"))
        .await
        .unwrap();
    assert!(!retry.created);
    assert_eq!(retry.message, first.message);
    assert!(retry.written.is_empty());
    assert!(matches!(
        s.post_message(visitor_msg(&c, "same", "different")).await,
        Err(StoreError::IdempotencyConflict)
    ));
    assert_eq!(
        s.conversation(c.id).await.unwrap().last_seq,
        first.message.seq,
        "a refused post writes nothing"
    );
    // A clock finer than the store's microseconds: the first answer and the retry's agree.
    let mut fine = visitor_msg(&c, "fine", "hello");
    fine.now = t0() + chrono::Duration::nanoseconds(123_456_789);
    let first_fine = s.post_message(fine.clone()).await.unwrap();
    let retry_fine = s.post_message(fine).await.unwrap();
    assert_eq!(retry_fine.message, first_fine.message);
    assert_eq!(
        s.conversation(c.id).await.unwrap().last_message_at,
        first_fine.conversation.last_message_at
    );
    // Another sender's id space is separate.
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    assert!(
        s.post_message(agent_msg(&c, &a, MessageKind::Text, "same", "hi"))
            .await
            .unwrap()
            .created
    );
    // Who may see the conversation is decided before a retry is recognised: a client id
    // aimed at someone else's conversation finds nothing there.
    let other = start(s, c.site_id, contact(s, c.site_id).await.id).await;
    let mut aimed = visitor_msg(&other, "same", "hello");
    aimed.author = Author::Visitor {
        contact_id: c.contact_id,
    };
    assert!(matches!(
        s.post_message(aimed).await,
        Err(StoreError::Refused(rules::Refusal::NotVisible))
    ));
    // An agent who no longer sees the conversation gets no answer from a retry either.
    let r = agent(s, "r@example.com", Role::Agent, Access::Restricted, true).await;
    let note = s
        .post_message(agent_msg(&other, &r, MessageKind::Note, "r1", "a note"))
        .await
        .unwrap();
    assert!(note.created);
    s.assign(other.id, Some(&a), Some(&a), t0()).await.unwrap();
    assert!(matches!(
        s.post_message(agent_msg(&other, &r, MessageKind::Note, "r1", "a note"))
            .await,
        Err(StoreError::Refused(rules::Refusal::NotVisible))
    ));
}

pub async fn visitor_view_skips_internal_entries(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    s.post_message(visitor_msg(&c, "v1", "hello"))
        .await
        .unwrap();
    s.post_message(agent_msg(&c, &a, MessageKind::Note, "n1", "do not show"))
        .await
        .unwrap();
    s.post_message(agent_msg(&c, &a, MessageKind::Text, "t1", "hi there"))
        .await
        .unwrap();
    let seen = s.messages(c.id, 0, 100, true).await.unwrap();
    assert!(seen.iter().all(|m| m.kind != MessageKind::Note));
    let vseqs: Vec<i64> = seen.iter().map(|m| m.visible_seq.unwrap()).collect();
    assert_eq!(
        vseqs,
        (1..=seen.len() as i64).collect::<Vec<_>>(),
        "visible_seq is gap-free"
    );
    // online, hello, joined (reply-assigns), hi there
    assert_eq!(seen.len(), 4);
    assert!(matches!(seen[2].event, Some(Event::Joined { .. })));
    assert_eq!(s.messages(c.id, 3, 100, true).await.unwrap().len(), 1);

    // Runs of hidden entries between visible ones, longer than a page of the smallest
    // limits: from every position a visitor may resume at, and with limits below and
    // above a page, the visitor's view is the agent's view without what it hides.
    for round in 0..6 {
        for n in 0..round * 3 {
            let note = agent_msg(
                &c,
                &a,
                MessageKind::Note,
                &format!("n{round}-{n}"),
                "hidden",
            );
            s.post_message(note).await.unwrap();
        }
        let text = visitor_msg(&c, &format!("seen{round}"), "seen");
        s.post_message(text).await.unwrap();
    }
    let all = s.messages(c.id, 0, 1000, false).await.unwrap();
    assert!(all.len() > 50, "{} entries", all.len());
    let last_visible = all.iter().filter_map(|m| m.visible_seq).max().unwrap();
    for after in 0..=last_visible + 1 {
        for limit in [1, 2, 5, 1000] {
            let want: Vec<i64> = all
                .iter()
                .filter(|m| m.visible_seq.is_some_and(|v| v > after))
                .take(limit as usize)
                .map(|m| m.seq)
                .collect();
            let got: Vec<i64> = s
                .messages(c.id, after, limit, true)
                .await
                .unwrap()
                .iter()
                .map(|m| m.seq)
                .collect();
            assert_eq!(got, want, "visitor view after {after}, limit {limit}");
        }
    }
}

pub async fn reply_assigns_available_agents_only(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, ct, c) = fixture(s).await;
    let away = agent(s, "away@example.com", Role::Agent, Access::Full, false).await;
    let p = s
        .post_message(agent_msg(&c, &away, MessageKind::Text, "x", "hi"))
        .await
        .unwrap();
    assert!(!p.assigned);
    assert_eq!(p.conversation.assignee_id, None);
    let here = agent(s, "here@example.com", Role::Agent, Access::Full, true).await;
    let p = s
        .post_message(agent_msg(&c, &here, MessageKind::Note, "y", "note"))
        .await
        .unwrap();
    assert!(!p.assigned, "notes never assign");
    let p = s
        .post_message(agent_msg(&c, &here, MessageKind::Text, "z", "hi"))
        .await
        .unwrap();
    assert!(p.assigned);
    assert_eq!(p.conversation.assignee_id, Some(here.id));
    assert_eq!(p.written.len(), 2);
    assert!(
        matches!(&p.written[0].event, Some(Event::Joined { agent_id, display_name, .. }) if *agent_id == here.id && display_name == "here")
    );
    assert!(p.conversation.agent_took_part);
    // A visitor cannot post into someone else's conversation.
    let other = contact(s, c.site_id).await;
    let mut m = visitor_msg(&c, "w", "x");
    m.author = Author::Visitor {
        contact_id: other.id,
    };
    assert!(matches!(
        s.post_message(m).await,
        Err(StoreError::Refused(rules::Refusal::NotVisible))
    ));
    let _ = ct;
}

pub async fn visitor_message_wakes_and_reopens(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    s.assign(c.id, Some(&a), Some(&a), t0()).await.unwrap();
    s.change_status(
        c.id,
        StatusChange::Snooze {
            by: a.clone(),
            until: t0() + Duration::hours(1),
        },
        t0(),
    )
    .await
    .unwrap();
    let p = s
        .post_message(visitor_msg(&c, "v1", "are you there?"))
        .await
        .unwrap();
    assert_eq!(p.conversation.status, Status::Open);
    assert!(matches!(p.written[0].event, Some(Event::Woke)));
    s.change_status(
        c.id,
        StatusChange::Close {
            by: Some(a.clone()),
            by_visitor: false,
        },
        t0(),
    )
    .await
    .unwrap();
    let p = s
        .post_message(visitor_msg(&c, "v2", "one more thing"))
        .await
        .unwrap();
    assert_eq!(p.conversation.id, c.id);
    assert_eq!(p.conversation.status, Status::Open);
    assert_eq!(
        p.conversation.assignee_id,
        Some(a.id),
        "reopens into its assignment folder"
    );
    assert!(matches!(
        p.written[0].event,
        Some(Event::Reopened { by: None })
    ));
}

pub async fn final_policy_starts_a_new_conversation(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    s.change_status(
        c.id,
        StatusChange::Close {
            by: Some(a.clone()),
            by_visitor: false,
        },
        t0(),
    )
    .await
    .unwrap();
    let mut m = visitor_msg(&c, "v1", "hello again");
    m.reopen_policy = ReopenPolicy::Final;
    let p = s.post_message(m.clone()).await.unwrap();
    assert!(p.started_new);
    assert_ne!(p.conversation.id, c.id);
    assert_eq!(
        s.conversation(c.id).await.unwrap().status,
        Status::Closed,
        "closed stays closed"
    );
    assert_eq!(p.message.conversation_id, p.conversation.id);
    // A retry finds the message where it landed.
    let r = s.post_message(m).await.unwrap();
    assert_eq!((r.created, r.message.id), (false, p.message.id));
    assert!(matches!(
        s.change_status(
            c.id,
            StatusChange::Reopen {
                by: a,
                policy: ReopenPolicy::Final
            },
            t0()
        )
        .await,
        Err(StoreError::Refused(rules::Refusal::ReopenNotAllowed))
    ));
}

pub async fn assignment_and_status_rules_inside_the_store(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    let away = agent(s, "away@example.com", Role::Agent, Access::Full, false).await;
    let r = agent(s, "r@example.com", Role::Agent, Access::Restricted, true).await;
    let f = agent(s, "f@example.com", Role::Agent, Access::Full, true).await;
    assert!(matches!(
        s.assign(c.id, Some(&away), Some(&away), t0()).await,
        Err(StoreError::Refused(rules::Refusal::AssigneeUnavailable))
    ));
    assert!(matches!(
        s.assign(c.id, Some(&f), Some(&away), t0()).await,
        Err(StoreError::Refused(rules::Refusal::AssigneeUnavailable))
    ));
    assert_eq!(s.conversation(c.id).await.unwrap().assignee_id, None);
    let ch = s.assign(c.id, Some(&f), Some(&f), t0()).await.unwrap();
    assert_eq!(ch.conversation.assignee_id, Some(f.id));
    assert!(matches!(
        s.assign(c.id, Some(&r), Some(&r), t0()).await,
        Err(StoreError::Refused(rules::Refusal::NotVisible))
    ));
    assert!(matches!(
        s.change_status(
            c.id,
            StatusChange::Close {
                by: Some(r.clone()),
                by_visitor: false
            },
            t0()
        )
        .await,
        Err(StoreError::Refused(rules::Refusal::NotVisible))
    ));
    // Back to unassigned: restricted may now see it but not close it.
    s.assign(c.id, Some(&f), None, t0()).await.unwrap();
    assert!(matches!(
        s.change_status(
            c.id,
            StatusChange::Close {
                by: Some(r.clone()),
                by_visitor: false
            },
            t0()
        )
        .await,
        Err(StoreError::Refused(rules::Refusal::Forbidden))
    ));
    let before = s.conversation(c.id).await.unwrap();
    assert!(matches!(
        s.change_status(
            c.id,
            StatusChange::Snooze {
                by: f.clone(),
                until: t0() - Duration::minutes(1)
            },
            t0()
        )
        .await,
        Err(StoreError::Refused(rules::Refusal::SnoozeInPast))
    ));
    assert_eq!(
        s.conversation(c.id).await.unwrap(),
        before,
        "a refused change writes nothing"
    );
    let closed = s
        .change_status(
            c.id,
            StatusChange::Close {
                by: Some(f.clone()),
                by_visitor: false,
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        (closed.conversation.status, closed.conversation.closed_at),
        (Status::Closed, Some(t0()))
    );
    let reopened = s
        .change_status(
            c.id,
            StatusChange::Reopen {
                by: f.clone(),
                policy: ReopenPolicy::Reopen,
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(reopened.conversation.status, Status::Open);
    let rated = s
        .rate(c.id, Rating::Good, Some("thanks"), t0())
        .await
        .unwrap();
    assert_eq!(rated.conversation.rating, Some(Rating::Good));
}

pub async fn folder_counts_match_the_domain(s: Arc<dyn Store>) {
    let s = &*s;
    let st = site(s, "k").await;
    let me = agent(s, "me@example.com", Role::Agent, Access::Full, true).await;
    let other = agent(s, "o@example.com", Role::Agent, Access::Full, true).await;
    let r = agent(s, "r@example.com", Role::Agent, Access::Restricted, true).await;
    let owner = agent(s, "boss@example.com", Role::Owner, Access::Full, true).await;
    for i in 0..12 {
        let ct = contact(s, st.id).await;
        let c = start(s, st.id, ct.id).await;
        match i % 6 {
            0 => {}
            1 => {
                s.assign(c.id, Some(&me), Some(&me), t0()).await.unwrap();
            }
            2 => {
                s.assign(c.id, Some(&other), Some(&other), t0())
                    .await
                    .unwrap();
            }
            3 => {
                s.assign(c.id, Some(&other), Some(&other), t0())
                    .await
                    .unwrap();
                s.change_status(
                    c.id,
                    StatusChange::Snooze {
                        by: other.clone(),
                        until: t0() + Duration::hours(1),
                    },
                    t0(),
                )
                .await
                .unwrap();
            }
            4 => {
                s.change_status(
                    c.id,
                    StatusChange::Close {
                        by: Some(me.clone()),
                        by_visitor: false,
                    },
                    t0(),
                )
                .await
                .unwrap();
            }
            _ => {
                s.assign(c.id, Some(&r), Some(&r), t0()).await.unwrap();
            }
        }
    }
    for viewer in [&me, &other, &r, &owner] {
        let counts = s.folder_counts(viewer).await.unwrap();
        let mut all = ConversationQuery::new(viewer.id);
        all.limit = 200;
        let convs = s.list_conversations(&all).await.unwrap();
        let count = |f: Folder| {
            convs
                .iter()
                .filter(|c| rules::folder_of(viewer, &c.conversation) == Some(f))
                .count() as i64
        };
        assert_eq!(
            counts.unassigned,
            count(Folder::Unassigned),
            "{}",
            viewer.email
        );
        assert_eq!(counts.mine, count(Folder::Mine), "{}", viewer.email);
        assert_eq!(counts.snoozed, count(Folder::Snoozed), "{}", viewer.email);
        assert_eq!(counts.closed, count(Folder::Closed), "{}", viewer.email);
        match rules::effective_access(viewer) {
            Access::Full => assert_eq!(counts.others, Some(count(Folder::Others))),
            Access::Restricted => assert_eq!(counts.others, None),
        }
        // Listing each folder returns exactly the conversations the domain files there.
        for folder in Folder::ALL {
            let Some(filter) = rules::folder_filter(viewer, folder) else {
                continue;
            };
            let mut q = ConversationQuery::new(viewer.id);
            q.filter = Some(filter);
            q.limit = 200;
            let listed = s.list_conversations(&q).await.unwrap();
            assert_eq!(
                listed.len() as i64,
                count(folder),
                "{} {folder}",
                viewer.email
            );
            assert!(listed
                .iter()
                .all(|c| rules::folder_of(viewer, &c.conversation) == Some(folder)));
        }
    }
    // A restricted agent's plain listing never includes a colleague's open conversation.
    let mut q = ConversationQuery::new(r.id);
    q.visible_to = Some(r.id);
    q.limit = 200;
    assert!(s
        .list_conversations(&q)
        .await
        .unwrap()
        .iter()
        .all(|c| rules::can_view(&r, &c.conversation)));
}

pub async fn listing_filters_and_search(s: Arc<dyn Store>) {
    let s = &*s;
    let st = site(s, "k").await;
    let st2 = site(s, "k2").await;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    let c1 = start(s, st.id, contact(s, st.id).await.id).await;
    let c2 = start(s, st2.id, contact(s, st2.id).await.id).await;
    s.post_message(visitor_msg(&c1, "1", "my parcel never arrived"))
        .await
        .unwrap();
    s.post_message(visitor_msg(&c2, "2", "invoice question \"quoted\""))
        .await
        .unwrap();
    s.set_tags(c2.id, &["billing".into(), "vip".into(), "billing".into()])
        .await
        .unwrap();
    let q = |f: &dyn Fn(&mut ConversationQuery)| {
        let mut q = ConversationQuery::new(a.id);
        f(&mut q);
        q
    };
    let ids =
        |v: Vec<ConversationSummary>| v.into_iter().map(|c| c.conversation.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .list_conversations(&q(&|q| q.text = Some("parcel".into())))
            .await
            .unwrap()),
        vec![c1.id]
    );
    assert_eq!(
        ids(s
            .list_conversations(&q(&|q| q.text = Some("\"quoted\" OR *".into())))
            .await
            .unwrap()),
        Vec::<ConversationId>::new()
    );
    assert_eq!(
        ids(s
            .list_conversations(&q(&|q| q.text = Some("\"quoted\"".into())))
            .await
            .unwrap()),
        vec![c2.id]
    );
    assert_eq!(
        ids(s
            .list_conversations(&q(&|q| q.tag = Some("vip".into())))
            .await
            .unwrap()),
        vec![c2.id]
    );
    assert_eq!(
        ids(s
            .list_conversations(&q(&|q| q.site = Some(st.id)))
            .await
            .unwrap()),
        vec![c1.id]
    );
    assert_eq!(
        s.conversation(c2.id).await.unwrap().tags,
        vec!["billing".to_string(), "vip".to_string()]
    );
    let all = s.list_conversations(&q(&|_| {})).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter().all(|c| c.unread),
        "visitor messages are unread until read"
    );
    let last = all[0].last_message.as_ref().unwrap();
    assert_eq!(last.author_kind, AuthorKind::Visitor);
    let page = s
        .list_conversations(&q(&|q| {
            q.limit = 1;
        }))
        .await
        .unwrap();
    let next = s
        .list_conversations(&q(&|q| {
            q.limit = 1;
            q.before = Some((
                page[0].conversation.last_message_at,
                page[0].conversation.id,
            ));
        }))
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].conversation.id, page[0].conversation.id);
    s.mark_read_by_agent(c1.id, a.id, 100).await.unwrap();
    let after = s
        .list_conversations(&q(&|q| q.site = Some(st.id)))
        .await
        .unwrap();
    assert!(!after[0].unread);
}

pub async fn delete_removes_everything(s: Arc<dyn Store>) {
    let s = &*s;
    let (st, ct, c) = fixture(s).await;
    let att = s
        .create_attachment(NewAttachment {
            conversation_id: c.id,
            filename: "a.png".into(),
            content_type: "image/png".into(),
            size: 3,
            path: "attachments/x".into(),
            now: t0(),
        })
        .await
        .unwrap();
    let mut m = visitor_msg(&c, "1", "secret words");
    m.attachment_id = Some(att.id);
    s.post_message(m).await.unwrap();
    let paths = s.delete_conversation(c.id).await.unwrap();
    assert_eq!(paths, vec!["attachments/x".to_string()]);
    assert!(matches!(
        s.conversation(c.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.attachment(att.id).await,
        Err(StoreError::NotFound(_))
    ));
    let a = agent(s, "a@example.com", Role::Owner, Access::Full, true).await;
    let mut q = ConversationQuery::new(a.id);
    q.text = Some("secret".into());
    assert!(s.list_conversations(&q).await.unwrap().is_empty());
    // A later message from the same contact shows up as a new conversation (I5).
    let fresh = start(s, st.id, ct.id).await;
    assert_ne!(fresh.id, c.id);
    assert!(matches!(
        s.delete_conversation(c.id).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn read_receipts_only_grow(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    for i in 0..3 {
        s.post_message(visitor_msg(&c, &i.to_string(), "x"))
            .await
            .unwrap();
    }
    assert_eq!(s.mark_read_by_agent(c.id, a.id, 3).await.unwrap(), 3);
    assert_eq!(s.mark_read_by_agent(c.id, a.id, 2).await.unwrap(), 3);
    assert_eq!(
        s.mark_read_by_agent(c.id, a.id, 999).await.unwrap(),
        4,
        "clamped to the last seq"
    );
    // The visitor's "seen" marker counts what the visitor sees: an agent who reads up to
    // a note has seen the visible entry before it.
    let note = |id: &str| agent_msg(&c, &a, MessageKind::Note, id, "internal");
    assert_eq!(s.post_message(note("n1")).await.unwrap().message.seq, 5);
    assert_eq!(s.mark_read_by_agent(c.id, a.id, 5).await.unwrap(), 4);
    let v = s.post_message(visitor_msg(&c, "3", "x")).await.unwrap();
    assert_eq!((v.message.seq, v.message.visible_seq), (6, Some(5)));
    s.post_message(note("n2")).await.unwrap();
    s.post_message(note("n3")).await.unwrap();
    assert_eq!(s.mark_read_by_agent(c.id, a.id, 8).await.unwrap(), 5);
    assert_eq!(
        s.mark_read_by_agent(c.id, a.id, 5).await.unwrap(),
        5,
        "never back"
    );
    assert_eq!(s.mark_read_by_visitor(c.id, 1).await.unwrap(), 1);
    assert_eq!(s.mark_read_by_visitor(c.id, 0).await.unwrap(), 1);
    assert!(matches!(
        s.mark_read_by_visitor(ConversationId(999), 1).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn jobs_are_claimed_once_and_leases_expire(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    // Drain the wait-expiry job the fixture scheduled.
    for j in s
        .claim_due_jobs(t0() + Duration::days(1), Duration::seconds(30), 10)
        .await
        .unwrap()
    {
        s.complete_job(j.id).await.unwrap();
    }
    s.schedule_job(JobKind::SnoozeWake, c.id, t0() + Duration::minutes(5))
        .await
        .unwrap();
    assert!(
        s.claim_due_jobs(t0(), Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let due = t0() + Duration::minutes(5);
    let first = s
        .claim_due_jobs(due, Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        s.claim_due_jobs(due, Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed once"
    );
    // The claimer died: after the lease, another node takes it.
    let again = s
        .claim_due_jobs(due + Duration::seconds(31), Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    s.complete_job(again[0].id).await.unwrap();
    assert!(s
        .claim_due_jobs(due + Duration::hours(1), Duration::seconds(30), 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn concurrent_posts_keep_order(s: Arc<dyn Store>) {
    let (_, _, c) = fixture(&*s).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            s.post_message(visitor_msg(&c, &format!("c{i}"), &format!("m{i}")))
                .await
                .unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().message.seq);
    }
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 200);
    let all = s.messages(c.id, 0, 1000, false).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=201).collect::<Vec<_>>()
    );
}

/// E3: a new conversation's notifications are committed with it; the contact's open
/// conversation, returned again, notifies no one.
pub async fn starts_commit_their_notifications(s: Arc<dyn Store>) {
    let s = &*s;
    let st = site(s, "k1").await;
    let ct = contact(s, st.id).await;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    let gone = agent(s, "g@example.com", Role::Agent, Access::Full, true).await;
    let b = agent(s, "b@example.com", Role::Agent, Access::Full, true).await;
    let gone = s
        .update_agent(
            gone.id,
            AgentPatch {
                deactivated: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let new = || NewConversation {
        site_id: st.id,
        contact_id: ct.id,
        channel: Channel::Web,
        start_url: None,
        handoff: online(),
        notify: Arc::new(vec![a.clone(), gone.clone(), b.clone()]),
        notify_preview: "Åsa".into(),
        now: t0(),
    };
    let started = s.start_conversation(new()).await.unwrap();
    assert!(started.created);
    assert_eq!(started.notifications.len(), 2);
    for (n, to) in started.notifications.iter().zip([&a, &b]) {
        assert_eq!(
            (n.agent_id, n.kind, n.conversation_id, n.preview.as_str()),
            (
                to.id,
                NotificationKind::NewUnassigned,
                started.conversation.id,
                "Åsa"
            )
        );
        // What the start answered is what is stored, ids included.
        assert_eq!(s.notifications(to.id, 10).await.unwrap(), vec![n.clone()]);
    }
    assert!(s.notifications(gone.id, 10).await.unwrap().is_empty());
    let again = s.start_conversation(new()).await.unwrap();
    assert!(!again.created && again.notifications.is_empty());
    assert_eq!(s.notifications(a.id, 10).await.unwrap().len(), 1);
}

/// Posts and other writes at the same moment (on SQLite the posts are written by their own
/// connection, the others by the store's): every one of them lands, and the timeline
/// stays gap-free.
pub async fn posts_and_other_writes_at_once(s: Arc<dyn Store>) {
    let (_, _, c) = fixture(&*s).await;
    let a = agent(&*s, "a@example.com", Role::Agent, Access::Full, true).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        let c = c.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            s.post_message(visitor_msg(&c, &format!("c{i}"), &format!("m{i}")))
                .await
                .map(|_| ())?;
            let target = (i % 2 == 0).then_some(&a);
            s.assign(c.id, Some(&a), target, t0()).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let last = s.conversation(c.id).await.unwrap().last_seq;
    let all = s.messages(c.id, 0, 1000, false).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>()
    );
    assert_eq!(
        all.iter().filter(|m| m.kind == MessageKind::Text).count(),
        100
    );
}

/// Starts, posts, assignments (some refused), closes (the second one refused) and ratings
/// of many conversations at once — on SQLite, batches that mix every kind of write. Each
/// contact gets one conversation, every timeline stays gap-free, the refused writes change
/// nothing, and each change reports the conversation as it was just before it.
pub async fn timeline_writes_of_every_kind_at_once(s: Arc<dyn Store>) {
    let st = site(&*s, "k1").await;
    let f = agent(&*s, "f@example.com", Role::Agent, Access::Full, true).await;
    let away = agent(&*s, "away@example.com", Role::Agent, Access::Full, false).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        let (f, away) = (f.clone(), away.clone());
        let ct = contact(&*s, st.id).await;
        tasks.push(tokio::spawn(async move {
            let (a, b) = tokio::join!(start(&*s, st.id, ct.id), start(&*s, st.id, ct.id));
            assert_eq!(a.id, b.id, "one live conversation per contact");
            s.post_message(visitor_msg(&a, "q", "hello")).await.unwrap();
            let target = if i % 2 == 0 { &f } else { &away };
            let assigned = s.assign(a.id, Some(&f), Some(target), t0()).await;
            if i % 2 == 0 {
                let ch = assigned.unwrap();
                assert_eq!(ch.before.assignee_id, None);
                assert_eq!(ch.conversation.assignee_id, Some(f.id));
                assert_eq!(ch.written.len(), 1);
            } else {
                assert!(matches!(
                    assigned,
                    Err(StoreError::Refused(rules::Refusal::AssigneeUnavailable))
                ));
            }
            let close = || StatusChange::Close {
                by: Some(f.clone()),
                by_visitor: false,
            };
            let closed = s.change_status(a.id, close(), t0()).await.unwrap();
            assert_eq!(closed.before.status, Status::Open);
            assert_eq!(closed.conversation.status, Status::Closed);
            assert!(matches!(
                s.change_status(a.id, close(), t0()).await,
                Err(StoreError::Refused(rules::Refusal::Closed))
            ));
            let rated = s
                .rate(a.id, Rating::Good, Some("thanks"), t0())
                .await
                .unwrap();
            assert_eq!(rated.before.rating, None);
            assert_eq!(rated.before.status, Status::Closed);
            assert_eq!(rated.conversation.rating, Some(Rating::Good));
            (i, a.id)
        }));
    }
    for t in tasks {
        let (i, id) = t.await.unwrap();
        let c = s.conversation(id).await.unwrap();
        let all = s.messages(id, 0, 1000, false).await.unwrap();
        assert_eq!(
            all.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=c.last_seq).collect::<Vec<_>>()
        );
        // The handoff entry, the message, the assignment (even ones), the close, the rating.
        assert_eq!(all.len(), if i % 2 == 0 { 5 } else { 4 }, "{all:?}");
        assert_eq!(c.assignee_id, (i % 2 == 0).then_some(f.id));
        assert_eq!(
            s.visitor_conversations(c.contact_id).await.unwrap().len(),
            1
        );
    }
}

/// Posts that arrive together (one group commit on SQLite): the refused ones leave nothing
/// behind, even a refusal that comes after the post would have woken the conversation, and
/// the others all land, gap-free.
pub async fn refused_posts_among_many_leave_nothing_behind(s: Arc<dyn Store>) {
    let (st, _, c) = fixture(&*s).await;
    let a = agent(&*s, "a@example.com", Role::Agent, Access::Full, true).await;
    let other = start(&*s, st.id, contact(&*s, st.id).await.id).await;
    let foreign = s
        .create_attachment(NewAttachment {
            conversation_id: other.id,
            filename: "a.txt".into(),
            content_type: "text/plain".into(),
            size: 1,
            path: "p".into(),
            now: t0(),
        })
        .await
        .unwrap();
    s.change_status(
        c.id,
        StatusChange::Snooze {
            by: a,
            until: t0() + Duration::hours(1),
        },
        t0(),
    )
    .await
    .unwrap();
    let before = s.messages(c.id, 0, 1000, false).await.unwrap().len();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        let mut m = visitor_msg(&c, &format!("r{i}"), &format!("m{i}"));
        if i % 2 == 1 {
            // Someone else's file: refused (404) after the wake it would have caused.
            m.attachment_id = Some(foreign.id);
            m.body = MessageBody::parse(&format!("m{i}"), true).unwrap();
        }
        tasks.push(tokio::spawn(async move { (i, s.post_message(m).await) }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match (i % 2, r) {
            (0, Ok(p)) => assert!(p.created),
            (1, Err(StoreError::NotFound("attachment"))) => {}
            (_, r) => panic!("post {i}: unexpected {r:?}"),
        }
    }
    let all = s.messages(c.id, 0, 1000, false).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=all.len() as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    let woke = all.iter().filter(|m| m.event == Some(Event::Woke)).count();
    assert_eq!(woke, 1, "one wake, from an accepted post");
    assert_eq!(
        all.len(),
        before + 1 + 20,
        "the wake and the 20 accepted posts"
    );
    assert!(all.iter().all(|m| m.attachment.is_none()));
    assert_eq!(s.conversation(c.id).await.unwrap().status, Status::Open);
}

pub async fn notifications_roundtrip(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    let n = s
        .add_notifications(vec![NewNotification {
            agent_id: a.id,
            kind: NotificationKind::NewUnassigned,
            conversation_id: c.id,
            message_id: None,
            preview: "hi".into(),
            now: t0(),
        }])
        .await
        .unwrap();
    assert_eq!(s.notifications(a.id, 10).await.unwrap(), n);
    s.mark_notifications_read(a.id, &[n[0].id], t0())
        .await
        .unwrap();
    assert_eq!(
        s.notifications(a.id, 10).await.unwrap()[0].read_at,
        Some(t0())
    );
}

/// E3: a message's notifications are written with it, once: not on a retry, not when the
/// post is refused.
pub async fn posts_commit_their_notifications(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, _, c) = fixture(s).await;
    let mine = agent(s, "mine@example.com", Role::Agent, Access::Full, true).await;
    let quiet = agent(s, "quiet@example.com", Role::Agent, Access::Full, true).await;
    s.assign(c.id, None, Some(&mine), t0()).await.unwrap();
    let team = Arc::new(vec![s.agent(mine.id).await.unwrap(), quiet.clone()]);
    let post = |client_id: &str, body: &str| NewMessage {
        notify: team.clone(),
        ..visitor_msg(&c, client_id, body)
    };
    let p = s
        .post_message(post("n1", "where is my order?"))
        .await
        .unwrap();
    assert_eq!(p.notifications.len(), 1, "only the assignee hears of it");
    let n = &p.notifications[0];
    assert_eq!(
        (n.agent_id, n.kind, n.message_id, n.preview.as_str()),
        (
            mine.id,
            NotificationKind::NewMessageMine,
            Some(p.message.id),
            "where is my order?"
        )
    );
    assert_eq!(s.notifications(mine.id, 10).await.unwrap(), p.notifications);
    assert!(s.notifications(quiet.id, 10).await.unwrap().is_empty());
    // A retry writes nothing more.
    let retry = s
        .post_message(post("n1", "where is my order?"))
        .await
        .unwrap();
    assert!(!retry.created && retry.notifications.is_empty());
    // A refused post (same id, other text) writes nothing either.
    assert!(s.post_message(post("n1", "changed")).await.is_err());
    assert_eq!(s.notifications(mine.id, 10).await.unwrap().len(), 1);
    // An agent's own reply notifies no one.
    let reply = s
        .post_message(NewMessage {
            notify: team.clone(),
            ..agent_msg(
                &c,
                &s.agent(mine.id).await.unwrap(),
                MessageKind::Text,
                "r1",
                "soon",
            )
        })
        .await
        .unwrap();
    assert!(reply.notifications.is_empty());
}

/// The list row the server publishes after each post, built without reading the store
/// (`ConversationSummary::after_post`), is the row the store would list.
pub async fn list_row_after_a_post(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, ct, c) = fixture(s).await;
    let ct = s
        .update_contact(
            ct.id,
            ContactPatch {
                name: Some(Some("Åsa".into())),
                email: Some(Some("asa@example.com".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    let long = "x".repeat(300);
    let posts = [
        visitor_msg(&c, "l1", &long),
        agent_msg(&c, &a, MessageKind::Note, "l2", "a note"),
        agent_msg(&c, &a, MessageKind::Text, "l3", "a reply"),
    ];
    for post in posts {
        let before = s.conversation(c.id).await.unwrap();
        let p = s.post_message(post).await.unwrap();
        assert_eq!(p.before, before);
        assert_eq!(
            (p.contact.name.as_deref(), p.contact.email.as_deref()),
            (ct.name.as_deref(), ct.email.as_deref())
        );
        let mut q = ConversationQuery::new(AgentId(0));
        q.id = Some(c.id);
        let listed = s.list_conversations(&q).await.unwrap().remove(0);
        assert_eq!(ConversationSummary::after_post(&p), listed);
        if p.message.author_kind == AuthorKind::Visitor {
            // A visitor's message carries the contact's name as it is at commit time.
            assert_eq!(p.message.author_name.as_deref(), Some("Åsa"));
        }
    }
}

/// The list row a backend hands back with a change (`Changed::summary`), which the server
/// publishes instead of reading it, is the row the store would list.
pub async fn list_row_after_a_change(s: Arc<dyn Store>) {
    let s = &*s;
    let (_, ct, c) = fixture(s).await;
    let named = ContactPatch {
        name: Some(Some("Åsa".into())),
        email: Some(Some("asa@example.com".into())),
        ..Default::default()
    };
    s.update_contact(ct.id, named).await.unwrap();
    let a = agent(s, "a@example.com", Role::Agent, Access::Full, true).await;
    s.post_message(visitor_msg(&c, "v1", &"y".repeat(300)))
        .await
        .unwrap();
    let listed = || async {
        let mut q = ConversationQuery::new(AgentId(0));
        q.id = Some(c.id);
        s.list_conversations(&q).await.unwrap().remove(0)
    };
    let same = |changed: Changed, listed: ConversationSummary| {
        assert_eq!(changed.conversation, listed.conversation);
        if let Some(summary) = changed.summary {
            assert_eq!(summary, listed);
        }
    };
    let by = Some(a.clone());
    let ch = s.assign(c.id, Some(&a), Some(&a), t0()).await.unwrap();
    same(ch, listed().await);
    let until = t0() + Duration::hours(1);
    let snooze = StatusChange::Snooze {
        by: a.clone(),
        until,
    };
    let ch = s.change_status(c.id, snooze, t0()).await.unwrap();
    same(ch, listed().await);
    let close = StatusChange::Close {
        by,
        by_visitor: false,
    };
    let ch = s.change_status(c.id, close, t0()).await.unwrap();
    same(ch, listed().await);
    let ch = s
        .rate(c.id, Rating::Good, Some("thanks"), t0())
        .await
        .unwrap();
    same(ch, listed().await);
}

pub async fn attachments_belong_to_their_conversation(s: Arc<dyn Store>) {
    let s = &*s;
    let (st, _, c) = fixture(s).await;
    let other = start(s, st.id, contact(s, st.id).await.id).await;
    let att = s
        .create_attachment(NewAttachment {
            conversation_id: other.id,
            filename: "a.txt".into(),
            content_type: "text/plain".into(),
            size: 1,
            path: "p".into(),
            now: t0(),
        })
        .await
        .unwrap();
    let mut m = visitor_msg(&c, "1", "x");
    m.body = MessageBody::parse("", true).unwrap();
    m.attachment_id = Some(att.id);
    assert!(matches!(
        s.post_message(m).await,
        Err(StoreError::NotFound("attachment"))
    ));
    assert_eq!(s.conversation(c.id).await.unwrap().last_seq, 1);
}
