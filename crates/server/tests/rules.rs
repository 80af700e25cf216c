//! The inbox rules of PRODUCT.md through the real API, negative cases included:
//! I1 availability, I2 folders, I3 assignment and restricted access, I4 statuses and the
//! reopen policy, I5 delete, W3 identity, W4 online/offline and the wait time, W6
//! attachments, S1 masking, S2 visitor isolation.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn conv_of(app: &TestApp) -> (Visitor, i64) {
    let v = app.visitor().await;
    let c = v.start().await;
    let (st, _) = v.send(c, "first", "hello").await;
    assert_eq!(st, StatusCode::CREATED);
    (v, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i1_away_agents_cannot_be_assigned_not_even_by_themselves() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    let away = app
        .agent(&owner, "away@example.com", "Away", "agent", "full", false)
        .await;
    let (_, c) = conv_of(&app).await;
    let (st, e) = away
        .post(
            &format!("/api/v1/conversations/{c}/assign"),
            json!({"assignee_id": away.id}),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("assignee_unavailable")
        )
    );
    let (st, _) = owner
        .post(
            &format!("/api/v1/conversations/{c}/assign"),
            json!({"assignee_id": away.id}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // Available: now it works; going away afterwards leaves the conversation alone.
    away.set_available(true).await;
    let (st, conv) = owner
        .post(
            &format!("/api/v1/conversations/{c}/assign"),
            json!({"assignee_id": away.id}),
        )
        .await;
    assert_eq!(
        (st, conv["assignee_id"].as_i64()),
        (StatusCode::OK, Some(away.id))
    );
    away.set_available(false).await;
    let (_, d) = owner.get(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(d["conversation"]["assignee_id"].as_i64(), Some(away.id));
    // An away agent's reply to an unassigned conversation does not assign it.
    let (_, c2) = conv_of(&app).await;
    let (st, _) = away.send(c2, "r1", "hi").await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, d) = owner.get(&format!("/api/v1/conversations/{c2}")).await;
    assert_eq!(d["conversation"]["assignee_id"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i3_restricted_agents_see_unassigned_own_and_closed_only() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    let full = app
        .agent(&owner, "full@example.com", "Full", "agent", "full", true)
        .await;
    let restricted = app
        .agent(&owner, "r@example.com", "Res", "agent", "restricted", true)
        .await;
    let (_, c) = conv_of(&app).await;
    // Unassigned: visible to all.
    let (st, _) = restricted.get(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(st, StatusCode::OK);
    // A colleague's: 404 for restricted (as if it did not exist), visible to full.
    let (st, _) = full.send(c, "take", "I'll take this").await;
    assert_eq!(st, StatusCode::CREATED);
    for path in [
        format!("/api/v1/conversations/{c}"),
        format!("/api/v1/conversations/{c}/messages"),
    ] {
        let (st, e) = restricted.get(&path).await;
        assert_eq!(
            (st, e["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    let (st, _) = restricted.send(c, "x", "sneaky").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, list) = restricted.get("/api/v1/conversations").await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["conversation"]["id"] != c));
    let (_, others) = restricted.get("/api/v1/conversations?folder=others").await;
    assert_eq!(others, json!([]));
    let (_, counts) = restricted.get("/api/v1/folders").await;
    assert_eq!(
        counts["others"],
        Value::Null,
        "no Others' folder for restricted agents"
    );
    let (_, counts) = full.get("/api/v1/folders").await;
    assert_eq!(
        (counts["mine"].as_i64(), counts["others"].as_i64()),
        (Some(1), Some(0))
    );
    // Reassigned to them: visible. Closed: visible.
    let (st, _) = full
        .post(
            &format!("/api/v1/conversations/{c}/assign"),
            json!({"assignee_id": restricted.id}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, mine) = restricted.get("/api/v1/conversations?folder=mine").await;
    assert_eq!(mine[0]["conversation"]["id"], c);
    let (st, _) = full
        .post(
            &format!("/api/v1/conversations/{c}/assign"),
            json!({"assignee_id": full.id}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = restricted.get(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = full
        .post(&format!("/api/v1/conversations/{c}/close"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = restricted.get(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i4_who_may_close_snooze_and_reopen() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    let restricted = app
        .agent(&owner, "r@example.com", "Res", "agent", "restricted", true)
        .await;
    let full = app
        .agent(&owner, "f@example.com", "Full", "agent", "full", true)
        .await;
    let (visitor, c) = conv_of(&app).await;
    // A restricted non-assignee cannot close, even an unassigned conversation.
    let (st, e) = restricted
        .post(&format!("/api/v1/conversations/{c}/close"), json!({}))
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    // The assignee can.
    restricted
        .post(
            &format!("/api/v1/conversations/{c}/assign"),
            json!({"assignee_id": restricted.id}),
        )
        .await;
    let (st, closed) = restricted
        .post(&format!("/api/v1/conversations/{c}/close"), json!({}))
        .await;
    assert_eq!(
        (st, closed["status"].as_str()),
        (StatusCode::OK, Some("closed"))
    );
    assert!(closed["closed_at"].is_string());
    let (st, e) = full
        .post(&format!("/api/v1/conversations/{c}/close"), json!({}))
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conversation_closed"))
    );
    // Notes and tags still go on a closed conversation; replies do not.
    let (st, _) = full
        .post(
            &format!("/api/v1/conversations/{c}/messages"),
            json!({"client_id": "n1", "body": "note", "kind": "note"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = full
        .put(
            &format!("/api/v1/conversations/{c}/tags"),
            json!({"tags": ["refund"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = full.send(c, "t1", "reply").await;
    assert_eq!(st, StatusCode::CONFLICT);
    // reopen policy: the visitor's next message reopens it into its assignment folder.
    let (st, m) = visitor.send(c, "again", "one more thing").await;
    assert_eq!(
        (st, m["conversation_id"].as_i64()),
        (StatusCode::CREATED, Some(c))
    );
    let (_, d) = full.get(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(
        (
            d["conversation"]["status"].as_str(),
            d["conversation"]["assignee_id"].as_i64()
        ),
        (Some("open"), Some(restricted.id))
    );
    // Snooze: must be in the future; wakes at the visitor's next message.
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let (st, e) = full
        .post(
            &format!("/api/v1/conversations/{c}/snooze"),
            json!({"until": past}),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("snooze_in_past"))
    );
    let later = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let (st, s) = full
        .post(
            &format!("/api/v1/conversations/{c}/snooze"),
            json!({"until": later}),
        )
        .await;
    assert_eq!(
        (st, s["status"].as_str()),
        (StatusCode::OK, Some("snoozed"))
    );
    let (_, counts) = full.get("/api/v1/folders").await;
    assert_eq!(counts["snoozed"], 1);
    visitor.send(c, "wake", "hello?").await;
    let (_, d) = full.get(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(d["conversation"]["status"], "open");

    // final policy: closed stays closed; the next message starts a new conversation.
    owner.patch(&format!("/api/v1/sites/{}", app.site_id), json!({"settings": {"allowed_origins": ["https://shop.example.com"], "reopen_policy": "final"}})).await;
    full.post(&format!("/api/v1/conversations/{c}/close"), json!({}))
        .await;
    let (st, e) = full
        .post(&format!("/api/v1/conversations/{c}/reopen"), json!({}))
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reopen_not_allowed"))
    );
    let (st, m) = visitor.send(c, "new-topic", "a new question").await;
    assert_eq!(st, StatusCode::CREATED);
    let fresh = m["conversation_id"].as_i64().unwrap();
    assert_ne!(fresh, c);
    let (_, d) = full.get(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(d["conversation"]["status"], "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i4_snooze_wakes_at_its_time() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    owner.set_available(true).await;
    let (_, c) = conv_of(&app).await;
    let until = (chrono::Utc::now() + chrono::Duration::milliseconds(600)).to_rfc3339();
    let (st, _) = owner
        .post(
            &format!("/api/v1/conversations/{c}/snooze"),
            json!({"until": until}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    eventually(|| async {
        let (_, d) = owner.get(&format!("/api/v1/conversations/{c}")).await;
        (d["conversation"]["status"] == "open").then_some(())
    })
    .await;
    let (_, msgs) = owner
        .get(&format!("/api/v1/conversations/{c}/messages"))
        .await;
    assert_eq!(
        msgs.as_array().unwrap().last().unwrap()["event"]["type"],
        "woke"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i5_only_the_owner_deletes_and_the_contact_comes_back_fresh() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    let admin = app
        .agent(&owner, "admin@example.com", "Adm", "admin", "full", true)
        .await;
    let (visitor, c) = conv_of(&app).await;
    let (st, e) = admin.delete(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("owner_only"))
    );
    let (st, _) = owner.delete(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = owner.get(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, found) = owner.get("/api/v1/conversations?q=hello").await;
    assert_eq!(found, json!([]), "the search index forgot it too");
    // A later message from the same contact is a new, visible conversation.
    let c2 = visitor.start().await;
    assert_ne!(c2, c);
    let (_, list) = owner.get("/api/v1/conversations?folder=unassigned").await;
    assert_eq!(list[0]["conversation"]["id"], c2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_visitor_never_reaches_another_visitors_conversation() {
    let (app, _owner) = TestApp::start().await.with_owner().await;
    let (a, ca) = conv_of(&app).await;
    let (b, cb) = conv_of(&app).await;
    for (st, body) in [
        a.get(&format!("/api/v1/widget/conversations/{cb}/messages"))
            .await,
        a.send(cb, "x", "let me in").await,
        a.post(
            &format!("/api/v1/widget/conversations/{cb}/read"),
            json!({"seq": 1}),
        )
        .await,
        a.post(&format!("/api/v1/widget/conversations/{cb}/end"), json!({}))
            .await,
        a.post(
            &format!("/api/v1/widget/conversations/{cb}/rating"),
            json!({"rating": "bad"}),
        )
        .await,
    ] {
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{body}"
        );
    }
    let (_, hist) = b
        .get(&format!("/api/v1/widget/conversations/{cb}/messages"))
        .await;
    assert_eq!(
        hist.as_array().unwrap().len(),
        2,
        "B's conversation is untouched: online message and hello"
    );
    let (_, mine) = a.get("/api/v1/widget/conversations").await;
    assert_eq!(
        mine.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![ca]
    );
    // Over the socket too.
    let mut s = a.ws(json!({})).await;
    s.send(json!({"type": "subscribe", "conversation_id": cb, "after": 0}))
        .await;
    let e = s.expect("error").await;
    assert_eq!(e["code"], "not_found");
    b.send(cb, "y", "private").await;
    assert!(s
        .next_within(std::time::Duration::from_millis(300))
        .await
        .is_none_or(|f| f["conversation_id"] != cb));
    // An unknown token is refused.
    let mut forged = a.clone();
    forged.token = "forged".into();
    let (st, _) = forged.get("/api/v1/widget/conversations").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w4_offline_and_the_wait_time() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    // Nobody connected: offline at once, an offline message in Unassigned.
    let (_, c) = conv_of(&app).await;
    let (_, msgs) = owner
        .get(&format!("/api/v1/conversations/{c}/messages"))
        .await;
    assert_eq!(msgs[0]["event"]["type"], "offline");
    let (_, d) = owner.get(&format!("/api/v1/conversations/{c}")).await;
    assert_eq!(d["conversation"]["offline"], true);

    // Online, with a wait time of 0: the chat waits, nobody takes it, the offline message
    // follows and it stays in Unassigned.
    owner.patch(&format!("/api/v1/sites/{}", app.site_id), json!({"settings": {"allowed_origins": ["https://shop.example.com"], "wait_time_secs": 0}})).await;
    owner.set_available(true).await;
    let _socket = owner.ws().await;
    let (visitor, c2) = conv_of(&app).await;
    let (_, msgs) = visitor
        .get(&format!("/api/v1/widget/conversations/{c2}/messages"))
        .await;
    assert_eq!(msgs[0]["event"]["type"], "online");
    let last = eventually(|| async {
        let (_, msgs) = visitor
            .get(&format!("/api/v1/widget/conversations/{c2}/messages"))
            .await;
        let last = msgs.as_array().unwrap().last().cloned().unwrap();
        (last["event"]["type"] == "offline").then_some(last)
    })
    .await;
    assert!(
        last["event"]["message"].as_str().unwrap().contains("<p>"),
        "rendered as safe HTML"
    );
    let (_, list) = owner.get("/api/v1/conversations?folder=unassigned").await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["conversation"]["id"] == c2 && r["conversation"]["offline"] == true));

    // Outside office hours: offline even with an agent online, and says when we're back.
    owner
        .patch(
            &format!("/api/v1/sites/{}", app.site_id),
            json!({"settings": {"allowed_origins": ["https://shop.example.com"], "office_hours": {"timezone": "Europe/Stockholm", "intervals": [{"day": "mon", "from": "00:00", "to": "00:01"}]}}}),
        )
        .await;
    let cfg: Value = reqwest::get(format!(
        "{}/api/v1/widget/config?site_key={}",
        app.base, app.site_key
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(cfg["online"], false);
    assert!(
        cfg["offline_message_html"]
            .as_str()
            .unwrap()
            .contains("Monday 00:00"),
        "{cfg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3_identity_by_hmac() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    let (_, site) = owner.get(&format!("/api/v1/sites/{}", app.site_id)).await;
    let secret = site["identity_secret"].as_str().unwrap().to_owned();
    // Only identified customers may chat.
    owner.patch(&format!("/api/v1/sites/{}", app.site_id), json!({"settings": {"allowed_origins": ["https://shop.example.com"], "who_may_chat": "logged_in_to_chat"}})).await;
    let v = app.visitor().await;
    let (st, e) = v.post("/api/v1/widget/conversations", json!({})).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("login_required"))
    );
    let (st, e) = v
        .post(
            "/api/v1/widget/identify",
            json!({"id": "cust-42", "hmac": "00ff"}),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("identity_invalid"))
    );
    let (st, c) = v.post("/api/v1/widget/identify", json!({"id": "cust-42", "hmac": hmac_hex(&secret, "cust-42"), "name": "Kim", "email": "kim@example.com"})).await;
    assert_eq!((st, c["verified"].as_bool()), (StatusCode::OK, Some(true)));
    let conv = v.start().await;
    // The same customer on another device lands on the same contact and sees the chat.
    let v2 = app.visitor().await;
    v2.post(
        "/api/v1/widget/identify",
        json!({"id": "cust-42", "hmac": hmac_hex(&secret, "cust-42")}),
    )
    .await;
    let (_, convs) = v2.get("/api/v1/widget/conversations").await;
    assert_eq!(convs[0]["id"], conv);
    // Non-agents never see the secret.
    let plain = app
        .agent(&owner, "p@example.com", "P", "agent", "full", true)
        .await;
    let (_, s) = plain.get(&format!("/api/v1/sites/{}", app.site_id)).await;
    assert_eq!(s["identity_secret"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w6_attachments_checked_by_content_and_served_safely() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    let (a, ca) = conv_of(&app).await;
    let (b, _) = conv_of(&app).await;
    let http = reqwest::Client::new();
    let upload = |conv: i64, v: &Visitor, name: &str, bytes: Vec<u8>| {
        let req = http
            .post(format!(
                "{}/api/v1/widget/conversations/{conv}/attachments?filename={name}",
                app.base
            ))
            .header("authorization", format!("Bearer {}", v.token))
            .header("origin", "https://shop.example.com")
            .body(bytes);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    let (st, att) = upload(ca, &a, "receipt.txt", png).await;
    assert_eq!(
        (st, att["content_type"].as_str()),
        (StatusCode::CREATED, Some("image/png")),
        "type by content, not name"
    );
    let (st, e) = upload(
        ca,
        &a,
        "invoice.pdf",
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00".to_vec(),
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_type"))
    );
    let (st, e) = upload(
        ca,
        &a,
        "notes.txt",
        b"<html><script>alert(1)</script></html>".to_vec(),
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_type")),
        "HTML is refused, whatever its name"
    );
    let (st, html) = upload(ca, &a, "page.svg", b"plain words, nothing active".to_vec()).await;
    assert_eq!(
        (st, html["content_type"].as_str()),
        (StatusCode::CREATED, Some("text/plain")),
        "a misnamed text file is plain text"
    );
    let (st, m) = a
        .post(
            &format!("/api/v1/widget/conversations/{ca}/messages"),
            json!({"client_id": "f1", "attachment_id": att["id"]}),
        )
        .await;
    assert_eq!(
        (st, m["attachment"]["filename"].as_str()),
        (StatusCode::CREATED, Some("receipt.txt"))
    );
    // B cannot download A's file; the owner can; the headers keep it inert.
    let (st, _) = b
        .get(&format!("/api/v1/widget/attachments/{}", att["id"]))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let r = owner
        .http
        .get(format!("{}/api/v1/attachments/{}", app.base, html["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(r.headers()["content-type"], "text/plain");
    // Too large for the site's limit.
    owner.patch(&format!("/api/v1/sites/{}", app.site_id), json!({"settings": {"allowed_origins": ["https://shop.example.com"], "max_attachment_bytes": 10}})).await;
    let (st, e) = upload(ca, &a, "big.txt", vec![b'a'; 11]).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_search_filters_and_unread_markers() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    owner.set_available(true).await;
    let (v1, c1) = conv_of(&app).await;
    let (_, c2) = conv_of(&app).await;
    v1.send(c1, "p", "where is my parcel").await;
    owner
        .put(
            &format!("/api/v1/conversations/{c2}/tags"),
            json!({"tags": ["vip"]}),
        )
        .await;
    let ids = |v: Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["conversation"]["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(owner.get("/api/v1/conversations?q=parcel").await.1),
        vec![c1]
    );
    assert_eq!(
        ids(owner.get("/api/v1/conversations?tag=vip").await.1),
        vec![c2]
    );
    assert_eq!(
        ids(owner
            .get(&format!(
                "/api/v1/conversations?site={}&status=open",
                app.site_id
            ))
            .await
            .1)
        .len(),
        2
    );
    let (_, rows) = owner.get("/api/v1/conversations").await;
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["conversation"]["id"] == c1)
        .unwrap()
        .clone();
    assert_eq!(row["unread"], true);
    assert_eq!(row["last_message"]["body"], "where is my parcel");
    assert_eq!(row["last_message"]["author_kind"], "visitor");
    owner
        .post(
            &format!("/api/v1/conversations/{c1}/read"),
            json!({"seq": row["conversation"]["last_seq"]}),
        )
        .await;
    let (_, rows) = owner.get("/api/v1/conversations").await;
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["conversation"]["id"] == c1 && r["unread"] == false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_patch_changes_only_the_fields_given() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    let path = format!("/api/v1/sites/{}", app.site_id);
    let (st, site) = owner
        .patch(&path, json!({"settings": {"wait_time_secs": 30}}))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(site["settings"]["wait_time_secs"], 30);
    assert_eq!(
        site["settings"]["allowed_origins"],
        json!(["https://shop.example.com"]),
        "untouched fields keep their values"
    );
    let (st, e) = owner
        .patch(&path, json!({"settings": {"wait_time_sec": 30}}))
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("wait_time_sec"));
    let (_, after) = owner.get(&path).await;
    assert_eq!(
        after["settings"], site["settings"],
        "a refused patch changes nothing"
    );
    let (st, e) = owner.get("/api/v1/no-such-route").await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (st, e) = owner.delete("/api/v1/folders").await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}
