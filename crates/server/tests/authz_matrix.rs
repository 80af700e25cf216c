//! The authorization matrix (S2, I3, I5, W1), generated from the route table: every
//! operation of the generated OpenAPI document × {anonymous, visitor A, visitor B,
//! restricted agent, full agent, admin, owner} × {own resource, someone else's}, checked
//! against the operation's access class (its tag). Then the same identities on the two
//! WebSockets: hello, subscribe, send and read, own and someone else's.
//!
//! The security property is "no unexpected allow"; the matrix also insists that every
//! allowed call really succeeds (valid bodies), so a refusal cannot hide a broken fixture.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

const SHOP: &str = "https://shop.example.com";
const FOREIGN: &str = "https://evil.example.net";

/// The only operations anyone may call without signing in. Adding a public route means
/// adding it here: a conscious act.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/api/v1/setup"),
    ("POST", "/api/v1/setup"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/widget/config"),
    ("POST", "/api/v1/widget/sessions"),
    ("GET", "/api/v1/widget/ws"),
    ("GET", "/api/v1/ws"),
];

/// Socket upgrades: public at the HTTP level, authenticated by their first frame or cookie;
/// covered by the socket tests below rather than by a plain HTTP request.
const SOCKETS: &[&str] = &["/api/v1/ws", "/api/v1/widget/ws"];

const CLASSES: &[&str] = &["public", "visitor", "agent", "admin", "owner"];

/// Allowed calls that a product rule refuses whoever calls them (not an access decision).
const RULE_REFUSALS: &[(&str, &str, u16, &str)] =
    &[("POST", "/api/v1/setup", 409, "already_set_up")];

#[derive(Debug, Clone)]
struct Op {
    method: String,
    path: String,
    tag: String,
}

