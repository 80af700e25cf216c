//! Bad input never hurts: malformed JSON, unknown fields, wrong types, empty and oversized
//! messages, invalid UTF-8, huge numbers and unknown ids each get a clear 4xx with a stable
//! code in `{"error": {"code", "message"}}` (or a socket `error` frame); the connection and
//! the server stay healthy, and nothing stored changes.
//!
//! The HTTP cases are a table; their outcomes are snapshotted so the whole contract is
//! visible in `snapshots/bad_input__http_bad_input.snap`.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Ws;

const SHOP: &str = "https://shop.example.com";
const FOREIGN: &str = "https://evil.example.net";

#[derive(Clone, Copy, Debug)]
enum As {
    Nobody,
    Owner,
    Visitor,
    ForeignVisitor,
    /// No token, from a page the site does not allow.
    Foreign,
    /// A visitor token that does not exist.
    BadToken,
}

struct Case {
    what: &'static str,
    who: As,
    method: &'static str,
    path: String,
    /// None: no body and no content type.
    body: Option<Vec<u8>>,
    content_type: Option<&'static str>,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    who: As,
    method: &'static str,
    path: impl Into<String>,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        who,
        method,
        path: path.into(),
        body: Some(body.into()),
        content_type: Some("application/json"),
        status,
        code,
    }
}

fn without_type(mut c: Case) -> Case {
    c.content_type = None;
    c
}

fn no_body(mut c: Case) -> Case {
    c.body = None;
    c.content_type = None;
    c
}

#[derive(Serialize)]
struct Outcome {
    case: &'static str,
    status: u16,
    code: String,
}

struct Fx {
    app: TestApp,
    owner: Agent,
    visitor: Visitor,
    conv: i64,
    http: reqwest::Client,
}

