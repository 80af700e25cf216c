//! A visitor and an agent exchange messages in real time, with typing, read receipts,
//! "agent joined" (W5), collision (I7), live lists and notifications (E3).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_and_agent_chat_live() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    owner
        .patch(
            "/api/v1/me",
            json!({"display_name": "Olga", "avatar_url": "https://cdn.example.com/olga.png"}),
        )
        .await;
    owner.set_available(true).await;
    let mut inbox = owner.ws().await;

    // W1: the page loads the widget script, gzipped, through the whole router.
    let script = reqwest::Client::new()
        .get(format!("{}/widget.js", app.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()["content-encoding"], "gzip");
    assert_eq!(script.headers()["x-content-type-options"], "nosniff");

    // W4: online, because an available agent is connected.
    let (_, cfg) = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/widget/config?site_key={}",
            app.base, app.site_key
        ))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    let cfg: serde_json::Value = cfg.json().await.unwrap();
    assert_eq!(cfg["online"], true);

    let visitor = app.visitor().await;
    let conv = visitor.start().await;
    let mut widget = visitor.ws(json!({})).await;
    // The online message (W4) is the first visible entry.
    let first = widget.expect("message").await;
    assert_eq!(first["message"]["event"]["type"], "online");

    // The new conversation shows up live in the inbox, with a notification (E3).
    let row = inbox
        .expect_where("conversation", |f| {
            f["summary"]["conversation"]["id"] == conv
        })
        .await;
    assert_eq!(
        row["summary"]["conversation"]["assignee_id"],
        serde_json::Value::Null
    );
    assert_eq!(row["summary"]["my_read_seq"], 0);
    // The live row (built from the start, not read back) is the row the list gives.
    let (_, rows) = owner.get("/api/v1/conversations").await;
    let listed = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["conversation"]["id"] == conv)
        .unwrap();
    assert_eq!(&row["summary"], listed);
    let n = inbox.expect("notification").await;
    assert_eq!(n["notification"]["kind"], "new_unassigned");
    let counts = inbox.expect("counts").await;
    assert_eq!(counts["counts"]["unassigned"], 1);

    // The agent opens it: sees what is there, then live entries.
    inbox
        .send(json!({"type": "subscribe", "conversation_id": conv, "after": 0}))
        .await;
    inbox
        .expect_where("message", |f| f["message"]["seq"] == 1)
        .await;

    // Visitor typing reaches the agent; the message arrives by socket.
    widget
        .send(json!({"type": "typing", "conversation_id": conv, "typing": true}))
        .await;
    let t = inbox.expect("typing").await;
    assert_eq!(
        (t["author"]["kind"].as_str(), t["typing"].as_bool()),
        (Some("visitor"), Some(true))
    );
    widget.send(json!({"type": "send", "conversation_id": conv, "client_id": "v-1", "body": "Hi, my card 4111 1111 1111 1111 was charged twice"})).await;
    let ack = widget.expect("ack").await;
    assert_eq!(ack["client_id"], "v-1");
    assert_eq!(
        ack["message"]["body"], "Hi, my card **** **** **** 1111 was charged twice",
        "S1: masked before storing"
    );
    let m = inbox
        .expect_where("message", |f| f["message"]["author_kind"] == "visitor")
        .await;
    assert_eq!(m["message"]["body"], ack["message"]["body"]);
    let vseq_of_msg = ack["message"]["seq"].as_i64().unwrap();

    // The agent types (the visitor sees it), then replies: the reply assigns (I3) and the
    // visitor sees "Olga joined" with her avatar before the reply (W5).
    inbox
        .send(json!({"type": "typing", "conversation_id": conv, "typing": true, "kind": "text"}))
        .await;
    let t = widget.expect("typing").await;
    assert_eq!(t["author"]["name"], "Olga");
    // A note's typing is never shown to the visitor; a note never reaches the visitor.
    inbox.send(json!({"type": "send", "conversation_id": conv, "client_id": "a-0", "body": "internal: refund?", "kind": "note"})).await;
    inbox.expect_where("ack", |f| f["client_id"] == "a-0").await;
    inbox.send(json!({"type": "send", "conversation_id": conv, "client_id": "a-1", "body": "Sorry about that! **Refunding** now."})).await;
    let own = widget.next_of("message").await;
    assert_eq!(
        own["message"]["id"], ack["message"]["id"],
        "the visitor's own message, once"
    );
    let joined = widget.next_of("message").await;
    assert_eq!(joined["message"]["event"]["type"], "joined");
    assert_eq!(joined["message"]["event"]["display_name"], "Olga");
    assert_eq!(
        joined["message"]["event"]["avatar_url"],
        "https://cdn.example.com/olga.png"
    );
    let reply = widget.next_of("message").await;
    assert_eq!(
        reply["message"]["body"],
        "Sorry about that! **Refunding** now."
    );
    assert!(reply["message"]["html"]
        .as_str()
        .unwrap()
        .contains("<strong>Refunding</strong>"));
    assert_eq!(reply["message"]["author"]["name"], "Olga");
    assert_eq!(
        reply["message"]["seq"].as_i64(),
        Some(vseq_of_msg + 2),
        "the note is not in the visitor's sequence"
    );

    // Read receipts both ways.
    let agent_seq = inbox
        .expect_where("message", |f| f["message"]["client_id"] == "a-1")
        .await["message"]["seq"]
        .as_i64()
        .unwrap();
    inbox
        .send(json!({"type": "read", "conversation_id": conv, "seq": agent_seq}))
        .await;
    let r = widget.expect("read").await;
    assert_eq!(
        r["seq"].as_i64(),
        reply["message"]["seq"].as_i64(),
        "the visitor sees Seen up to the reply"
    );
    widget
        .send(json!({"type": "read", "conversation_id": conv, "seq": reply["message"]["seq"]}))
        .await;
    let r = inbox
        .expect_where("read", |f| f["reader"] == "visitor")
        .await;
    assert_eq!(r["seq"], reply["message"]["seq"]);

    // List rows carry the agent's own read position: from what the socket heard, and on a
    // socket opened after the read, from the store.
    let mut late_inbox = owner.ws().await;
    widget
        .send(
            json!({"type": "send", "conversation_id": conv, "client_id": "v-2", "body": "Thanks!"}),
        )
        .await;
    for socket in [&mut inbox, &mut late_inbox] {
        let row = socket
            .expect_where("conversation", |f| {
                f["summary"]["conversation"]["id"] == conv
                    && f["summary"]["last_message"]["body"] == "Thanks!"
            })
            .await;
        assert_eq!(row["summary"]["my_read_seq"].as_i64(), Some(agent_seq));
        assert_eq!(row["summary"]["unread"], true);
    }

    // HTTP sees the same, and the visitor's view never includes the note.
    let (st, hist) = visitor
        .get(&format!("/api/v1/widget/conversations/{conv}/messages"))
        .await;
    assert_eq!(st, StatusCode::OK);
    let hist = hist.as_array().unwrap().clone();
    assert!(hist
        .iter()
        .all(|m| !m["body"].as_str().unwrap().contains("internal")));
    let seqs: Vec<i64> = hist.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let (_, detail) = owner.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(
        detail["conversation"]["assignee_id"].as_i64(),
        Some(owner.id)
    );
    assert_eq!(detail["assignee"]["display_name"], "Olga");

    // The folder counts follow the reply's assignment (I3) and a close; the posts alone
    // do not move them.
    inbox
        .expect_where("counts", |f| {
            f["counts"]["mine"] == 1 && f["counts"]["unassigned"] == 0
        })
        .await;
    let (st, _) = owner
        .post(&format!("/api/v1/conversations/{conv}/close"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    inbox
        .expect_where("counts", |f| {
            f["counts"]["closed"] == 1 && f["counts"]["mine"] == 0
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collision_shows_who_views_and_types() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    let bo = app
        .agent(&owner, "bo@example.com", "Bo", "agent", "full", true)
        .await;
    let visitor = app.visitor().await;
    let conv = visitor.start().await;
    let mut a = owner.ws().await;
    let mut b = bo.ws().await;
    a.send(json!({"type": "subscribe", "conversation_id": conv}))
        .await;
    b.send(json!({"type": "subscribe", "conversation_id": conv}))
        .await;
    let v = a
        .expect_where("viewers", |f| f["viewing"].as_array().unwrap().len() == 2)
        .await;
    assert_eq!(v["conversation_id"], conv);
    b.send(json!({"type": "typing", "conversation_id": conv, "typing": true, "kind": "text"}))
        .await;
    let t = a.expect("typing").await;
    assert_eq!(t["author"]["name"], "Bo");
    let v = a
        .expect_where("viewers", |f| !f["typing"].as_array().unwrap().is_empty())
        .await;
    assert_eq!(v["typing"][0].as_i64(), Some(bo.id));
    b.close().await;
    let v = a
        .expect_where("viewers", |f| f["viewing"].as_array().unwrap().len() == 1)
        .await;
    assert_eq!(v["viewing"][0].as_i64(), Some(owner.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_the_agents_sockets() {
    let (_app, owner) = TestApp::start().await.with_owner().await;
    let mut s = owner.ws().await;
    let (st, _) = owner.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    // The server closes the socket: frames may still drain, then it ends.
    while s
        .next_within(std::time::Duration::from_secs(5))
        .await
        .is_some()
    {}
    let (st, _) = owner.get("/api/v1/me").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_in_a_row_keep_their_order() {
    // More than the socket's send queue (256) and its old ack queue (64) together: a
    // client that fires without reading acks must not stall the socket.
    const N: usize = 400;
    let (app, owner) = TestApp::start().await.with_owner().await;
    let visitor = app.visitor().await;
    let conv = visitor.start().await;
    let mut widget = visitor.ws(serde_json::json!({})).await;
    let mut inbox = owner.ws().await;
    inbox
        .send(json!({"type": "subscribe", "conversation_id": conv}))
        .await;
    // Fire without waiting for acks, on both sockets.
    for i in 0..N {
        widget.send(json!({"type": "send", "conversation_id": conv, "client_id": format!("v{i}"), "body": format!("v{i}")})).await;
        inbox.send(json!({"type": "send", "conversation_id": conv, "client_id": format!("a{i}"), "body": format!("a{i}"), "kind": "note"})).await;
    }
    for i in 0..N {
        let ack = widget.next_of("ack").await;
        assert_eq!(ack["client_id"], format!("v{i}"), "acks come in send order");
        inbox
            .expect_where("ack", |f| f["client_id"] == format!("a{i}"))
            .await;
    }
    let (_, all) = owner
        .get(&format!("/api/v1/conversations/{conv}/messages?limit=1000"))
        .await;
    let order = |p: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["client_id"].as_str())
            .filter(|c| c.starts_with(p))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        order("v"),
        (0..N).map(|i| format!("v{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        order("a"),
        (0..N).map(|i| format!("a{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_agents_hear_nothing_of_conversations_they_cannot_see() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    owner.set_available(true).await;
    let full = app
        .agent(&owner, "f@example.com", "Full", "agent", "full", true)
        .await;
    let restricted = app
        .agent(&owner, "r@example.com", "Res", "agent", "restricted", true)
        .await;
    let mut rs = restricted.ws().await;
    // A colleague's conversation: assigned, then changed; the restricted socket hears nothing.
    let v1 = app.visitor().await;
    let hidden = v1.start().await;
    full.post(
        &format!("/api/v1/conversations/{hidden}/assign"),
        json!({"assignee_id": full.id}),
    )
    .await;
    rs.expect_where("conversation", |f| {
        f["summary"]["conversation"]["id"] == hidden
    })
    .await; // while unassigned
    rs.expect_where("removed", |f| f["conversation_id"] == hidden)
        .await; // it could see it before
    v1.send(hidden, "h1", "private matter").await;
    full.put(
        &format!("/api/v1/conversations/{hidden}/tags"),
        json!({"tags": ["x"]}),
    )
    .await;
    owner
        .delete(&format!("/api/v1/conversations/{hidden}"))
        .await;
    // A sentinel: the next frame about a visible conversation comes, and nothing about
    // the hidden one came before it.
    let v2 = app.visitor().await;
    let visible = v2.start().await;
    rs.expect_where("conversation", |f| {
        f["summary"]["conversation"]["id"] == visible
    })
    .await;
    let leaked = rs.pending_where(|f| {
        f["conversation_id"] == hidden || f["summary"]["conversation"]["id"] == hidden
    });
    assert!(leaked.is_empty(), "leaked: {leaked:?}");
}

/// Entries committed together are published by tasks that race, so a later entry's event
/// can reach a socket before the earlier one's. The socket holds it until the earlier one
/// arrives and sends both in order, reading nothing from the store: the events here carry
/// other text than the stored entries, so each frame shows where it came from. A gap that
/// stays open is read from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_overtake_each_other_go_out_in_order() {
    use confab_api::events::HubEvent;
    use confab_domain::text::MessageBody;
    use confab_domain::{ConversationId, MessageKind, ReopenPolicy};
    use confab_store::{Author, NewMessage, Posted};
    use std::sync::Arc;

    let (app, owner) = TestApp::start().await.with_owner().await;
    let visitor = app.visitor().await;
    let conv = visitor.start().await;
    let mut widget = visitor.ws(json!({})).await;
    let mut inbox = owner.ws().await;
    inbox
        .send(json!({"type": "subscribe", "conversation_id": conv}))
        .await;
    // Committed without being published, as the writer's answers are.
    let store = |body: &str| {
        let new = NewMessage {
            conversation_id: ConversationId(conv),
            author: Author::System,
            kind: MessageKind::Text,
            body: MessageBody::parse(body, false).unwrap(),
            client_id: None,
            attachment_id: None,
            mentions: vec![],
            reopen_policy: ReopenPolicy::Reopen,
            handoff_if_new: None,
            notify: Arc::new(vec![]),
            now: app.state.now(),
        };
        let state = app.state.clone();
        async move { state.store.post_message(new).await.unwrap() }
    };
    let publish = |p: &Posted, body: &str| {
        let mut message = p.message.clone();
        message.body = body.to_string();
        app.state.publish(HubEvent::Message {
            message: Box::new(message),
        });
    };
    let body = |f: &serde_json::Value| f["message"]["body"].as_str().unwrap().to_string();

    // Both sockets are live and caught up.
    let hello = store("hello").await;
    publish(&hello, "hello");
    for s in [&mut inbox, &mut widget] {
        s.expect_where("message", |f| f["message"]["body"] == "hello")
            .await;
        s.pending.clear();
    }

    // The second overtakes the first: both go out, in order, from the events.
    let (one, two) = (store("stored one").await, store("stored two").await);
    publish(&two, "live two");
    publish(&one, "live one");
    for s in [&mut inbox, &mut widget] {
        assert_eq!(body(&s.next_of("message").await), "live one");
        assert_eq!(body(&s.next_of("message").await), "live two");
    }

    // The third's event never comes: once the wait is over, the gap is read from the store
    // (which has the fourth too), and the held fourth is not sent again.
    let (_three, four) = (store("stored three").await, store("stored four").await);
    publish(&four, "live four");
    for s in [&mut inbox, &mut widget] {
        assert_eq!(body(&s.next_of("message").await), "stored three");
        assert_eq!(body(&s.next_of("message").await), "stored four");
    }
    let five = store("stored five").await;
    publish(&five, "live five");
    for s in [&mut inbox, &mut widget] {
        assert_eq!(body(&s.next_of("message").await), "live five");
    }
}

/// An agent's socket that said which folders it shows (`view`) hears list rows only of
/// conversations in them, of ones that just left them, and of the ones it has open; the
/// folder counts still come for every folder.
#[tokio::test]
async fn list_rows_come_only_for_the_folders_a_socket_shows() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    owner.set_available(true).await;
    let colleague = app
        .agent(&owner, "c@example.com", "Cole", "agent", "full", true)
        .await;
    let mut inbox = owner.ws().await;
    inbox
        .send(json!({"type": "view", "folders": ["mine"]}))
        .await;
    let v1 = app.visitor().await;
    let elsewhere = v1.start().await;
    // The counts move (a new unassigned conversation) though the row does not come.
    inbox
        .expect_where("counts", |f| f["counts"]["unassigned"] == 1)
        .await;
    v1.send(elsewhere, "e1", "not in my folder").await;
    let v2 = app.visitor().await;
    let opened = v2.start().await;
    inbox
        .send(json!({"type": "subscribe", "conversation_id": opened}))
        .await;
    inbox
        .expect_where("message", |f| f["conversation_id"] == opened)
        .await;
    // Open here: its rows come, whatever its folder.
    v2.send(opened, "o1", "I am open in your inbox").await;
    inbox
        .expect_where("conversation", |f| {
            f["summary"]["conversation"]["id"] == opened
                && f["summary"]["last_message"]["body"] == "I am open in your inbox"
        })
        .await;
    // Into Mine: its row comes.
    assign_and_hear(&owner, &mut inbox, elsewhere, owner.id).await;
    let early = inbox.pending_where(|f| {
        f["type"] == "conversation" && f["summary"]["conversation"]["id"] == elsewhere
    });
    assert!(early.is_empty(), "rows from outside the view: {early:?}");
    // Out of Mine: the row that says it left still comes, later ones no more.
    assign_and_hear(&owner, &mut inbox, elsewhere, colleague.id).await;
    v1.send(elsewhere, "e2", "now in Others").await;
    // A sentinel: a row that comes after the post above, and none of the post before it.
    inbox
        .send(json!({"type": "view", "folders": ["mine", "unassigned"]}))
        .await;
    let v3 = app.visitor().await;
    let sentinel = v3.start().await;
    inbox
        .expect_where("conversation", |f| {
            f["summary"]["conversation"]["id"] == sentinel
        })
        .await;
    let leaked = inbox.pending_where(|f| {
        f["type"] == "conversation" && f["summary"]["last_message"]["body"] == "now in Others"
    });
    assert!(leaked.is_empty(), "rows from outside the view: {leaked:?}");
    // Bad input: an unknown folder is an error frame, and the view stays as it was.
    inbox
        .send(json!({"type": "view", "folders": ["everything"]}))
        .await;
    inbox.expect("error").await;
}

/// `by` assigns `conv` to `to`, and `inbox` hears the row that says so.
async fn assign_and_hear(by: &Agent, inbox: &mut Socket, conv: i64, to: i64) {
    by.post(
        &format!("/api/v1/conversations/{conv}/assign"),
        json!({"assignee_id": to}),
    )
    .await;
    inbox
        .expect_where("conversation", |f| {
            f["summary"]["conversation"]["id"] == conv
                && f["summary"]["conversation"]["assignee_id"] == to
        })
        .await;
}