impl Op {
    fn label(&self) -> String {
        format!("{} {} [{}]", self.method, self.path, self.tag)
    }
    fn has_id(&self) -> bool {
        self.path.contains('{')
    }
    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

/// Every operation of the OpenAPI document with its access class.
fn operations() -> Vec<Op> {
    let doc = serde_json::to_value(confab_api::openapi()).unwrap();
    let mut ops = Vec::new();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("the document has paths") {
        for (method, op) in item.as_object().unwrap() {
            if !matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace"
            ) {
                continue;
            }
            let tags: Vec<&str> = op["tags"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match tags.as_slice() {
                [t] if CLASSES.contains(t) => ops.push(Op {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    tag: (*t).to_owned(),
                }),
                _ => problems.push(format!("{} {path}: tags {tags:?}", method.to_uppercase())),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "every operation needs exactly one access-class tag ({CLASSES:?}):\n{}",
        problems.join("\n")
    );
    ops
}

#[test]
fn every_route_has_one_access_class_and_the_public_list_is_short() {
    let ops = operations();
    assert!(
        ops.len() >= 50,
        "the route table looks truncated: {} operations",
        ops.len()
    );
    let public: BTreeSet<(String, String)> = ops
        .iter()
        .filter(|o| o.tag == "public")
        .map(|o| (o.method.clone(), o.path.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        public, expected,
        "the public operations changed: update PUBLIC in this test only if that is intended"
    );
    for s in SOCKETS {
        assert!(public.contains(&("GET".to_string(), s.to_string())));
    }
    for tag in CLASSES {
        assert!(
            ops.iter().any(|o| o.tag == *tag),
            "no operation is tagged {tag}"
        );
    }
}

// ---- Identities and the fixture ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    VisitorA,
    VisitorB,
    Restricted,
    Full,
    Admin,
    Owner,
}

const EVERYONE: [Who; 7] = [
    Who::Anonymous,
    Who::VisitorA,
    Who::VisitorB,
    Who::Restricted,
    Who::Full,
    Who::Admin,
    Who::Owner,
];

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Anonymous => "anon",
            Who::VisitorA => "visA",
            Who::VisitorB => "visB",
            Who::Restricted => "restr",
            Who::Full => "full",
            Who::Admin => "admin",
            Who::Owner => "owner",
        }
    }
    fn is_visitor(self) -> bool {
        matches!(self, Who::VisitorA | Who::VisitorB)
    }
    /// Whether this identity's own things are world A's (conversation A is visitor A's and
    /// assigned to the restricted agent; B is visitor B's and assigned to the full agent).
    fn own_is_a(self) -> bool {
        matches!(self, Who::Anonymous | Who::VisitorA | Who::Restricted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Own,
    Other,
}

/// Two visitors, each with a conversation and an attachment in it. A is assigned to the
/// restricted agent, B to the full agent.
struct World {
    va: Visitor,
    vb: Visitor,
    conv_a: i64,
    conv_b: i64,
    att_a: i64,
    att_b: i64,
}

struct Fx {
    app: TestApp,
    /// No cookie store: every request carries exactly the credentials we give it.
    http: reqwest::Client,
    owner: Agent,
    admin: Agent,
    full: Agent,
    restricted: Agent,
    bystander: i64,
    site_b: i64,
    team_a: i64,
    team_b: i64,
    identity_secret: String,
    n: AtomicU64,
}

enum Body {
    None,
    Json(Value),
    Bytes(&'static [u8]),
}

/// Who sends a request: header pairs.
type Creds = Vec<(&'static str, String)>;

fn agent_creds(a: &Agent) -> Creds {
    vec![
        ("cookie", a.cookie.clone()),
        ("x-csrf-token", a.csrf.clone()),
    ]
}

fn visitor_creds(v: &Visitor) -> Creds {
    vec![
        ("authorization", format!("Bearer {}", v.token)),
        ("origin", v.origin.clone()),
    ]
}

impl Fx {
    async fn new() -> Fx {
        let (app, owner) = TestApp::start().await.with_owner().await;
        let admin = app
            .agent(
                &owner,
                "admin@example.com",
                "Ada Admin",
                "admin",
                "full",
                true,
            )
            .await;
        let full = app
            .agent(
                &owner,
                "full@example.com",
                "Fred Full",
                "agent",
                "full",
                true,
            )
            .await;
        let restricted = app
            .agent(
                &owner,
                "restricted@example.com",
                "Rita Restricted",
                "agent",
                "restricted",
                true,
            )
            .await;
        let (st, by) = owner
            .post("/api/v1/agents", json!({"email": "bystander@example.com", "name": "Bo Bystander", "password": PASSWORD, "role": "agent", "access": "full"}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{by}");
        let (st, site_b) = owner
            .post(
                "/api/v1/sites",
                json!({"name": "Blog", "settings": {"allowed_origins": [SHOP]}}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{site_b}");
        let (st, site) = owner.get(&format!("/api/v1/sites/{}", app.site_id)).await;
        assert_eq!(st, StatusCode::OK);
        let identity_secret = site["identity_secret"].as_str().unwrap().to_owned();
        let mut teams = Vec::new();
        for name in ["Sales", "Support"] {
            let (st, t) = owner
                .post(
                    "/api/v1/teams",
                    json!({"name": name, "members": [full.id, restricted.id]}),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{t}");
            teams.push(t["id"].as_i64().unwrap());
        }
        Fx {
            http: reqwest::Client::new(),
            bystander: by["id"].as_i64().unwrap(),
            site_b: site_b["id"].as_i64().unwrap(),
            team_a: teams[0],
            team_b: teams[1],
            identity_secret,
            n: AtomicU64::new(1),
            app,
            owner,
            admin,
            full,
            restricted,
        }
    }

    fn next(&self) -> u64 {
        self.n.fetch_add(1, Ordering::Relaxed)
    }

    fn agent(&self, who: Who) -> Option<&Agent> {
        match who {
            Who::Restricted => Some(&self.restricted),
            Who::Full => Some(&self.full),
            Who::Admin => Some(&self.admin),
            Who::Owner => Some(&self.owner),
            _ => None,
        }
    }

    fn email(&self, who: Who) -> &'static str {
        match who {
            Who::Restricted => "restricted@example.com",
            Who::Full => "full@example.com",
            Who::Admin => "admin@example.com",
            Who::Owner => "owner@example.com",
            _ => unreachable!(),
        }
    }

    fn creds(&self, who: Who, w: &World) -> Creds {
        match who {
            Who::Anonymous => vec![],
            Who::VisitorA => visitor_creds(&w.va),
            Who::VisitorB => visitor_creds(&w.vb),
            _ => agent_creds(self.agent(who).unwrap()),
        }
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        creds: &Creds,
        body: &Body,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.app.base),
        );
        for (k, v) in creds {
            req = req.header(*k, v);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(v),
            Body::Bytes(b) => req
                .header("content-type", "application/octet-stream")
                .body(b.to_vec()),
        };
        let r = req.send().await.unwrap();
        let st = r.status();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (st, v)
    }

    /// A second, independent session of the same agent (for logout).
    async fn fresh_session(&self, who: Who) -> Creds {
        let r = self
            .http
            .post(format!("{}/api/v1/auth/login", self.app.base))
            .json(&json!({"email": self.email(who), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let me: Value = r.json().await.unwrap();
        vec![
            ("cookie", cookie),
            (
                "x-csrf-token",
                me["csrf_token"].as_str().unwrap().to_owned(),
            ),
        ]
    }

    async fn assign(&self, conv: i64, to: i64) {
        let (st, b) = self
            .owner
            .post(
                &format!("/api/v1/conversations/{conv}/assign"),
                json!({"assignee_id": to}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }

    async fn world(&self, closed: bool) -> World {
        let va = self.app.visitor().await;
        let vb = self.app.visitor().await;
        let conv_a = va.start().await;
        let conv_b = vb.start().await;
        self.assign(conv_a, self.restricted.id).await;
        self.assign(conv_b, self.full.id).await;
        // One attachment uploaded by the visitor, one by an agent.
        let (st, a) = self
            .raw(
                "POST",
                &format!("/api/v1/widget/conversations/{conv_a}/attachments?filename=a.txt"),
                &visitor_creds(&va),
                &Body::Bytes(b"hello from A"),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{a}");
        let (st, b) = self
            .raw(
                "POST",
                &format!("/api/v1/conversations/{conv_b}/attachments?filename=a.txt"),
                &agent_creds(&self.full),
                &Body::Bytes(b"hello from B"),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        if closed {
            for c in [conv_a, conv_b] {
                let (st, b) = self
                    .owner
                    .post(&format!("/api/v1/conversations/{c}/close"), json!({}))
                    .await;
                assert_eq!(st, StatusCode::OK, "{b}");
            }
        }
        World {
            va,
            vb,
            conv_a,
            conv_b,
            att_a: a["id"].as_i64().unwrap(),
            att_b: b["id"].as_i64().unwrap(),
        }
    }

    async fn fresh_team(&self) -> i64 {
        let (st, t) = self
            .owner
            .post(
                "/api/v1/teams",
                json!({"name": format!("Disposable {}", self.next())}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{t}");
        t["id"].as_i64().unwrap()
    }

    /// The id to put in the path for `who` asking for their own thing or someone else's.
    fn resource(&self, op: &Op, who: Who, side: Side, w: &World, team: Option<i64>) -> i64 {
        let a = (side == Side::Own) == who.own_is_a();
        let p = op.path.as_str();
        let under = |prefixes: &[&str]| prefixes.iter().any(|x| p.starts_with(x));
        if under(&[
            "/api/v1/conversations/{id}",
            "/api/v1/widget/conversations/{id}",
        ]) {
            if a {
                w.conv_a
            } else {
                w.conv_b
            }
        } else if under(&[
            "/api/v1/attachments/{id}",
            "/api/v1/widget/attachments/{id}",
        ]) {
            if a {
                w.att_a
            } else {
                w.att_b
            }
        } else if under(&["/api/v1/contacts/{id}"]) {
            if a {
                w.va.contact_id
            } else {
                w.vb.contact_id
            }
        } else if under(&["/api/v1/agents/{id}"]) {
            match (side, self.agent(who)) {
                (Side::Own, Some(me)) => me.id,
                _ => self.bystander,
            }
        } else if under(&["/api/v1/teams/{id}"]) {
            team.unwrap_or(if side == Side::Own {
                self.team_a
            } else {
                self.team_b
            })
        } else if under(&["/api/v1/sites/{id}"]) {
            if side == Side::Own {
                self.app.site_id
            } else {
                self.site_b
            }
        } else {
            panic!(
                "no resource for the path parameter of {}: teach resource()",
                op.label()
            )
        }
    }

    fn query(&self, op: &Op) -> String {
        if op.path.ends_with("/attachments") {
            "?filename=a.txt".into()
        } else if op.path == "/api/v1/widget/config" {
            format!("?site_key={}", self.app.site_key)
        } else {
            String::new()
        }
    }

    /// A plausible, valid request body per operation.
    fn body(&self, op: &Op) -> Body {
        let n = self.next();
        let j = Body::Json;
        match (op.method.as_str(), op.path.as_str()) {
            ("GET" | "DELETE", _) => Body::None,
            ("POST", "/api/v1/setup") => {
                j(json!({"email": "second@example.com", "name": "Second", "password": PASSWORD}))
            }
            ("POST", "/api/v1/auth/login") => {
                j(json!({"email": "bystander@example.com", "password": PASSWORD}))
            }
            ("POST", "/api/v1/auth/logout") => Body::None,
            ("PATCH", "/api/v1/me") => j(json!({"display_name": format!("Name {n}")})),
            ("PUT", "/api/v1/me/availability") => j(json!({"available": true})),
            ("POST", "/api/v1/me/tokens") => j(json!({"name": format!("token {n}")})),
            ("POST", "/api/v1/conversations/{id}/messages") => {
                j(json!({"client_id": format!("m-{n}"), "body": "Hello from the matrix"}))
            }
            ("POST", "/api/v1/conversations/{id}/assign") => j(json!({"assignee_id": null})),
            ("POST", "/api/v1/conversations/{id}/close" | "/api/v1/conversations/{id}/reopen") => {
                Body::None
            }
            ("POST", "/api/v1/conversations/{id}/snooze") => {
                j(json!({"until": "2999-01-01T00:00:00Z"}))
            }
            ("PUT", "/api/v1/conversations/{id}/tags") => j(json!({"tags": ["vip"]})),
            (
                "POST",
                "/api/v1/conversations/{id}/read" | "/api/v1/widget/conversations/{id}/read",
            ) => j(json!({"seq": 1})),
            (
                "POST",
                "/api/v1/conversations/{id}/attachments"
                | "/api/v1/widget/conversations/{id}/attachments",
            ) => Body::Bytes(b"a small text file"),
            ("PATCH", "/api/v1/contacts/{id}") => j(json!({"name": format!("Contact {n}")})),
            ("POST", "/api/v1/contacts/{id}/notes") => j(json!({"body": "a shared note"})),
            ("POST", "/api/v1/notifications/read") => j(json!({"ids": []})),
            ("POST", "/api/v1/agents") => j(json!({
                "email": format!("new{n}@example.com"), "name": "New Agent",
                "password": PASSWORD, "role": "agent", "access": "full"
            })),
            ("PATCH", "/api/v1/agents/{id}") => j(json!({"display_name": format!("Renamed {n}")})),
            ("POST", "/api/v1/teams") | ("PATCH", "/api/v1/teams/{id}") => {
                j(json!({"name": format!("Team {n}")}))
            }
            ("POST", "/api/v1/sites") | ("PATCH", "/api/v1/sites/{id}") => {
                j(json!({"name": format!("Site {n}")}))
            }
            ("POST", "/api/v1/widget/sessions") => j(json!({"site_key": self.app.site_key})),
            ("POST", "/api/v1/widget/identify") => {
                let id = format!("customer-{n}");
                j(
                    json!({"id": id, "hmac": hmac_hex(&self.identity_secret, &id), "name": "Cleo Customer"}),
                )
            }
            ("PATCH", "/api/v1/widget/contact") => j(json!({"name": "Vera Visitor"})),
            ("POST", "/api/v1/widget/conversations") => {
                j(json!({"url": "https://shop.example.com/cart"}))
            }
            ("POST", "/api/v1/widget/conversations/{id}/messages") => {
                j(json!({"client_id": format!("v-{n}"), "body": "Hello from a visitor"}))
            }
            ("POST", "/api/v1/widget/conversations/{id}/end") => Body::None,
            ("POST", "/api/v1/widget/conversations/{id}/rating") => {
                j(json!({"rating": "good", "comment": "thanks"}))
            }
            ("POST", "/api/v1/widget/page-views") => {
                j(json!({"url": "https://shop.example.com/p", "title": "A page"}))
            }
            (m, p) => panic!("no request body for {m} {p}: add one to Fx::body"),
        }
    }
}

/// Operations that change what the fixture's identities may see, or destroy it: each cell
/// gets fresh resources.
#[derive(Clone, Copy)]
enum Fresh {
    No,
    World { closed: bool },
    Team,
    Session,
}

fn fresh(op: &Op) -> Fresh {
    match (op.method.as_str(), op.path.as_str()) {
        (
            "POST",
            "/api/v1/conversations/{id}/assign"
            | "/api/v1/conversations/{id}/close"
            | "/api/v1/conversations/{id}/snooze"
            | "/api/v1/widget/conversations/{id}/end"
            | "/api/v1/widget/identify",
        )
        | ("DELETE", "/api/v1/conversations/{id}") => Fresh::World { closed: false },
        ("POST", "/api/v1/conversations/{id}/reopen") => Fresh::World { closed: true },
        ("DELETE", "/api/v1/teams/{id}") => Fresh::Team,
        ("POST", "/api/v1/auth/logout") => Fresh::Session,
        _ => Fresh::No,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Refuse(u16),
}

/// What the access class says about `who` calling `op` on their own thing or another's.
fn expected(op: &Op, who: Who, side: Side) -> Expect {
    use Expect::*;
    let stranger = matches!(who, Who::Anonymous);
    // Resources that belong to a conversation: restricted agents see only theirs (I3).
    let scoped = op.has_id()
        && [
            "/api/v1/conversations/",
            "/api/v1/attachments/",
            "/api/v1/contacts/",
        ]
        .iter()
        .any(|p| op.path.starts_with(p));
    match op.tag.as_str() {
        "public" => Allow,
        "visitor" => match who {
            Who::VisitorA | Who::VisitorB if side == Side::Other => Refuse(404),
            Who::VisitorA | Who::VisitorB => Allow,
            _ => Refuse(401),
        },
        "agent" => match who {
            _ if stranger || who.is_visitor() => Refuse(401),
            // A closed conversation is visible to restricted agents (I3), but only its
            // assignee or a full-access agent may change its status (I4).
            Who::Restricted if scoped && side == Side::Other && op.path.ends_with("/reopen") => {
                Refuse(403)
            }
            Who::Restricted if scoped && side == Side::Other => Refuse(404),
            _ => Allow,
        },
        "admin" => match who {
            _ if stranger || who.is_visitor() => Refuse(401),
            Who::Restricted | Who::Full => Refuse(403),
            _ => Allow,
        },
        "owner" => match who {
            _ if stranger || who.is_visitor() => Refuse(401),
            Who::Owner => Allow,
            Who::Restricted if scoped && side == Side::Other => Refuse(404),
            _ => Refuse(403),
        },
        t => panic!("unknown class {t}"),
    }
}

struct Cell {
    op: usize,
    who: Who,
    side: Side,
    status: u16,
    code: String,
    problem: Option<String>,
}

fn judge(op: &Op, who: Who, side: Side, status: StatusCode, body: &Value) -> Option<String> {
    let code = body["error"]["code"].as_str().unwrap_or("");
    let s = status.as_u16();
    if !status.is_success() {
        let shaped = body["error"]["code"].is_string() && body["error"]["message"].is_string();
        if !shaped {
            return Some(format!(
                "error body is not {{\"error\":{{code,message}}}}: {body}"
            ));
        }
    }
    match expected(op, who, side) {
        Expect::Refuse(want) if status.is_success() => {
            Some(format!("UNEXPECTED ALLOW: {s} where {want} was expected"))
        }
        Expect::Refuse(want) if s != want => {
            Some(format!("refused with {s} {code}, expected {want}"))
        }
        Expect::Refuse(_) => None,
        Expect::Allow if status.is_success() => None,
        Expect::Allow
            if RULE_REFUSALS
                .iter()
                .any(|(m, p, st, c)| op.is(m, p) && *st == s && *c == code) =>
        {
            None
        }
        Expect::Allow => Some(format!("unexpected refusal {s} {code}: {body}")),
    }
}

fn table(ops: &[Op], cells: &[Cell]) -> String {
    let width = ops.iter().map(|o| o.label().len()).max().unwrap_or(10) + 1;
    let mut out = String::new();
    let _ = write!(out, "{:width$}", "operation (own/other)");
    for w in EVERYONE {
        let _ = write!(out, " {:>11}", w.label());
    }
    out.push('\n');
    for (i, op) in ops.iter().enumerate() {
        let _ = write!(out, "{:width$}", op.label());
        for w in EVERYONE {
            let show = |side: Side| {
                cells
                    .iter()
                    .find(|c| c.op == i && c.who == w && c.side == side)
                    .map(|c| format!("{}{}", c.status, if c.problem.is_some() { "!" } else { "" }))
                    .unwrap_or_else(|| "-".into())
            };
            let _ = write!(
                out,
                " {:>11}",
                format!("{}/{}", show(Side::Own), show(Side::Other))
            );
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_authorization_matrix() {
    let fx = Fx::new().await;
    let shared = fx.world(false).await;
    let ops: Vec<Op> = operations()
        .into_iter()
        .filter(|o| !SOCKETS.contains(&o.path.as_str()))
        .collect();
    let mut cells = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        for who in EVERYONE {
            let sides: &[Side] = if op.has_id() {
                &[Side::Own, Side::Other]
            } else {
                &[Side::Own]
            };
            for &side in sides {
                let mut team = None;
                let fresh_world;
                let mut creds = None;
                let w = match fresh(op) {
                    Fresh::World { closed } => {
                        fresh_world = fx.world(closed).await;
                        &fresh_world
                    }
                    Fresh::Team => {
                        team = Some(fx.fresh_team().await);
                        &shared
                    }
                    Fresh::Session if fx.agent(who).is_some() => {
                        creds = Some(fx.fresh_session(who).await);
                        &shared
                    }
                    _ => &shared,
                };
                let creds = creds.unwrap_or_else(|| fx.creds(who, w));
                let mut path = op.path.clone();
                if op.has_id() {
                    let id = fx.resource(op, who, side, w, team);
                    assert_eq!(path.matches('{').count(), 1, "{}", op.label());
                    path = path.replace("{id}", &id.to_string());
                }
                path.push_str(&fx.query(op));
                let (status, body) = fx.raw(&op.method, &path, &creds, &fx.body(op)).await;
                assert_ne!(
                    status,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "{} as {who:?} ({side:?}): {body}",
                    op.label()
                );
                cells.push(Cell {
                    op: i,
                    who,
                    side,
                    status: status.as_u16(),
                    code: body["error"]["code"].as_str().unwrap_or("").to_owned(),
                    problem: judge(op, who, side, status, &body),
                });
            }
        }
    }
    let t = table(&ops, &cells);
    println!("{t}");
    let problems: Vec<String> = cells
        .iter()
        .filter_map(|c| {
            c.problem.as_ref().map(|p| {
                format!(
                    "{} as {:?} on {:?}: {p} (code {:?})",
                    ops[c.op].label(),
                    c.who,
                    c.side,
                    c.code
                )
            })
        })
        .collect();
    let allowed_cells = cells
        .iter()
        .filter(|c| (200..300).contains(&c.status))
        .count();
    println!(
        "{} operations, {} cells, {} allowed, {} refused",
        ops.len(),
        cells.len(),
        allowed_cells,
        cells.len() - allowed_cells
    );
    assert!(
        problems.is_empty(),
        "{} cell(s) wrong:\n{}\n\n{t}",
        problems.len(),
        problems.join("\n")
    );
    // The matrix must have exercised both outcomes for every identity (no tautology).
    for who in EVERYONE {
        let mine: Vec<&Cell> = cells.iter().filter(|c| c.who == who).collect();
        assert!(
            mine.iter().any(|c| (200..300).contains(&c.status)),
            "{who:?}"
        );
        assert!(mine.iter().any(|c| c.status >= 400), "{who:?}");
    }
    // Anonymous callers are refused everywhere outside the public list.
    for c in cells.iter().filter(|c| c.who == Who::Anonymous) {
        let op = &ops[c.op];
        if op.tag != "public" {
            assert_eq!(c.status, 401, "{}", op.label());
        }
    }
}

// ---- Sockets ----------------------------------------------------------------------------

async fn connect(url: String, headers: &[(&'static str, String)]) -> Result<Socket, u16> {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Socket {
            ws,
            pending: Default::default(),
        }),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("connect: {e}"),
    }
}

/// The close code the server ends the socket with (frames before it are skipped).
async fn close_code(s: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.ws.next()).await {
            Ok(Some(Ok(Ws::Close(f)))) => return f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// The first text frame, or the close code if the server closes first.
async fn first_frame(s: &mut Socket) -> Result<Value, Option<u16>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.ws.next()).await {
            Ok(Some(Ok(Ws::Text(t)))) => return Ok(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Ws::Close(f)))) => return Err(f.map(|f| u16::from(f.code))),
            Ok(Some(Ok(_))) => continue,
            _ => return Err(None),
        }
    }
}

fn agent_ws_url(app: &TestApp) -> String {
    format!("{}/api/v1/ws", app.base.replace("http://", "ws://"))
}

fn visitor_ws_url(app: &TestApp, key: &str) -> String {
    format!(
        "{}/api/v1/widget/ws?site_key={key}",
        app.base.replace("http://", "ws://")
    )
}

/// A socket that logs every frame it receives, so leaks can be looked for afterwards.
struct Probe {
    s: Socket,
    log: Vec<Value>,
}

impl Probe {
    fn new(s: Socket) -> Self {
        Probe { s, log: Vec::new() }
    }
    /// The first frame after log index `from` that matches `f` (waiting up to 5 s).
    async fn wait(&mut self, from: usize, f: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(v) = self.log.iter().skip(from).find(|v| f(v)) {
            return Some(v.clone());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self.s.next_within(left).await?;
            self.log.push(v.clone());
            if f(&v) {
                return Some(v);
            }
        }
    }
}

/// Whether a frame carries anything of conversation `id`.
fn mentions_conversation(f: &Value, id: i64) -> bool {
    f["type"] != "removed"
        && [
            &f["conversation_id"],
            &f["message"]["conversation_id"],
            &f["summary"]["conversation"]["id"],
            &f["conversation"]["id"],
        ]
        .iter()
        .any(|v| v.as_i64() == Some(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_subscriptions_follow_the_same_rules() {
    let fx = Fx::new().await;
    let w = fx.world(false).await;
    let app = &fx.app;
    let mut rows: Vec<(String, Who, Side, String, Option<String>)> = Vec::new();

    // Who may even open a socket: strangers and the wrong kind of caller are closed 4401.
    for who in EVERYONE {
        let (agent_sock, visitor_sock) = match who {
            Who::Anonymous => ("4401", "4401"),
            Who::VisitorA | Who::VisitorB => ("4401", "ready"),
            _ => ("ready", "4401"),
        };
        // Agent socket: cookie if an agent; otherwise a hello with whatever token we have.
        let got_agent = match fx.agent(who) {
            Some(a) => {
                let mut s = connect(
                    agent_ws_url(app),
                    &[("cookie", a.cookie.clone()), ("origin", app.origin.clone())],
                )
                .await
                .unwrap();
                let f = s.expect("ready").await;
                assert_eq!(f["agent_id"], a.id);
                "ready".to_string()
            }
            None => {
                let token = match who {
                    Who::VisitorA => json!(w.va.token),
                    Who::VisitorB => json!(w.vb.token),
                    _ => Value::Null,
                };
                let mut s = connect(agent_ws_url(app), &[("origin", app.origin.clone())])
                    .await
                    .unwrap();
                s.send(json!({"type": "hello", "token": token})).await;
                close_code(&mut s)
                    .await
                    .map_or("open".into(), |c| c.to_string())
            }
        };
        let token = match who {
            Who::VisitorA => w.va.token.clone(),
            Who::VisitorB => w.vb.token.clone(),
            Who::Anonymous => "not-a-token".into(),
            // An agent's session cookie value is not a visitor token.
            _ => fx
                .agent(who)
                .unwrap()
                .cookie
                .split('=')
                .nth(1)
                .unwrap()
                .to_owned(),
        };
        let mut s = connect(
            visitor_ws_url(app, &app.site_key),
            &[("origin", SHOP.into())],
        )
        .await
        .unwrap();
        s.send(json!({"type": "hello", "token": token})).await;
        let got_visitor = match first_frame(&mut s).await {
            Ok(f) if f["type"] == "ready" => "ready".to_string(),
            Ok(f) => format!("frame {}", f["type"]),
            Err(code) => code.map_or("closed".into(), |c| c.to_string()),
        };
        for (what, got, want) in [
            ("agent socket hello", got_agent, agent_sock),
            ("visitor socket hello", got_visitor, visitor_sock),
        ] {
            let problem = (got != want).then(|| format!("expected {want}"));
            rows.push((what.into(), who, Side::Own, got, problem));
        }
    }

    // Subscribe, send, read: own and someone else's conversation.
    let mut probes: Vec<(Who, Probe)> = Vec::new();
    for who in EVERYONE.into_iter().skip(1) {
        let s = match who {
            Who::VisitorA => w.va.ws(json!({})).await,
            Who::VisitorB => w.vb.ws(json!({})).await,
            _ => fx.agent(who).unwrap().ws().await,
        };
        probes.push((who, Probe::new(s)));
    }
    for (who, p) in probes.iter_mut() {
        let who = *who;
        for side in [Side::Own, Side::Other] {
            let conv = if (side == Side::Own) == who.own_is_a() {
                w.conv_a
            } else {
                w.conv_b
            };
            let may = !(side == Side::Other
                && matches!(who, Who::VisitorA | Who::VisitorB | Who::Restricted));
            let want = if may { "allow" } else { "not_found" };

            let from = p.log.len();
            p.s.send(json!({"type": "subscribe", "conversation_id": conv, "after": 0}))
                .await;
            let f = p
                .wait(from, |f| {
                    f["type"] == "error" || (f["type"] == "message" && f["conversation_id"] == conv)
                })
                .await;
            let got = classify(f);
            rows.push((
                "subscribe".into(),
                who,
                side,
                got.clone(),
                (got != want).then(|| format!("expected {want}")),
            ));

            let cid = format!("ws-{}", fx.next());
            let from = p.log.len();
            p.s.send(json!({"type": "send", "conversation_id": conv, "client_id": cid, "body": "over the socket"}))
                .await;
            let f = p
                .wait(from, |f| {
                    (f["type"] == "ack" || f["type"] == "error") && f["client_id"] == cid
                })
                .await;
            let got = classify(f);
            rows.push((
                "send".into(),
                who,
                side,
                got.clone(),
                (got != want).then(|| format!("expected {want}")),
            ));

            let from = p.log.len();
            p.s.send(json!({"type": "read", "conversation_id": conv, "seq": 1}))
                .await;
            let got = if who.is_visitor() && may {
                // Allowed visitor reads are silent on the visitor's own socket: look at
                // the stored receipt instead.
                let v = if who == Who::VisitorA { &w.va } else { &w.vb };
                eventually(|| async move {
                    let (_, list) = v.get("/api/v1/widget/conversations").await;
                    list.as_array()?
                        .iter()
                        .any(|c| c["id"] == conv && c["visitor_read_seq"] == 1)
                        .then_some(())
                })
                .await;
                "allow".to_string()
            } else {
                let f = p
                    .wait(from, |f| {
                        f["type"] == "error"
                            || (f["type"] == "read"
                                && f["reader"] == "me"
                                && f["conversation_id"] == conv)
                    })
                    .await;
                classify(f)
            };
            rows.push((
                "read".into(),
                who,
                side,
                got.clone(),
                (got != want).then(|| format!("expected {want}")),
            ));
        }
    }

    // Nothing of a refused conversation ever arrives: post in B, then in A, then in B
    // again; each socket waits for the last entry of a conversation it may see and must
    // have seen nothing of the ones it may not see before it.
    let (st, _) = w.vb.send(w.conv_b, "leak-b1", "secret of B").await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = w.va.send(w.conv_a, "leak-a", "secret of A").await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = w.vb.send(w.conv_b, "leak-b2", "more of B").await;
    assert_eq!(st, StatusCode::CREATED);
    let body_is = |f: &Value, b: &str| f["type"] == "message" && f["message"]["body"] == b;
    for (who, p) in probes.iter_mut() {
        let who = *who;
        let (sentinel, forbidden) = match who {
            Who::VisitorA | Who::Restricted => ("secret of A", Some(w.conv_b)),
            Who::VisitorB => ("more of B", Some(w.conv_a)),
            _ => ("more of B", None),
        };
        let got = p.wait(0, |f| body_is(f, sentinel)).await;
        let problem = if got.is_none() {
            Some(format!("never saw {sentinel:?}"))
        } else if let Some(bad) = forbidden {
            let upto = p.log.iter().position(|f| body_is(f, sentinel)).unwrap();
            p.log[..upto]
                .iter()
                .find(|f| mentions_conversation(f, bad))
                .map(|f| format!("LEAK: {f}"))
        } else {
            // Full access sees both conversations live.
            let saw_b = p.log.iter().any(|f| body_is(f, "secret of B"));
            let saw_a = p.log.iter().any(|f| body_is(f, "secret of A"));
            (!(saw_a && saw_b)).then(|| "a full-access socket missed an entry".to_string())
        };
        rows.push((
            "no leak".into(),
            who,
            Side::Other,
            if problem.is_some() { "leak?" } else { "none" }.into(),
            problem,
        ));
    }

    // Nothing refused was stored: B's visitor read receipt and messages are untouched
    // by A's attempts, and the "other" sends left no message behind.
    for (v, conv) in [(&w.va, w.conv_a), (&w.vb, w.conv_b)] {
        let (_, hist) = v
            .get(&format!("/api/v1/widget/conversations/{conv}/messages"))
            .await;
        let socket_sends = hist
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["body"] == "over the socket")
            .count();
        // A: visitor A and the restricted agent (own), the full agent, the admin and the
        // owner (their "other"). B: visitor B, the full agent, the admin and the owner.
        let want = if conv == w.conv_a { 5 } else { 4 };
        assert_eq!(socket_sends, want, "conversation {conv}: {hist}");
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:22} {:>7} {:>6} {:>12}",
        "socket check", "who", "side", "outcome"
    );
    for (what, who, side, got, problem) in &rows {
        let _ = writeln!(
            out,
            "{what:22} {:>7} {:>6} {:>12}{}",
            who.label(),
            format!("{side:?}"),
            got,
            problem
                .as_deref()
                .map(|p| format!("  <-- {p}"))
                .unwrap_or_default()
        );
    }
    println!("{out}");
    let bad = rows.iter().filter(|r| r.4.is_some()).count();
    assert_eq!(bad, 0, "{bad} socket cell(s) wrong:\n{out}");
    assert!(rows.len() >= 14 + 6 * 6 + 6, "{}", rows.len());
}

fn classify(f: Option<Value>) -> String {
    match f {
        Some(f) if f["type"] == "error" => f["code"].as_str().unwrap_or("?").to_owned(),
        Some(_) => "allow".into(),
        None => "silence".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_refuse_strangers_and_foreign_origins() {
    let (app, owner) = TestApp::start().await.with_owner().await;

    // Agent socket: a foreign page may not open it, even with a valid cookie (403 before
    // the upgrade).
    let r = connect(
        agent_ws_url(&app),
        &[("cookie", owner.cookie.clone()), ("origin", FOREIGN.into())],
    )
    .await;
    assert_eq!(r.err(), Some(403));
    // The widget's origin is not the inbox's either.
    let r = connect(
        agent_ws_url(&app),
        &[("cookie", owner.cookie.clone()), ("origin", SHOP.into())],
    )
    .await;
    assert_eq!(r.err(), Some(403));
    // Without a cookie: a hello without a token, with a wrong token, or another first
    // frame is closed 4401.
    for first in [
        json!({"type": "hello", "token": null}),
        json!({"type": "hello", "token": "not-a-real-token"}),
        json!({"type": "subscribe", "conversation_id": 1}),
        json!({"type": "hello", "token": owner.cookie.split('=').nth(1).unwrap()}),
    ] {
        let mut s = connect(agent_ws_url(&app), &[("origin", app.origin.clone())])
            .await
            .unwrap();
        s.send(first.clone()).await;
        assert_eq!(close_code(&mut s).await, Some(4401), "{first}");
    }
    // A bogus cookie is no cookie: the socket waits for a hello, and a bad one is refused.
    let mut s = connect(
        agent_ws_url(&app),
        &[
            ("cookie", "confab_session=forged".into()),
            ("origin", app.origin.clone()),
        ],
    )
    .await
    .unwrap();
    s.send(json!({"type": "hello", "token": null})).await;
    assert_eq!(close_code(&mut s).await, Some(4401));
    // Positive control: an API token in the hello works.
    let (st, tok) = owner
        .post("/api/v1/me/tokens", json!({"name": "integration"}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let mut s = connect(agent_ws_url(&app), &[("origin", app.origin.clone())])
        .await
        .unwrap();
    s.send(json!({"type": "hello", "token": tok["token"]}))
        .await;
    assert_eq!(s.expect("ready").await["agent_id"], owner.id);

    // Visitor socket: foreign origin 403; unknown site 404.
    let visitor = app.visitor().await;
    let r = connect(
        visitor_ws_url(&app, &app.site_key),
        &[("origin", FOREIGN.into())],
    )
    .await;
    assert_eq!(r.err(), Some(403));
    let r = connect(
        visitor_ws_url(&app, "no-such-key"),
        &[("origin", SHOP.into())],
    )
    .await;
    assert_eq!(r.err(), Some(404));
    // A token from another site (which allows the same origin) is refused on this site's
    // socket, and vice versa.
    let (st, other) = owner
        .post(
            "/api/v1/sites",
            json!({"name": "Other", "settings": {"allowed_origins": [SHOP]}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let other_key = other["public_key"].as_str().unwrap();
    let stranger = app.visitor_on(other_key).await;
    for (key, token) in [
        (app.site_key.as_str(), stranger.token.as_str()),
        (other_key, visitor.token.as_str()),
        (app.site_key.as_str(), "not-a-token"),
    ] {
        let mut s = connect(visitor_ws_url(&app, key), &[("origin", SHOP.into())])
            .await
            .unwrap();
        s.send(json!({"type": "hello", "token": token})).await;
        assert_eq!(close_code(&mut s).await, Some(4401), "{key} {token}");
    }
    // The first frame must be a hello.
    let mut s = connect(
        visitor_ws_url(&app, &app.site_key),
        &[("origin", SHOP.into())],
    )
    .await
    .unwrap();
    s.send(json!({"type": "ping"})).await;
    assert_eq!(close_code(&mut s).await, Some(4401));
    // Positive controls: the right token on the right site works on both sites.
    visitor.ws(json!({})).await;
    stranger.ws(json!({})).await;

    // Over HTTP too, a visitor's token does not work from a page the site does not allow.
    let mut foreign = visitor.clone();
    foreign.origin = FOREIGN.into();
    let (st, body) = foreign.get("/api/v1/widget/conversations").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "origin_not_allowed");
}

/// Lists and details must not show what a status code check cannot see: a 200 that lists
/// someone else's conversation is an allow too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_only_what_each_identity_may_see() {
    let fx = Fx::new().await;
    let w = fx.world(false).await;
    let ids = |v: &Value, ptr: &str| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r.pointer(ptr).and_then(Value::as_i64))
            .collect()
    };
    // Visitors list their own conversations only.
    let (_, a) = w.va.get("/api/v1/widget/conversations").await;
    assert_eq!(ids(&a, "/id"), vec![w.conv_a]);
    let (_, b) = w.vb.get("/api/v1/widget/conversations").await;
    assert_eq!(ids(&b, "/id"), vec![w.conv_b]);
    // A visitor's hello cannot resume someone else's conversation.
    let mut s =
        w.va.ws(json!({ w.conv_b.to_string(): 0, w.conv_a.to_string(): 0 }))
            .await;
    let (st, _) = w.vb.send(w.conv_b, "after-resume", "B only").await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = w.va.send(w.conv_a, "sentinel", "A sentinel").await;
    assert_eq!(st, StatusCode::CREATED);
    loop {
        let f = s
            .next_within(Duration::from_secs(5))
            .await
            .expect("the sentinel arrives");
        assert!(!mentions_conversation(&f, w.conv_b), "LEAK: {f}");
        if f["message"]["body"] == "A sentinel" {
            break;
        }
    }

    // The restricted agent's inbox, search and filters never show conversation B.
    let restricted = &fx.restricted;
    for q in [
        "/api/v1/conversations",
        "/api/v1/conversations?folder=others",
        "/api/v1/conversations?status=open",
        "/api/v1/conversations?q=hello",
        &format!("/api/v1/conversations?assignee={}", fx.full.id),
        &format!("/api/v1/conversations?site={}", fx.app.site_id),
    ] {
        let (st, rows) = restricted.get(q).await;
        assert_eq!(st, StatusCode::OK, "{q}: {rows}");
        let seen = ids(&rows, "/conversation/id");
        assert!(!seen.contains(&w.conv_b), "{q} shows B: {rows}");
    }
    let (_, rows) = restricted.get("/api/v1/conversations").await;
    assert!(ids(&rows, "/conversation/id").contains(&w.conv_a));
    let (_, rows) = fx.full.get("/api/v1/conversations").await;
    let seen = ids(&rows, "/conversation/id");
    assert!(seen.contains(&w.conv_a) && seen.contains(&w.conv_b));
    // Counts agree: the restricted agent has no Others' folder.
    let (_, counts) = restricted.get("/api/v1/folders").await;
    assert_eq!(counts["others"].as_i64().unwrap_or(0), 0, "{counts}");
    // Notifications name only conversations the agent may see.
    let (_, notes) = restricted.get("/api/v1/notifications").await;
    assert!(
        !ids(&notes, "/conversation_id").contains(&w.conv_b),
        "{notes}"
    );
    // The contact's side panel lists only visible conversations.
    let (_, c) = restricted
        .get(&format!("/api/v1/contacts/{}", w.va.contact_id))
        .await;
    assert_eq!(ids(&c["conversations"], "/id"), vec![w.conv_a]);

    // W3's identity secret signs customers: only admins and the owner see it.
    for (a, sees) in [
        (&fx.restricted, false),
        (&fx.full, false),
        (&fx.admin, true),
        (&fx.owner, true),
    ] {
        let (_, site) = a.get(&format!("/api/v1/sites/{}", fx.app.site_id)).await;
        assert_eq!(site["identity_secret"].is_string(), sees, "{site}");
        let (_, sites) = a.get("/api/v1/sites").await;
        for s in sites.as_array().unwrap() {
            assert_eq!(s["identity_secret"].is_string(), sees, "{s}");
        }
    }

    // No escalation: the profile has no role; admins make neither admins nor owners and
    // do not touch the owner; a cookie without the CSRF token changes nothing.
    let (st, b) = restricted
        .patch("/api/v1/me", json!({"role": "owner", "access": "full"}))
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
    for role in ["admin", "owner"] {
        let (st, b) = fx
            .admin
            .post("/api/v1/agents", json!({"email": format!("{role}2@example.com"), "name": "X", "password": PASSWORD, "role": role, "access": "full"}))
            .await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("owner_only")),
            "{role}"
        );
        let (st, b) = fx
            .admin
            .patch(
                &format!("/api/v1/agents/{}", fx.full.id),
                json!({"role": role}),
            )
            .await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("owner_only")),
            "{role}"
        );
    }
    let (st, b) = fx
        .admin
        .patch(
            &format!("/api/v1/agents/{}", fx.owner.id),
            json!({"password": "another password"}),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("owner_only"))
    );
    let (st, b) = fx
        .owner
        .patch(
            &format!("/api/v1/agents/{}", fx.owner.id),
            json!({"role": "agent"}),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("owner_only"))
    );
    let (st, b) = fx
        .raw(
            "PUT",
            &format!("/api/v1/conversations/{}/tags", w.conv_a),
            &vec![("cookie", fx.owner.cookie.clone())],
            &Body::Json(json!({"tags": ["csrf"]})),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf_failed"))
    );
    let (_, d) = fx
        .owner
        .get(&format!("/api/v1/conversations/{}", w.conv_a))
        .await;
    assert!(
        !d["conversation"]["tags"].to_string().contains("csrf"),
        "{d}"
    );
}