impl Fx {
    async fn send(&self, c: &Case) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{}", self.app.base, c.path));
        match c.who {
            As::Nobody => {}
            As::Foreign => req = req.header("origin", FOREIGN),
            As::BadToken => {
                req = req
                    .header("authorization", "Bearer not-a-token")
                    .header("origin", SHOP)
            }
            As::Owner => {
                req = req
                    .header("cookie", &self.owner.cookie)
                    .header("x-csrf-token", &self.owner.csrf)
            }
            As::Visitor | As::ForeignVisitor => {
                let origin = if matches!(c.who, As::Visitor) {
                    SHOP
                } else {
                    FOREIGN
                };
                req = req
                    .header("authorization", format!("Bearer {}", self.visitor.token))
                    .header("origin", origin)
            }
        }
        if let Some(t) = c.content_type {
            req = req.header("content-type", t);
        }
        if let Some(b) = &c.body {
            req = req.body(b.clone());
        }
        let r = req.send().await.unwrap();
        let st = r.status();
        let text = r.text().await.unwrap();
        (
            st,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Everything the bad requests could have changed.
    async fn stored(&self) -> Value {
        let conv = self.conv;
        let (_, detail) = self
            .owner
            .get(&format!("/api/v1/conversations/{conv}"))
            .await;
        let (_, messages) = self
            .owner
            .get(&format!("/api/v1/conversations/{conv}/messages"))
            .await;
        let (_, visitor_view) = self
            .visitor
            .get(&format!("/api/v1/widget/conversations/{conv}/messages"))
            .await;
        let (_, site) = self
            .owner
            .get(&format!("/api/v1/sites/{}", self.app.site_id))
            .await;
        let (_, contact) = self
            .owner
            .get(&format!("/api/v1/contacts/{}", self.visitor.contact_id))
            .await;
        let (_, agents) = self.owner.get("/api/v1/agents").await;
        let agents: Vec<Value> = agents
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent"].clone())
            .collect();
        assert!(detail["conversation"]["last_seq"].as_i64().unwrap() > 0);
        json!({
            "conversation": detail["conversation"],
            "messages": messages,
            "visitor_view": visitor_view,
            "settings": site["settings"],
            "site_name": site["name"],
            "contact": contact["contact"],
            "agents": agents,
        })
    }
}

fn big_json_string(chars: usize) -> String {
    "x".repeat(chars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_input_gets_a_clear_4xx_and_changes_nothing() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    owner.set_available(true).await;
    let visitor = app.visitor().await;
    let conv = visitor.start().await;
    let (st, _) = visitor.send(conv, "v-1", "Hello there").await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = owner.send(conv, "a-1", "Hi! How can I help?").await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = owner
        .patch(
            &format!("/api/v1/contacts/{}", visitor.contact_id),
            json!({"name": "Vera", "email": "vera@example.com"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let fx = Fx {
        http: reqwest::Client::new(),
        app,
        owner,
        visitor,
        conv,
    };
    let site = fx.app.site_id;
    let contact = fx.visitor.contact_id;
    let key = fx.app.site_key.clone();
    let a_send = format!("/api/v1/conversations/{conv}/messages");
    let v_send = format!("/api/v1/widget/conversations/{conv}/messages");
    let assign = format!("/api/v1/conversations/{conv}/assign");
    let site_path = format!("/api/v1/sites/{site}");
    let contact_path = format!("/api/v1/contacts/{contact}");
    let login = "/api/v1/auth/login";
    let too_long = format!(
        r#"{{"client_id": "long-1", "body": "{}"}}"#,
        big_json_string(10_001)
    );
    let too_large = format!(
        r#"{{"client_id": "huge-1", "body": "{}"}}"#,
        big_json_string(300 * 1024)
    );
    let bad_utf8 = {
        let mut b = br#"{"client_id": "utf-1", "body": "caf"#.to_vec();
        b.extend_from_slice(&[0xff, 0xfe, 0xc3]);
        b.extend_from_slice(br#""}"#);
        b
    };
    let huge = "99999999999999999999";
    use As::*;

    let cases = vec![
        // The agent's send.
        case(
            "agent send: malformed JSON",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-1", "body": "#,
            400,
            "invalid_json",
        ),
        case(
            "agent send: not an object",
            Owner,
            "POST",
            &a_send,
            "[1, 2]",
            400,
            "invalid_body",
        ),
        case(
            "agent send: unknown field",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-2", "body": "hi", "colour": "red"}"#,
            400,
            "invalid_body",
        ),
        case(
            "agent send: wrong type",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": 7, "body": "hi"}"#,
            400,
            "invalid_body",
        ),
        case(
            "agent send: missing client_id",
            Owner,
            "POST",
            &a_send,
            r#"{"body": "hi"}"#,
            400,
            "invalid_body",
        ),
        without_type(case(
            "agent send: no content type",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-3", "body": "hi"}"#,
            415,
            "unsupported_media_type",
        )),
        {
            let mut c = case(
                "agent send: text/plain content type",
                Owner,
                "POST",
                &a_send,
                r#"{"client_id": "x-4", "body": "hi"}"#,
                415,
                "unsupported_media_type",
            );
            c.content_type = Some("text/plain");
            c
        },
        case(
            "agent send: empty body",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-5", "body": "   "}"#,
            400,
            "empty",
        ),
        case(
            "agent send: body over 10000 chars",
            Owner,
            "POST",
            &a_send,
            too_long.clone(),
            400,
            "too_long",
        ),
        case(
            "agent send: request over 256 KiB",
            Owner,
            "POST",
            &a_send,
            too_large.clone(),
            413,
            "too_large",
        ),
        case(
            "agent send: invalid UTF-8",
            Owner,
            "POST",
            &a_send,
            bad_utf8.clone(),
            400,
            "invalid_json",
        ),
        case(
            "agent send: control characters",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-6", "body": "a\u0000b"}"#,
            400,
            "control_characters",
        ),
        case(
            "agent send: client_id with spaces",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "has spaces", "body": "hi"}"#,
            400,
            "invalid_format",
        ),
        case(
            "agent send: empty client_id",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "", "body": "hi"}"#,
            400,
            "empty",
        ),
        case(
            "agent send: client_id over 100 chars",
            Owner,
            "POST",
            &a_send,
            format!(r#"{{"client_id": "{}", "body": "hi"}}"#, "c".repeat(101)),
            400,
            "too_long",
        ),
        case(
            "agent send: unknown kind",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-7", "body": "hi", "kind": "shout"}"#,
            400,
            "invalid_body",
        ),
        case(
            "agent send: kind event",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-8", "body": "hi", "kind": "event"}"#,
            400,
            "invalid_kind",
        ),
        case(
            "agent send: huge mention id",
            Owner,
            "POST",
            &a_send,
            format!(
                r#"{{"client_id": "x-9", "body": "hi", "kind": "note", "mentions": [{huge}]}}"#
            ),
            400,
            "invalid_body",
        ),
        case(
            "agent send: unknown mention",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-10", "body": "hi", "kind": "note", "mentions": [424242]}"#,
            400,
            "unknown_agent",
        ),
        case(
            "agent send: attachment id 1e400",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-11", "body": "hi", "attachment_id": 1e400}"#,
            400,
            "invalid_json",
        ),
        case(
            "agent send: unknown attachment",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "x-12", "body": "hi", "attachment_id": 424242}"#,
            404,
            "not_found",
        ),
        case(
            "agent send: unknown conversation",
            Owner,
            "POST",
            "/api/v1/conversations/424242/messages",
            r#"{"client_id": "x-13", "body": "hi"}"#,
            404,
            "not_found",
        ),
        case(
            "agent send: huge conversation id",
            Owner,
            "POST",
            format!("/api/v1/conversations/{huge}/messages"),
            r#"{"client_id": "x-14", "body": "hi"}"#,
            400,
            "invalid_path",
        ),
        case(
            "agent send: conversation id 1e400",
            Owner,
            "POST",
            "/api/v1/conversations/1e400/messages",
            r#"{"client_id": "x-15", "body": "hi"}"#,
            400,
            "invalid_path",
        ),
        case(
            "agent send: negative conversation id",
            Owner,
            "POST",
            "/api/v1/conversations/-1/messages",
            r#"{"client_id": "x-16", "body": "hi"}"#,
            404,
            "not_found",
        ),
        case(
            "agent send: client_id reused for other content",
            Owner,
            "POST",
            &a_send,
            r#"{"client_id": "a-1", "body": "something else"}"#,
            409,
            "client_id_reused",
        ),
        // The visitor's send.
        case(
            "visitor send: malformed JSON",
            Visitor,
            "POST",
            &v_send,
            "{client_id: v-2}",
            400,
            "invalid_json",
        ),
        case(
            "visitor send: unknown field",
            Visitor,
            "POST",
            &v_send,
            r#"{"client_id": "v-3", "body": "hi", "kind": "note"}"#,
            400,
            "invalid_body",
        ),
        case(
            "visitor send: wrong type",
            Visitor,
            "POST",
            &v_send,
            r#"{"client_id": "v-4", "body": ["hi"]}"#,
            400,
            "invalid_body",
        ),
        without_type(case(
            "visitor send: no content type",
            Visitor,
            "POST",
            &v_send,
            r#"{"client_id": "v-5", "body": "hi"}"#,
            415,
            "unsupported_media_type",
        )),
        case(
            "visitor send: empty body",
            Visitor,
            "POST",
            &v_send,
            r#"{"client_id": "v-6", "body": ""}"#,
            400,
            "empty",
        ),
        case(
            "visitor send: body over 10000 chars",
            Visitor,
            "POST",
            &v_send,
            too_long.clone(),
            400,
            "too_long",
        ),
        case(
            "visitor send: request over 256 KiB",
            Visitor,
            "POST",
            &v_send,
            too_large.clone(),
            413,
            "too_large",
        ),
        case(
            "visitor send: invalid UTF-8",
            Visitor,
            "POST",
            &v_send,
            bad_utf8.clone(),
            400,
            "invalid_json",
        ),
        case(
            "visitor send: client_id with spaces",
            Visitor,
            "POST",
            &v_send,
            r#"{"client_id": "v 7", "body": "hi"}"#,
            400,
            "invalid_format",
        ),
        case(
            "visitor send: huge attachment id",
            Visitor,
            "POST",
            &v_send,
            format!(r#"{{"client_id": "v-8", "body": "hi", "attachment_id": {huge}}}"#),
            400,
            "invalid_body",
        ),
        case(
            "visitor send: unknown conversation",
            Visitor,
            "POST",
            "/api/v1/widget/conversations/424242/messages",
            r#"{"client_id": "v-9", "body": "hi"}"#,
            404,
            "not_found",
        ),
        case(
            "visitor send: huge conversation id",
            Visitor,
            "POST",
            format!("/api/v1/widget/conversations/{huge}/messages"),
            r#"{"client_id": "v-10", "body": "hi"}"#,
            400,
            "invalid_path",
        ),
        case(
            "visitor send: client_id reused for other content",
            Visitor,
            "POST",
            &v_send,
            r#"{"client_id": "v-1", "body": "not hello"}"#,
            409,
            "client_id_reused",
        ),
        case(
            "visitor history: huge after",
            Visitor,
            "GET",
            format!("{v_send}?after={huge}"),
            "",
            400,
            "invalid_query",
        ),
        case(
            "visitor history: after 1e400",
            Visitor,
            "GET",
            format!("{v_send}?after=1e400"),
            "",
            400,
            "invalid_query",
        ),
        case(
            "visitor history: after is text",
            Visitor,
            "GET",
            format!("{v_send}?after=yesterday"),
            "",
            400,
            "invalid_query",
        ),
        case(
            "agent history: huge limit",
            Owner,
            "GET",
            format!("{a_send}?limit={huge}"),
            "",
            400,
            "invalid_query",
        ),
        case(
            "visitor start: malformed JSON",
            Visitor,
            "POST",
            "/api/v1/widget/conversations",
            "{",
            400,
            "invalid_json",
        ),
        case(
            "visitor start: unknown field",
            Visitor,
            "POST",
            "/api/v1/widget/conversations",
            r#"{"url": "https://shop.example.com/", "topic": "x"}"#,
            400,
            "invalid_body",
        ),
        case(
            "visitor start: request over 256 KiB",
            Visitor,
            "POST",
            "/api/v1/widget/conversations",
            format!(
                r#"{{"url": "https://shop.example.com/{}"}}"#,
                big_json_string(300 * 1024)
            ),
            413,
            "too_large",
        ),
        case(
            "visitor read: huge seq",
            Visitor,
            "POST",
            format!("/api/v1/widget/conversations/{conv}/read"),
            format!(r#"{{"seq": {huge}}}"#),
            400,
            "invalid_body",
        ),
        case(
            "agent read: seq 1e400",
            Owner,
            "POST",
            format!("/api/v1/conversations/{conv}/read"),
            r#"{"seq": 1e400}"#,
            400,
            "invalid_json",
        ),
        // Sign-in.
        case(
            "login: malformed JSON",
            Nobody,
            "POST",
            login,
            r#"{"email": "owner@example.com", "password": "#,
            400,
            "invalid_json",
        ),
        case(
            "login: unknown field",
            Nobody,
            "POST",
            login,
            format!(
                r#"{{"email": "owner@example.com", "password": "{PASSWORD}", "remember": true}}"#
            ),
            400,
            "invalid_body",
        ),
        case(
            "login: wrong type",
            Nobody,
            "POST",
            login,
            r#"{"email": ["owner@example.com"], "password": 1}"#,
            400,
            "invalid_body",
        ),
        without_type(case(
            "login: no content type",
            Nobody,
            "POST",
            login,
            format!(r#"{{"email": "owner@example.com", "password": "{PASSWORD}"}}"#),
            415,
            "unsupported_media_type",
        )),
        case(
            "login: invalid UTF-8",
            Nobody,
            "POST",
            login,
            {
                let mut b = br#"{"email": "owner@example.com", "password": ""#.to_vec();
                b.extend_from_slice(&[0xc0, 0xaf]);
                b.extend_from_slice(br#""}"#);
                b
            },
            400,
            "invalid_json",
        ),
        case(
            "login: request over 256 KiB",
            Nobody,
            "POST",
            login,
            format!(
                r#"{{"email": "owner@example.com", "password": "{}"}}"#,
                big_json_string(300 * 1024)
            ),
            413,
            "too_large",
        ),
        case(
            "login: empty email",
            Nobody,
            "POST",
            login,
            r#"{"email": "", "password": ""}"#,
            401,
            "invalid_credentials",
        ),
        // Site settings.
        case(
            "site patch: malformed JSON",
            Owner,
            "PATCH",
            &site_path,
            r#"{"name": "Shop""#,
            400,
            "invalid_json",
        ),
        case(
            "site patch: unknown field",
            Owner,
            "PATCH",
            &site_path,
            r#"{"name": "Shop", "theme": "dark"}"#,
            400,
            "invalid_body",
        ),
        case(
            "site patch: unknown settings field",
            Owner,
            "PATCH",
            &site_path,
            r#"{"settings": {"colour": "red"}}"#,
            400,
            "invalid_body",
        ),
        case(
            "site patch: wrong type",
            Owner,
            "PATCH",
            &site_path,
            r#"{"settings": {"wait_time_secs": "two minutes"}}"#,
            400,
            "invalid_body",
        ),
        case(
            "site patch: negative number",
            Owner,
            "PATCH",
            &site_path,
            r#"{"settings": {"wait_time_secs": -1}}"#,
            400,
            "invalid_body",
        ),
        case(
            "site patch: huge number",
            Owner,
            "PATCH",
            &site_path,
            format!(r#"{{"settings": {{"max_attachment_bytes": {huge}}}}}"#),
            400,
            "invalid_body",
        ),
        case(
            "site patch: number 1e400",
            Owner,
            "PATCH",
            &site_path,
            r#"{"settings": {"inactivity_timeout_secs": 1e400}}"#,
            400,
            "invalid_json",
        ),
        case(
            "site patch: out of range",
            Owner,
            "PATCH",
            &site_path,
            format!(
                r#"{{"settings": {{"allowed_origins": ["{SHOP}"], "wait_time_secs": 86400}}}}"#
            ),
            400,
            "out_of_range",
        ),
        case(
            "site patch: unknown time zone",
            Owner,
            "PATCH",
            &site_path,
            format!(
                r#"{{"settings": {{"allowed_origins": ["{SHOP}"], "office_hours": {{"timezone": "Mars/Olympus_Mons"}}}}}}"#
            ),
            400,
            "invalid_office_hours",
        ),
        case(
            "site patch: bad office hours",
            Owner,
            "PATCH",
            &site_path,
            format!(
                r#"{{"settings": {{"allowed_origins": ["{SHOP}"], "office_hours": {{"timezone": "UTC", "intervals": [{{"day": "someday", "from": "09:00", "to": "17:00"}}]}}}}}}"#
            ),
            400,
            "invalid_office_hours",
        ),
        case(
            "site patch: bad origin",
            Owner,
            "PATCH",
            &site_path,
            r#"{"settings": {"allowed_origins": ["not an origin"]}}"#,
            400,
            "invalid_format",
        ),
        case(
            "site patch: empty name",
            Owner,
            "PATCH",
            &site_path,
            r#"{"name": "  "}"#,
            400,
            "empty",
        ),
        case(
            "site patch: invalid UTF-8",
            Owner,
            "PATCH",
            &site_path,
            {
                let mut b = br#"{"name": ""#.to_vec();
                b.extend_from_slice(&[0xed, 0xa0, 0x80]);
                b.extend_from_slice(br#""}"#);
                b
            },
            400,
            "invalid_json",
        ),
        case(
            "site patch: unknown site",
            Owner,
            "PATCH",
            "/api/v1/sites/424242",
            r#"{"name": "Nowhere"}"#,
            404,
            "not_found",
        ),
        case(
            "site patch: huge site id",
            Owner,
            "PATCH",
            format!("/api/v1/sites/{huge}"),
            r#"{"name": "Nowhere"}"#,
            400,
            "invalid_path",
        ),
        // Contacts.
        case(
            "contact patch: invalid email",
            Owner,
            "PATCH",
            &contact_path,
            r#"{"email": "not-an-email"}"#,
            400,
            "invalid_format",
        ),
        case(
            "contact patch: invalid phone",
            Owner,
            "PATCH",
            &contact_path,
            r#"{"phone": "call me maybe"}"#,
            400,
            "invalid_format",
        ),
        case(
            "contact patch: unknown field",
            Owner,
            "PATCH",
            &contact_path,
            r#"{"nickname": "V"}"#,
            400,
            "invalid_body",
        ),
        case(
            "contact patch: wrong type",
            Owner,
            "PATCH",
            &contact_path,
            r#"{"name": 42}"#,
            400,
            "invalid_body",
        ),
        case(
            "contact patch: name over 200 chars",
            Owner,
            "PATCH",
            &contact_path,
            format!(r#"{{"name": "{}"}}"#, "n".repeat(201)),
            400,
            "too_long",
        ),
        case(
            "contact patch: malformed JSON",
            Owner,
            "PATCH",
            &contact_path,
            "name=Vera",
            400,
            "invalid_json",
        ),
        case(
            "contact patch: unknown contact",
            Owner,
            "PATCH",
            "/api/v1/contacts/424242",
            r#"{"name": "Nobody"}"#,
            404,
            "not_found",
        ),
        case(
            "contact patch: huge contact id",
            Owner,
            "PATCH",
            format!("/api/v1/contacts/{huge}"),
            r#"{"name": "Nobody"}"#,
            400,
            "invalid_path",
        ),
        case(
            "visitor contact: invalid email",
            Visitor,
            "PATCH",
            "/api/v1/widget/contact",
            r#"{"email": "vera@"}"#,
            400,
            "invalid_format",
        ),
        // Assignment.
        case(
            "assign: unknown assignee",
            Owner,
            "POST",
            &assign,
            r#"{"assignee_id": 424242}"#,
            400,
            "unknown_agent",
        ),
        case(
            "assign: huge assignee",
            Owner,
            "POST",
            &assign,
            format!(r#"{{"assignee_id": {huge}}}"#),
            400,
            "invalid_body",
        ),
        case(
            "assign: assignee 1e400",
            Owner,
            "POST",
            &assign,
            r#"{"assignee_id": 1e400}"#,
            400,
            "invalid_json",
        ),
        case(
            "assign: wrong type",
            Owner,
            "POST",
            &assign,
            r#"{"assignee_id": "olga"}"#,
            400,
            "invalid_body",
        ),
        case(
            "assign: unknown field",
            Owner,
            "POST",
            &assign,
            r#"{"assignee_id": null, "team": 1}"#,
            400,
            "invalid_body",
        ),
        case(
            "assign: malformed JSON",
            Owner,
            "POST",
            &assign,
            r#"{"assignee_id": }"#,
            400,
            "invalid_json",
        ),
        case(
            "assign: unknown conversation",
            Owner,
            "POST",
            "/api/v1/conversations/424242/assign",
            r#"{"assignee_id": null}"#,
            404,
            "not_found",
        ),
        // Visitors from pages the site does not allow (W1).
        case(
            "foreign origin: session",
            Foreign,
            "POST",
            "/api/v1/widget/sessions",
            format!(r#"{{"site_key": "{key}"}}"#),
            403,
            "origin_not_allowed",
        ),
        case(
            "foreign origin: send",
            ForeignVisitor,
            "POST",
            &v_send,
            r#"{"client_id": "f-1", "body": "hi"}"#,
            403,
            "origin_not_allowed",
        ),
        case(
            "foreign origin: history",
            ForeignVisitor,
            "GET",
            &v_send,
            "",
            403,
            "origin_not_allowed",
        ),
        case(
            "foreign origin: config",
            Foreign,
            "GET",
            format!("/api/v1/widget/config?site_key={key}"),
            "",
            403,
            "origin_not_allowed",
        ),
        case(
            "unknown site key: session",
            Nobody,
            "POST",
            "/api/v1/widget/sessions",
            r#"{"site_key": "nope"}"#,
            404,
            "not_found",
        ),
        case(
            "missing site key: config",
            Nobody,
            "GET",
            "/api/v1/widget/config",
            "",
            400,
            "invalid_query",
        ),
        case(
            "unknown visitor token",
            BadToken,
            "GET",
            "/api/v1/widget/conversations",
            "",
            401,
            "unauthenticated",
        ),
    ];
    let cases: Vec<Case> = cases
        .into_iter()
        .map(|c| if c.method == "GET" { no_body(c) } else { c })
        .collect();

    let before = fx.stored().await;
    let mut outcomes = Vec::new();
    let mut wrong = Vec::new();
    for c in &cases {
        let (st, body) = fx.send(c).await;
        let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
        let shaped = body
            .as_object()
            .is_some_and(|o| o.len() == 1 && o.contains_key("error"))
            && body["error"]
                .as_object()
                .is_some_and(|e| e.len() == 2 && e["code"].is_string() && e["message"].is_string())
            && code.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
            && !code.is_empty();
        if st.as_u16() != c.status || code != c.code || !shaped {
            wrong.push(format!(
                "{}: got {} {body}, expected {} {}",
                c.what, st, c.status, c.code
            ));
        }
        outcomes.push(Outcome {
            case: c.what,
            status: st.as_u16(),
            code,
        });
    }
    let after = fx.stored().await;
    assert!(
        wrong.is_empty(),
        "{} case(s) wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(before, after, "a refused request changed something stored");
    insta::assert_json_snapshot!("http_bad_input", outcomes);

    // The server is healthy and the same callers still work.
    let (st, _) = fx.owner.get("/api/v1/me").await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = fx.visitor.send(conv, "v-ok", "still here").await;
    assert_eq!(st, StatusCode::CREATED);
    let r = fx
        .http
        .get(format!("{}/healthz", fx.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

// ---- Sockets ----------------------------------------------------------------------------

async fn next_frame(s: &mut Socket) -> Result<Value, Option<u16>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.ws.next()).await {
            Ok(Some(Ok(Ws::Text(t)))) => return Ok(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Ws::Close(f)))) => return Err(f.map(|f| u16::from(f.code))),
            Ok(Some(Ok(_))) => continue,
            _ => return Err(None),
        }
    }
}

/// The next frame that is an error or a pong (skipping unrelated events).
async fn reply(s: &mut Socket) -> Value {
    loop {
        match next_frame(s).await {
            Ok(f) if f["type"] == "error" || f["type"] == "pong" || f["type"] == "ack" => return f,
            Ok(_) => continue,
            Err(c) => panic!("socket closed ({c:?}) instead of answering"),
        }
    }
}

async fn close_code(s: &mut Socket) -> Option<u16> {
    loop {
        match next_frame(s).await {
            Ok(_) => continue,
            Err(c) => return c,
        }
    }
}

/// Sends bad frames on a healthy socket; each gets an error frame and the socket stays up.
async fn bad_frames(s: &mut Socket, conv: i64, kind: &str) -> Vec<(String, String)> {
    let text_cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "hello?".into(), "invalid_json"),
        (
            "truncated JSON",
            r#"{"type": "send", "#.into(),
            "invalid_json",
        ),
        ("not an object", "[1, 2, 3]".into(), "invalid_frame"),
        (
            "no type",
            r#"{"conversation_id": 1}"#.into(),
            "invalid_frame",
        ),
        (
            "unknown type",
            r#"{"type": "dance"}"#.into(),
            "invalid_frame",
        ),
        (
            "unknown field on ping",
            r#"{"type": "ping", "urgent": true}"#.into(),
            "invalid_frame",
        ),
        (
            "unknown field",
            format!(r#"{{"type": "subscribe", "conversation_id": {conv}, "colour": "red"}}"#),
            "invalid_frame",
        ),
        (
            "wrong type",
            format!(
                r#"{{"type": "send", "conversation_id": "{conv}", "client_id": "w-1", "body": "hi"}}"#
            ),
            "invalid_frame",
        ),
        (
            "huge id",
            r#"{"type": "subscribe", "conversation_id": 99999999999999999999}"#.into(),
            "invalid_frame",
        ),
        // serde_json cannot represent 1e400 and reports it as a syntax error.
        (
            "id 1e400",
            r#"{"type": "subscribe", "conversation_id": 1e400}"#.into(),
            "invalid_json",
        ),
        (
            "unknown conversation",
            r#"{"type": "subscribe", "conversation_id": 424242}"#.into(),
            "not_found",
        ),
    ];
    let mut out = Vec::new();
    for (what, text, code) in text_cases {
        s.ws.send(Ws::Text(text.clone().into())).await.unwrap();
        let f = reply(s).await;
        assert_eq!(f["type"], "error", "{kind} {what}: {f}");
        assert_eq!(f["code"], code, "{kind} {what}: {f}");
        assert!(f["message"].is_string(), "{f}");
        out.push((format!("{kind}: {what}"), code.to_owned()));
    }
    // Sends refused by validation echo the client's id.
    for (what, body, client_id, code) in [
        ("empty body", "  ".to_string(), "e-1", "empty"),
        (
            "body over 10000 chars",
            "y".repeat(10_001),
            "e-2",
            "too_long",
        ),
        (
            "client_id with spaces",
            "hi".to_string(),
            "e 3",
            "invalid_format",
        ),
    ] {
        s.send(
            json!({"type": "send", "conversation_id": conv, "client_id": client_id, "body": body}),
        )
        .await;
        let f = reply(s).await;
        assert_eq!(
            (
                f["type"].as_str(),
                f["code"].as_str(),
                f["client_id"].as_str()
            ),
            (Some("error"), Some(code), Some(client_id)),
            "{kind} {what}: {f}"
        );
        out.push((format!("{kind}: send {what}"), code.to_owned()));
    }
    s.send(json!({"type": "send", "conversation_id": 424242, "client_id": "e-4", "body": "hi"}))
        .await;
    let f = reply(s).await;
    assert_eq!(
        (f["code"].as_str(), f["client_id"].as_str()),
        (Some("not_found"), Some("e-4"))
    );
    out.push((
        format!("{kind}: send to unknown conversation"),
        "not_found".into(),
    ));
    // Still open and answering.
    s.send(json!({"type": "ping"})).await;
    assert_eq!(reply(s).await["type"], "pong", "{kind}");
    out.push((format!("{kind}: ping after all that"), "pong".into()));
    out
}

fn ws_url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.base.replace("http://", "ws://"))
}

async fn agent_socket(app: &TestApp, owner: &Agent) -> Socket {
    let mut req = ws_url(app, "/api/v1/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", owner.cookie.parse().unwrap());
    req.headers_mut()
        .insert("origin", app.origin.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut s = Socket {
        ws,
        pending: Default::default(),
    };
    s.expect("ready").await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_socket_frames_get_error_frames_or_a_policy_close() {
    let (app, owner) = TestApp::start().await.with_owner().await;
    let visitor = app.visitor().await;
    let conv = visitor.start().await;
    let (st, _) = visitor.send(conv, "v-1", "Hello").await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, before) = owner
        .get(&format!("/api/v1/conversations/{conv}/messages"))
        .await;

    let mut outcomes = Vec::new();
    let mut a = agent_socket(&app, &owner).await;
    outcomes.extend(bad_frames(&mut a, conv, "agent").await);
    let mut v = visitor.ws(json!({})).await;
    outcomes.extend(bad_frames(&mut v, conv, "visitor").await);

    // Nothing was stored by any of it.
    let (_, after) = owner
        .get(&format!("/api/v1/conversations/{conv}/messages"))
        .await;
    assert_eq!(before, after);

    // Protocol violations close the socket with 1008: a frame over 64 KiB, a binary frame.
    let oversized = json!({"type": "send", "conversation_id": conv, "client_id": "big", "body": "z".repeat(70 * 1024)}).to_string();
    let a2 = agent_socket(&app, &owner).await;
    let v2 = visitor.ws(json!({})).await;
    for (name, mut s, msg) in [
        (
            "agent: frame over 64 KiB",
            a,
            Ws::Text(oversized.clone().into()),
        ),
        (
            "visitor: frame over 64 KiB",
            v,
            Ws::Text(oversized.clone().into()),
        ),
        (
            "agent: binary frame",
            a2,
            Ws::Binary(vec![0u8, 159, 146, 150].into()),
        ),
        (
            "visitor: binary frame",
            v2,
            Ws::Binary(vec![0u8, 159, 146, 150].into()),
        ),
    ] {
        // The server may close while the frame is still being written.
        let _ = s.ws.send(msg).await;
        let code = close_code(&mut s).await;
        assert_eq!(code, Some(u16::from(CloseCode::Policy)), "{name}");
        outcomes.push((name.to_string(), "close 1008".into()));
    }

    // The server is fine and fresh sockets work.
    let r = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut a = agent_socket(&app, &owner).await;
    a.send(json!({"type": "ping"})).await;
    a.expect("pong").await;
    let mut v = visitor.ws(json!({})).await;
    v.send(json!({"type": "send", "conversation_id": conv, "client_id": "v-2", "body": "after the storm"}))
        .await;
    assert_eq!(v.expect("ack").await["message"]["body"], "after the storm");
    let (_, after) = owner
        .get(&format!("/api/v1/conversations/{conv}/messages"))
        .await;
    let oversized_stored = after
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["client_id"] == "big");
    assert!(!oversized_stored, "an oversized frame was stored");
    insta::assert_json_snapshot!("socket_bad_input", outcomes);
}

/// Every response passes the whole middleware stack, whatever answered it: a route, the
/// inbox's fallback, a wrong method, a refusal, a widget preflight, an oversized body.
/// Each carries a request id (the caller's own when it sent one, a fresh one otherwise)
/// and the security headers; only the widget's own responses may be framed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_passes_the_middleware() {
    let app = TestApp::start().await;
    let http = reqwest::Client::new();
    let base = &app.base;
    let cases = [
        (
            "route, refused",
            reqwest::Method::GET,
            "/api/v1/me",
            401,
            true,
        ),
        ("route, public", reqwest::Method::GET, "/healthz", 200, true),
        ("inbox", reqwest::Method::GET, "/", 200, true),
        (
            "fallback, no such page",
            reqwest::Method::GET,
            "/no-such-page",
            404,
            true,
        ),
        (
            "wrong method",
            reqwest::Method::DELETE,
            "/widget.js",
            405,
            false,
        ),
        (
            "unknown API path",
            reqwest::Method::GET,
            "/api/v1/nothing-here",
            404,
            true,
        ),
        (
            "widget route",
            reqwest::Method::GET,
            "/api/v1/widget/config?site_key=nope",
            404,
            false,
        ),
    ];
    let mut ids = std::collections::HashSet::new();
    for (what, method, path, status, framed_denied) in cases {
        let r = http
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(
            h["referrer-policy"], "strict-origin-when-cross-origin",
            "{what}"
        );
        assert_eq!(
            h.get("x-frame-options").is_some(),
            framed_denied && !h.contains_key("content-security-policy"),
            "{what}"
        );
        let id = h["x-request-id"].to_str().unwrap().to_owned();
        assert!(ids.insert(id), "{what}: request ids are fresh");
        // The caller's own id comes back unchanged.
        let r = http
            .request(method, format!("{base}{path}"))
            .header("x-request-id", "caller-7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "caller-7", "{what}");
    }
    // A widget preflight is answered for any origin, before any route is asked.
    let r = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}/api/v1/widget/sessions"),
        )
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers().contains_key("x-request-id"));
    // A body over the limit is refused.
    let r = http
        .post(format!("{base}/api/v1/widget/sessions"))
        .header("content-type", "application/json")
        .body(vec![b' '; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.headers().contains_key("x-request-id"));
}
