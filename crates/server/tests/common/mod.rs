//! The test harness: a real server on an ephemeral port, and small clients for agents and
//! visitors that speak HTTP and WebSocket to it. Waits on conditions, never on sleeps.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use confab_api::{ApiSettings, AppBuilder, AppState};
use confab_store::Store;
use confab_store_sqlite::SqliteStore;
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    pub origin: String,
    pub state: AppState,
    pub site_key: String,
    pub site_id: i64,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        let store = SqliteStore::open(&dir.path().join("confab.db"))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let origin = format!("http://{addr}");
        let settings = ApiSettings {
            data_dir: dir.path().to_path_buf(),
            public_origin: Some(origin.clone()),
            heartbeat: Duration::from_secs(5),
            ..ApiSettings::default()
        };
        let store: Arc<dyn Store> = Arc::new(store);
        let state = AppBuilder::new(store, settings).build();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = state.clone();
        let task = tokio::spawn(async move {
            confab_api::serve(listener, s, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let app = TestApp {
            base: origin.clone(),
            origin,
            state,
            site_key: String::new(),
            site_id: 0,
            dir,
            stop: Some(tx),
            task: Some(task),
        };
        app.wait_ready().await;
        app
    }

    pub async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become ready");
    }

    /// Creates the owner (first run) and a site allowing this server's origin.
    pub async fn with_owner(mut self) -> (Self, Agent) {
        let owner = self.setup_owner("owner@example.com", "Olga Owner").await;
        let (st, site) = owner.post("/api/v1/sites", json!({"name": "Shop", "settings": {"allowed_origins": ["https://shop.example.com"]}})).await;
        assert_eq!(st, StatusCode::CREATED, "{site}");
        self.site_key = site["public_key"].as_str().unwrap().to_owned();
        self.site_id = site["id"].as_i64().unwrap();
        (self, owner)
    }

    pub async fn setup_owner(&self, email: &str, name: &str) -> Agent {
        let (http, jar) = client();
        let r = http
            .post(format!("{}/api/v1/setup", self.base))
            .json(&json!({"email": email, "name": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let me: Value = r.json().await.unwrap();
        Agent::from_me(self, http, &jar, me)
    }

    pub async fn login(&self, email: &str) -> Agent {
        let (http, jar) = client();
        let r = http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "login {email}");
        let me: Value = r.json().await.unwrap();
        Agent::from_me(self, http, &jar, me)
    }

    /// Creates an agent through the owner and signs them in.
    pub async fn agent(
        &self,
        admin: &Agent,
        email: &str,
        name: &str,
        role: &str,
        access: &str,
        available: bool,
    ) -> Agent {
        let (st, body) = admin
            .post("/api/v1/agents", json!({"email": email, "name": name, "password": PASSWORD, "role": role, "access": access}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        let a = self.login(email).await;
        if available {
            a.set_available(true).await;
        }
        a
    }

    pub async fn visitor(&self) -> Visitor {
        self.visitor_on(&self.site_key.clone()).await
    }

    pub async fn visitor_on(&self, site_key: &str) -> Visitor {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/api/v1/widget/sessions", self.base))
            .header("origin", "https://shop.example.com")
            .json(&json!({"site_key": site_key}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        Visitor {
            base: self.base.clone(),
            http,
            token: v["token"].as_str().unwrap().to_owned(),
            contact_id: v["contact"]["id"].as_i64().unwrap(),
            site_key: site_key.to_owned(),
            origin: "https://shop.example.com".into(),
        }
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn client() -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    (
        reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .build()
            .unwrap(),
        jar,
    )
}

async fn call(
    http: &reqwest::Client,
    method: Method,
    url: String,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let st = r.status();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (st, v)
}

/// A signed-in agent (session cookie + CSRF token).
#[derive(Clone)]
pub struct Agent {
    pub base: String,
    pub http: reqwest::Client,
    pub csrf: String,
    pub id: i64,
    pub cookie: String,
    pub me: Value,
}

impl Agent {
    fn from_me(
        app: &TestApp,
        http: reqwest::Client,
        jar: &reqwest::cookie::Jar,
        me: Value,
    ) -> Self {
        use reqwest::cookie::CookieStore;
        // reqwest keeps the cookie; the socket needs it too, so read it back from the jar.
        let url: reqwest::Url = app.base.parse().unwrap();
        let jar_cookie = jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Agent {
            base: app.base.clone(),
            csrf: me["csrf_token"].as_str().unwrap().to_owned(),
            id: me["agent"]["id"].as_i64().unwrap(),
            http,
            cookie: jar_cookie,
            me,
        }
    }

    pub async fn req(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call(
            &self.http,
            method,
            format!("{}{path}", self.base),
            &[("x-csrf-token", self.csrf.clone())],
            body,
        )
        .await
    }
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.req(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.req(Method::DELETE, path, None).await
    }

    pub async fn set_available(&self, available: bool) {
        let (st, _) = self
            .put("/api/v1/me/availability", json!({"available": available}))
            .await;
        assert_eq!(st, StatusCode::OK);
    }

    pub async fn send(&self, conv: i64, client_id: &str, body: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/conversations/{conv}/messages"),
            json!({"client_id": client_id, "body": body}),
        )
        .await
    }

    pub async fn ws(&self) -> Socket {
        let url = format!("{}/api/v1/ws", self.base.replace("http://", "ws://"));
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("cookie", self.cookie.parse().unwrap());
        req.headers_mut()
            .insert("origin", self.base.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut s = Socket {
            ws,
            pending: Default::default(),
        };
        let ready = s.expect("ready").await;
        assert_eq!(ready["agent_id"].as_i64(), Some(self.id));
        s
    }
}

/// A visitor session.
#[derive(Clone)]
pub struct Visitor {
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
    pub contact_id: i64,
    pub site_key: String,
    pub origin: String,
}

impl Visitor {
    pub async fn req(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let headers = [
            ("authorization", format!("Bearer {}", self.token)),
            ("origin", self.origin.clone()),
        ];
        call(
            &self.http,
            method,
            format!("{}{path}", self.base),
            &headers,
            body,
        )
        .await
    }
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.req(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::POST, path, Some(body)).await
    }

    /// Starts (or finds) the visitor's conversation.
    pub async fn start(&self) -> i64 {
        let (st, c) = self
            .post(
                "/api/v1/widget/conversations",
                json!({"url": "https://shop.example.com/cart"}),
            )
            .await;
        assert!(
            st == StatusCode::CREATED || st == StatusCode::OK,
            "{st} {c}"
        );
        c["id"].as_i64().unwrap()
    }

    pub async fn send(&self, conv: i64, client_id: &str, body: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/widget/conversations/{conv}/messages"),
            json!({"client_id": client_id, "body": body}),
        )
        .await
    }

    pub async fn ws(&self, resume: Value) -> Socket {
        let url = format!(
            "{}/api/v1/widget/ws?site_key={}",
            self.base.replace("http://", "ws://"),
            self.site_key
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("origin", self.origin.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut s = Socket {
            ws,
            pending: Default::default(),
        };
        s.send(json!({"type": "hello", "token": self.token, "resume": resume}))
            .await;
        s.expect("ready").await;
        s
    }
}

/// A test socket. Frames that an `expect` did not ask for are kept, in order, for later
/// `expect`s: independent events (a count, a notification) may interleave either way.
pub struct Socket {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub pending: std::collections::VecDeque<Value>,
}

impl Socket {
    pub async fn send(&mut self, v: Value) {
        self.ws.send(Ws::Text(v.to_string().into())).await.unwrap();
    }

    /// The next JSON frame, or None on close or after `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Ws::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(Ws::Ping(_) | Ws::Pong(_) | Ws::Frame(_)))) => continue,
                Ok(Some(Ok(Ws::Binary(_)))) => panic!("binary frame"),
                _ => return None,
            }
        }
    }

    /// Skips frames until one of `type` arrives (5 s at most).
    pub async fn expect(&mut self, ty: &str) -> Value {
        self.expect_where(ty, |_| true).await
    }

    pub async fn expect_where(&mut self, ty: &str, f: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(|v| v["type"] == ty && f(v)) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(v) if v["type"] == ty && f(&v) => return v,
                Some(v) => self.pending.push_back(v),
                None => {
                    let seen: Vec<_> = self.pending.iter().map(|v| v["type"].clone()).collect();
                    panic!("no {ty} frame; saw {seen:?}")
                }
            }
        }
    }

    /// The frames received but not taken yet that match `f` (to check that none came).
    pub fn pending_where(&self, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.pending.iter().filter(|v| f(v)).cloned().collect()
    }

    /// The next frame of `type`, in order, among those not yet taken.
    pub async fn next_of(&mut self, ty: &str) -> Value {
        self.expect_where(ty, |_| true).await
    }

    /// Closes with code `1000`.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Polls `f` until it returns Some (5 s at most).
pub async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met in time");
}

pub fn hmac_hex(secret: &str, id: &str) -> String {
    use std::fmt::Write;
    let mac = hmac_sha256(secret.as_bytes(), id.as_bytes());
    let mut s = String::new();
    for b in mac {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}
