//! Several nodes of the real binary on one PostgreSQL database and one NATS server: chat
//! across nodes, a node killed with SIGKILL, the races of two tabs and two agents, and
//! (run alone, see `pg_restart_under_load_loses_nothing`) PostgreSQL restarted under load.
//!
//! Each test gets a fresh database (`confab_mn_<random>`, dropped at the end) and its own
//! NATS subject, so tests running at the same time never see each other's events or
//! presence. PostgreSQL is the one at `CONFAB_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), NATS the one at `CONFAB_TEST_NATS_URL`
//! (default `nats://127.0.0.1:4222`); a test fails, never skips, when one is missing.
//!
//! `pg_restart_under_load_loses_nothing` restarts the machine's PostgreSQL server, which
//! breaks every other test using it at that moment: the main run leaves it out with
//! `-E 'not test(/pg_restart/)'` and it runs alone with
//! `cargo nextest run -p confab --test cluster -E 'test(/pg_restart/)'`.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Agent, Socket, Visitor, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
const SHOP: &str = "https://shop.example.com";

// ---------------------------------------------------------------------------------------
// The services: reachable, or a clear failure.

/// `host:port` of a URL such as `postgres://user@host:5432/db?x=y`.
fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    }
}

/// Panics with what to do when nothing answers at `url`'s host and port.
fn require_reachable(what: &str, url: &str, default_port: u16, start: &str, env: &str) {
    use std::net::ToSocketAddrs;
    let hp = host_port(url, default_port);
    let ok = hp.to_socket_addrs().ok().is_some_and(|mut addrs| {
        addrs.any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok())
    });
    assert!(
        ok,
        "{what} is not reachable at {hp}: start it ({start}) or set {env}"
    );
}

fn pg_admin_url() -> String {
    let url = std::env::var("CONFAB_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
    require_reachable(
        "PostgreSQL",
        &url,
        5432,
        "pg_ctlcluster <version> main start",
        "CONFAB_TEST_PG_URL",
    );
    url
}

fn nats_url() -> String {
    let url = std::env::var("CONFAB_TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned());
    require_reachable(
        "NATS",
        &url,
        4222,
        "nats-server -js",
        "CONFAB_TEST_NATS_URL",
    );
    url
}

/// `url` with its database name replaced by `db` (query parameters are kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    format!("{root}/{db}{query}")
}

/// Runs SQL with `psql` (the test binary links no PostgreSQL client of its own).
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql (install postgresql-client): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// A database that exists for as long as this value does.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    fn create() -> Self {
        let admin = pg_admin_url();
        let name = format!("confab_mn_{:016x}", rand::random::<u64>());
        // Concurrent CREATE DATABASE can trip over each other copying the template.
        let mut attempt = 0;
        loop {
            match psql(&admin, &format!("CREATE DATABASE {name}")) {
                Ok(_) => break,
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    eprintln!("CREATE DATABASE {name} failed ({e}); retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot create the test database {name}: {e}"),
            }
        }
        let url = with_database(&admin, &name);
        TestDb { admin, name, url }
    }

    fn query(&self, sql: &str) -> String {
        psql(&self.url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin, &sql) {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Nodes: the real binary.

struct Node {
    child: Child,
    base: String,
    name: String,
    log: PathBuf,
}

impl Node {
    /// SIGKILL, and wait for the process to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A database, a NATS subject of its own, and the nodes on them. Nodes are dropped
/// (killed) before the database.
struct Cluster {
    nodes: Vec<Node>,
    db: TestDb,
    nats: String,
    subject: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes. The first starts alone (it migrates the database and creates the demo
    /// site), the others together.
    async fn start(n: usize) -> Self {
        let nats = nats_url();
        let db = tokio::task::spawn_blocking(TestDb::create).await.unwrap();
        let subject = format!("confab.test.{:016x}", rand::random::<u64>());
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            nodes: vec![],
            db,
            nats,
            subject,
            dir,
        };
        let first = c.spawn("n1").await;
        c.nodes.push(first);
        let rest: Vec<_> = (2..=n).map(|i| c.spawn_owned(format!("n{i}"))).collect();
        for node in futures::future::join_all(rest).await {
            c.nodes.push(node);
        }
        c
    }

    fn spawn_owned(&self, name: String) -> impl std::future::Future<Output = Node> {
        let args = self.node_args(&name);
        async move { spawn_node(args).await }
    }

    async fn spawn(&self, name: &str) -> Node {
        spawn_node(self.node_args(name)).await
    }

    fn node_args(&self, name: &str) -> NodeArgs {
        NodeArgs {
            name: name.to_owned(),
            data_dir: self.dir.path().join(name),
            log: self.dir.path().join(format!("{name}.log")),
            database_url: self.db.url.clone(),
            nats_url: self.nats.clone(),
            subject: self.subject.clone(),
        }
    }

    fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
}

struct NodeArgs {
    name: String,
    data_dir: PathBuf,
    log: PathBuf,
    database_url: String,
    nats_url: String,
    subject: String,
}

async fn spawn_node(a: NodeArgs) -> Node {
    let node = tokio::task::spawn_blocking(move || {
        let log = std::fs::File::create(&a.log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&a.data_dir)
            .arg("--database-url")
            .arg(&a.database_url)
            .arg("--nats-url")
            .arg(&a.nats_url)
            .env("CONFAB_NATS__SUBJECT", &a.subject)
            .env(
                "CONFAB_NATS__NODE_ID",
                format!("{}-{:06x}", a.name, rand::random::<u32>() & 0xff_ffff),
            )
            .env("RUST_LOG", "warn")
            .env_remove("CONFAB_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start confab");
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("listening on ") {
                        break rest.trim().to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&a.log).unwrap_or_default();
                    panic!("node {} exited before listening:\n{log}", a.name);
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Node {
            child,
            base,
            name: a.name,
            log: a.log,
        }
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{}/healthz", node.base)).send().await {
            if r.status() == StatusCode::OK {
                return node;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {} not healthy:\n{}",
            node.name,
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Clients (the harness's `Agent`, `Visitor` and `Socket`, pointed at any node).

fn http_client(jar: Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(jar)
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

async fn agent_from(base: &str, path: &str, body: Value) -> Agent {
    use reqwest::cookie::CookieStore;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let http = http_client(jar.clone());
    let r = http
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path} on {base}");
    let me: Value = r.json().await.unwrap();
    // Cookies are per host, not per port: the same session works on every node.
    let url: reqwest::Url = base.parse().unwrap();
    let cookie = jar
        .cookies(&url)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Agent {
        base: base.to_owned(),
        csrf: me["csrf_token"].as_str().unwrap().to_owned(),
        id: me["agent"]["id"].as_i64().unwrap(),
        http,
        cookie,
        me,
    }
}

async fn setup_owner(node: &Node) -> Agent {
    agent_from(
        &node.base,
        "/api/v1/setup",
        json!({"email": "owner@example.com", "name": "Olga Owner", "password": PASSWORD}),
    )
    .await
}

async fn login(node: &Node, email: &str) -> Agent {
    agent_from(
        &node.base,
        "/api/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await
}

/// Creates a full-access agent through `admin` and signs them in on `node`.
async fn new_agent(admin: &Agent, node: &Node, email: &str, name: &str) -> Agent {
    let (st, body) = admin
        .post(
            "/api/v1/agents",
            json!({"email": email, "name": name, "password": PASSWORD, "role": "agent", "access": "full"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    login(node, email).await
}

/// The same agent (session) talking to another node.
fn agent_on(a: &Agent, node: &Node) -> Agent {
    Agent {
        base: node.base.clone(),
        ..a.clone()
    }
}

/// The same visitor (token) talking to another node.
fn visitor_on(v: &Visitor, node: &Node) -> Visitor {
    Visitor {
        base: node.base.clone(),
        ..v.clone()
    }
}

/// A site whose widget is allowed on the shop's origin; returns its public key.
async fn create_site(owner: &Agent, name: &str, wait_time_secs: u32) -> String {
    let (st, site) = owner
        .post(
            "/api/v1/sites",
            json!({"name": name, "settings": {"allowed_origins": [SHOP], "wait_time_secs": wait_time_secs}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{site}");
    site["public_key"].as_str().unwrap().to_owned()
}

async fn new_visitor(node: &Node, site_key: &str) -> Visitor {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let r = http
        .post(format!("{}/api/v1/widget/sessions", node.base))
        .header("origin", SHOP)
        .json(&json!({"site_key": site_key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    Visitor {
        base: node.base.clone(),
        http,
        token: v["token"].as_str().unwrap().to_owned(),
        contact_id: v["contact"]["id"].as_i64().unwrap(),
        site_key: site_key.to_owned(),
        origin: SHOP.into(),
    }
}

/// Polls `f` until it returns Some, failing with `what` after `within`.
async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `GET /api/v1/agents` (as `who`) says `agent` has a socket open.
async fn connected(who: &Agent, agent: i64) -> bool {
    let (st, list) = who.get("/api/v1/agents").await;
    assert_eq!(st, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x["agent"]["id"].as_i64() == Some(agent))
        .and_then(|x| x["connected"].as_bool())
        .unwrap_or_else(|| panic!("agent {agent} not listed: {list}"))
}

async fn widget_online(node: &Node, site_key: &str) -> bool {
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/widget/config?site_key={site_key}",
            node.base
        ))
        .header("origin", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let c: Value = r.json().await.unwrap();
    c["online"].as_bool().unwrap()
}

/// A conversation's whole timeline as an agent sees it, checked gap-free.
async fn timeline(agent: &Agent, conv: i64) -> Vec<Value> {
    let (st, msgs) = agent
        .get(&format!(
            "/api/v1/conversations/{conv}/messages?after=0&limit=1000"
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{msgs}");
    let msgs = msgs.as_array().unwrap().clone();
    let seqs: Vec<i64> = msgs.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "conversation {conv}: seq has a gap or repeats"
    );
    msgs
}

fn event_type(m: &Value) -> Option<&str> {
    m["event"]["type"].as_str()
}

// ---------------------------------------------------------------------------------------
// 5. Missing services are named.

#[test]
fn unreachable_services_fail_with_what_to_do() {
    for (what, url, port, env) in [
        ("NATS", "nats://127.0.0.1:1", 4222, "CONFAB_TEST_NATS_URL"),
        (
            "PostgreSQL",
            "postgres://postgres@127.0.0.1:1/postgres",
            5432,
            "CONFAB_TEST_PG_URL",
        ),
    ] {
        let err = std::panic::catch_unwind(|| {
            require_reachable(what, url, port, "its service", env);
        })
        .expect_err("nothing listens on port 1");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.starts_with(&format!("{what} is not reachable at 127.0.0.1:1: start it")),
            "{msg}"
        );
        assert!(msg.contains(env), "{msg}");
    }
    assert_eq!(host_port("nats://127.0.0.1:4222", 4222), "127.0.0.1:4222");
    assert_eq!(host_port("nats://localhost", 4222), "localhost:4222");
    assert_eq!(
        host_port("postgres://u:p@db.example:6543/x?sslmode=disable", 5432),
        "db.example:6543"
    );
}

// ---------------------------------------------------------------------------------------
// 1. Three nodes, one conversation across them.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_chat_with_typing_receipts_and_presence() {
    let c = Cluster::start(3).await;
    let (n1, n2, n3) = (c.node(0), c.node(1), c.node(2));
    let owner = setup_owner(n1).await;
    let key = create_site(&owner, "Shop", 120).await;
    let ann = new_agent(&owner, n2, "ann@example.com", "Ann").await;
    let owner3 = agent_on(&owner, n3);

    // Presence: the owner watches from node 3 while Ann comes online on node 2.
    let mut owner_ws = owner3.ws().await;
    assert!(!connected(&owner3, ann.id).await);
    assert!(!widget_online(n3, &key).await, "nobody is available yet");
    let mut ann_ws = ann.ws().await;
    owner_ws
        .expect_where("presence", |f| {
            f["agent"]["id"].as_i64() == Some(ann.id) && f["connected"] == true
        })
        .await;
    ann.set_available(true).await;
    owner_ws
        .expect_where("presence", |f| {
            f["agent"]["id"].as_i64() == Some(ann.id) && f["available"] == true
        })
        .await;
    assert!(
        connected(&owner3, ann.id).await,
        "node 3 lists Ann connected"
    );
    wait_for(
        "the widget on node 3 says online",
        Duration::from_secs(5),
        || async { widget_online(n3, &key).await.then_some(()) },
    )
    .await;

    // The visitor is on node 1.
    let visitor = new_visitor(n1, &key).await;
    let conv = visitor.start().await;
    let mut v_ws = visitor.ws(json!({})).await;
    ann_ws
        .send(json!({"type": "subscribe", "conversation_id": conv, "after": 0}))
        .await;
    owner_ws
        .send(json!({"type": "subscribe", "conversation_id": conv, "after": 0}))
        .await;
    // Who is viewing, merged across nodes, as seen on node 3.
    owner_ws
        .expect_where("viewers", |f| {
            f["conversation_id"].as_i64() == Some(conv)
                && f["viewing"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|a| a.as_i64() == Some(ann.id)))
        })
        .await;

    // Visitor → agent.
    v_ws.send(json!({"type": "send", "conversation_id": conv, "client_id": "v-1", "body": "hello from node 1"}))
        .await;
    let ack = v_ws.expect_where("ack", |f| f["client_id"] == "v-1").await;
    let m = ann_ws
        .expect_where("message", |f| f["message"]["body"] == "hello from node 1")
        .await;
    assert_eq!(m["conversation_id"].as_i64(), Some(conv));
    let visitor_seq = m["message"]["seq"].as_i64().unwrap();
    owner_ws
        .expect_where("message", |f| f["message"]["body"] == "hello from node 1")
        .await;

    // Typing both ways.
    ann_ws
        .send(json!({"type": "typing", "conversation_id": conv, "typing": true, "kind": "text"}))
        .await;
    let t = v_ws.expect_where("typing", |f| f["typing"] == true).await;
    assert_eq!(t["author"]["kind"], "agent", "{t}");
    owner_ws
        .expect_where("viewers", |f| {
            f["typing"]
                .as_array()
                .is_some_and(|v| v.iter().any(|a| a.as_i64() == Some(ann.id)))
        })
        .await;
    v_ws.send(json!({"type": "typing", "conversation_id": conv, "typing": true}))
        .await;
    let t = ann_ws
        .expect_where("typing", |f| f["author"]["kind"] == "visitor")
        .await;
    assert_eq!(t["typing"], true);

    // Agent → visitor.
    ann_ws
        .send(json!({"type": "send", "conversation_id": conv, "client_id": "a-1", "body": "hi from node 2", "kind": "text", "mentions": []}))
        .await;
    let a_ack = ann_ws
        .expect_where("ack", |f| f["client_id"] == "a-1")
        .await;
    let vm = v_ws
        .expect_where("message", |f| f["message"]["body"] == "hi from node 2")
        .await;
    let agent_visible_seq = vm["message"]["seq"].as_i64().unwrap();
    assert!(agent_visible_seq > ack["message"]["seq"].as_i64().unwrap());

    // Read receipts both ways.
    v_ws.send(json!({"type": "read", "conversation_id": conv, "seq": agent_visible_seq}))
        .await;
    ann_ws
        .expect_where("read", |f| {
            f["conversation_id"].as_i64() == Some(conv) && f["reader"] == "visitor"
        })
        .await;
    let agent_seq = a_ack["message"]["seq"].as_i64().unwrap();
    assert!(agent_seq > visitor_seq);
    ann_ws
        .send(json!({"type": "read", "conversation_id": conv, "seq": agent_seq}))
        .await;
    let r = v_ws
        .expect_where("read", |f| f["conversation_id"].as_i64() == Some(conv))
        .await;
    assert!(r["seq"].as_i64().unwrap() >= ack["message"]["seq"].as_i64().unwrap());

    // What everyone saw is what the store has.
    let all = timeline(&owner3, conv).await;
    let bodies: Vec<&str> = all
        .iter()
        .filter(|m| m["kind"] == "text")
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["hello from node 1", "hi from node 2"]);
}

// ---------------------------------------------------------------------------------------
// 2. A node dies mid-conversation.

/// What a visitor's socket has shown for one conversation.
#[derive(Default, Debug)]
struct View {
    /// visible seq → message id, from `message` and `ack` frames.
    seen: BTreeMap<i64, i64>,
    /// The seqs of `message` frames, in the order they came.
    frames: Vec<i64>,
    acked: HashSet<String>,
}

impl View {
    fn record(&mut self, conv: i64, f: &Value) {
        let m = match f["type"].as_str() {
            Some("message") if f["conversation_id"].as_i64() == Some(conv) => {
                let seq = f["message"]["seq"].as_i64().unwrap();
                self.frames.push(seq);
                &f["message"]
            }
            Some("ack") => {
                self.acked
                    .insert(f["client_id"].as_str().unwrap().to_owned());
                &f["message"]
            }
            _ => return,
        };
        let (seq, id) = (m["seq"].as_i64().unwrap(), m["id"].as_i64().unwrap());
        if let Some(old) = self.seen.insert(seq, id) {
            assert_eq!(old, id, "seq {seq} shown as two different messages");
        }
    }

    /// The last seq up to which nothing is missing.
    fn contiguous(&self) -> i64 {
        let mut n = 0;
        while self.seen.contains_key(&(n + 1)) {
            n += 1;
        }
        n
    }
}

/// Reads frames into `view` until `done` says so (10 s at most).
async fn pump(ws: &mut Socket, view: &mut View, conv: i64, done: impl Fn(&View) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(view) {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws.next_within(left).await {
            Some(f) => view.record(conv, &f),
            None => panic!("socket closed or silent; view so far: {view:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_node_loses_nothing_and_its_timers_and_presence_move_on() {
    let mut c = Cluster::start(3).await;
    let owner = setup_owner(c.node(0)).await;
    let key = create_site(&owner, "Shop", 120).await;
    let quick_key = create_site(&owner, "Quick", 3).await;
    let ann = new_agent(&owner, c.node(1), "ann@example.com", "Ann").await;
    let bob = new_agent(&owner, c.node(0), "bob@example.com", "Bob").await;
    let owner2 = agent_on(&owner, c.node(1));
    let owner3 = agent_on(&owner, c.node(2));

    // Ann is available on node 2; Bob is connected only to node 1.
    let _ann_ws = ann.ws().await;
    ann.set_available(true).await;
    let _bob_ws = bob.ws().await;
    wait_for(
        "node 2 lists Bob connected",
        Duration::from_secs(5),
        || async { connected(&owner2, bob.id).await.then_some(()) },
    )
    .await;
    wait_for(
        "node 1 sees Ann (node 2) available",
        Duration::from_secs(5),
        || async { widget_online(c.node(0), &quick_key).await.then_some(()) },
    )
    .await;

    // The visitor chats through node 1; Ann answers through node 2.
    let visitor = new_visitor(c.node(0), &key).await;
    let conv = visitor.start().await;
    let mut ws = visitor.ws(json!({})).await;
    let mut view = View::default();
    let mut sent: Vec<String> = vec![];
    let ann_sent = std::cell::Cell::new(0);
    let ann_says = |n: usize| {
        let ann = ann.clone();
        async move {
            let (st, m) = ann
                .send(conv, &format!("a-{n}"), &format!("answer {n}"))
                .await;
            assert_eq!(st, StatusCode::CREATED, "{m}");
        }
    };
    for i in 0..10 {
        let id = format!("v-{i}");
        ws.send(json!({"type": "send", "conversation_id": conv, "client_id": id, "body": format!("question {i}")}))
            .await;
        sent.push(id.clone());
        pump(&mut ws, &mut view, conv, |v| v.acked.contains(&id)).await;
        if i % 3 == 0 {
            ann_says(ann_sent.get()).await;
            ann_sent.set(ann_sent.get() + 1);
        }
    }
    // A conversation on the quick site (3 s wait) starts on node 1, whose jobs poller has
    // not claimed its wait-time job when node 1 dies.
    let quick = new_visitor(c.node(0), &quick_key).await;
    let quick_conv = quick.start().await;
    let started = Instant::now();
    // Five more sends go out without waiting for their acks, and node 1 dies.
    for i in 10..15 {
        let id = format!("v-{i}");
        ws.send(json!({"type": "send", "conversation_id": conv, "client_id": id, "body": format!("question {i}")}))
            .await;
        sent.push(id);
    }
    c.nodes[0].kill();
    let killed = Instant::now();
    let killed_before_due = started.elapsed() < Duration::from_millis(2500);
    drop(ws);

    // While the visitor is away, Ann goes on talking.
    for _ in 0..3 {
        ann_says(ann_sent.get()).await;
        ann_sent.set(ann_sent.get() + 1);
    }

    // The visitor comes back on node 3 and resumes from what it has.
    let resume = view.contiguous();
    let unacked = sent.iter().filter(|id| !view.acked.contains(*id)).count();
    println!(
        "node 1 killed {:?} after the quick conversation started; {unacked} of {} sends unacknowledged; resuming from {resume}",
        killed - started,
        sent.len()
    );
    let v3 = visitor_on(&visitor, c.node(2));
    let mut ws = v3.ws(json!({ conv.to_string(): resume })).await;
    let mut after = View::default();
    // Unacknowledged sends are retried with the same client id.
    for (i, id) in sent.iter().enumerate() {
        if !view.acked.contains(id) {
            ws.send(json!({"type": "send", "conversation_id": conv, "client_id": id, "body": format!("question {i}")}))
                .await;
        }
    }
    pump(&mut ws, &mut after, conv, |a| {
        sent.iter()
            .all(|id| view.acked.contains(id) || a.acked.contains(id))
    })
    .await;
    let store = {
        let (st, msgs) = v3
            .get(&format!(
                "/api/v1/widget/conversations/{conv}/messages?after=0&limit=1000"
            ))
            .await;
        assert_eq!(st, StatusCode::OK, "{msgs}");
        msgs.as_array().unwrap().clone()
    };
    let last = store.last().unwrap()["seq"].as_i64().unwrap();
    pump(&mut ws, &mut after, conv, |a| {
        a.frames.last().is_some_and(|s| *s >= last)
    })
    .await;

    // The store: gap-free, every question and answer once, in the order sent.
    let seqs: Vec<i64> = store.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "visible seq has a gap"
    );
    let questions: Vec<&str> = store
        .iter()
        .filter_map(|m| m["client_id"].as_str())
        .collect();
    assert_eq!(questions, sent, "every question once, in order");
    let answers: Vec<&str> = store
        .iter()
        .filter(|m| m["author"]["kind"] == "agent" && m["kind"] == "text")
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..ann_sent.get()).map(|n| format!("answer {n}")).collect();
    assert_eq!(answers, expected, "every answer once, in order");
    // The socket on node 3 sent exactly what came after the resume point, in order.
    assert_eq!(
        after.frames,
        ((resume + 1)..=last).collect::<Vec<_>>(),
        "resumed from {resume}: nothing skipped, repeated or out of order"
    );
    // Both sockets together showed the store, message for message.
    for m in &store {
        let seq = m["seq"].as_i64().unwrap();
        let id = m["id"].as_i64().unwrap();
        let shown = view.seen.get(&seq).or(after.seen.get(&seq));
        assert_eq!(shown, Some(&id), "seq {seq}");
    }

    // Node 1's wait-time job fires once, on a surviving node. Had node 1 claimed it
    // before dying (only if it died after the job was due), its lease (60 s) must run out.
    let within = if killed_before_due {
        Duration::from_secs(15)
    } else {
        Duration::from_secs(75)
    };
    let db = &c.db;
    wait_for("the wait-time job of node 1 ran", within, || async {
        let left = db.query(&format!(
            "SELECT count(*) FROM jobs WHERE kind = 'wait_expiry' AND conversation_id = {quick_conv}"
        ));
        let offline = timeline(&owner2, quick_conv)
            .await
            .iter()
            .filter(|m| event_type(m) == Some("offline"))
            .count();
        (left == "0" && offline > 0).then_some(())
    })
    .await;
    let t = timeline(&owner3, quick_conv).await;
    let kinds: Vec<&str> = t.iter().filter_map(event_type).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "offline").count(),
        1,
        "exactly one offline event: {kinds:?}"
    );
    assert_eq!(kinds.first(), Some(&"online"), "{kinds:?}");

    // Bob was only on node 1: node 2 lets him go once node 1's heartbeat is stale.
    wait_for(
        "node 2 lists Bob disconnected",
        Duration::from_secs(22).saturating_sub(killed.elapsed()),
        || async { (!connected(&owner2, bob.id).await).then_some(()) },
    )
    .await;
    println!("Bob gone after {:?}", killed.elapsed());
    assert!(
        connected(&owner3, ann.id).await,
        "Ann (node 2) is still there"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Races through the real API on two nodes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_across_nodes_two_tabs_one_conversation_two_agents_one_assignee() {
    let c = Cluster::start(2).await;
    let (n1, n2) = (c.node(0), c.node(1));
    let owner = setup_owner(n1).await;
    let key = create_site(&owner, "Shop", 120).await;
    let ann = new_agent(&owner, n1, "ann@example.com", "Ann").await;
    let bob = new_agent(&owner, n2, "bob@example.com", "Bob").await;
    ann.set_available(true).await;
    bob.set_available(true).await;

    // Two tabs, one on each node, open the chat at the same moment.
    for round in 0..30 {
        let v1 = new_visitor(n1, &key).await;
        let v2 = visitor_on(&v1, n2);
        let body = json!({"url": "https://shop.example.com/cart"});
        let (a, b) = tokio::join!(
            v1.post("/api/v1/widget/conversations", body.clone()),
            v2.post("/api/v1/widget/conversations", body.clone()),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CREATED],
            "round {round}: {a:?} {b:?}"
        );
        assert_eq!(a.1["id"], b.1["id"], "round {round}: one conversation");
        let (st, list) = v2.get("/api/v1/widget/conversations").await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 1, "round {round}: {list}");
    }

    // Two agents, each on their own node, take the same conversation at the same moment.
    for round in 0..30 {
        let v = new_visitor(n2, &key).await;
        let conv = v.start().await;
        let path = format!("/api/v1/conversations/{conv}/assign");
        let (a, b) = tokio::join!(
            ann.post(&path, json!({"assignee_id": ann.id})),
            bob.post(&path, json!({"assignee_id": bob.id})),
        );
        let mut won = vec![];
        for ((st, body), who) in [(&a, ann.id), (&b, bob.id)] {
            match *st {
                StatusCode::OK => {
                    assert_eq!(body["assignee_id"].as_i64(), Some(who), "{body}");
                    won.push(who);
                }
                StatusCode::CONFLICT => {}
                _ => panic!("round {round}: {st} {body}"),
            }
        }
        assert!(!won.is_empty(), "round {round}: {a:?} {b:?}");
        let (st, detail) = ann.get(&format!("/api/v1/conversations/{conv}")).await;
        assert_eq!(st, StatusCode::OK);
        let assignee = detail["conversation"]["assignee_id"].as_i64();
        // The timeline agrees: one "joined" per assignment that succeeded, the last one
        // naming the assignee.
        let t = timeline(&agent_on(&bob, n1), conv).await;
        let joined: Vec<i64> = t
            .iter()
            .filter(|m| event_type(m) == Some("joined"))
            .map(|m| m["event"]["agent_id"].as_i64().unwrap())
            .collect();
        assert_eq!(joined.len(), won.len(), "round {round}: {joined:?} {won:?}");
        assert_eq!(
            joined.last().copied(),
            assignee,
            "round {round}: {joined:?}"
        );
        let mut w = won.clone();
        let mut j = joined.clone();
        w.sort();
        j.sort();
        assert_eq!(w, j, "round {round}");
    }
}

// ---------------------------------------------------------------------------------------
// 3. PostgreSQL restarted under load. Restarts the machine's PostgreSQL: run alone.

/// A send that may fail: Some((status, body)) or None for a connection error or time-out.
async fn try_post(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
) -> Option<(u16, Value)> {
    let r = http
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("origin", SHOP)
        .json(&body)
        .send()
        .await
        .ok()?;
    let st = r.status().as_u16();
    Some((st, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_restart_under_load_loses_nothing() {
    let cluster = tokio::task::spawn_blocking(|| {
        std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .expect("a Debian PostgreSQL cluster under /etc/postgresql")
    })
    .await
    .unwrap();
    let c = Cluster::start(3).await;
    let owner = setup_owner(c.node(0)).await;
    let key = create_site(&owner, "Shop", 120).await;

    // Six visitors, two per node, each sending as fast as it can and retrying a failed
    // send with the same client id, as the widget does.
    let mut visitors = vec![];
    for i in 0..6 {
        let node = c.node(i % 3);
        let v = new_visitor(node, &key).await;
        let conv = v.start().await;
        visitors.push((v, conv));
    }
    // client id → (conversation, seq) of every acknowledged send.
    let acked: Arc<Mutex<HashMap<String, (i64, i64)>>> = Arc::default();
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let phase = Arc::new(std::sync::atomic::AtomicUsize::new(0)); // 0 before, 1 during, 2 after
    let after_restart = Arc::new(Mutex::new(HashMap::<usize, usize>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = vec![];
    for (i, (v, conv)) in visitors.iter().cloned().enumerate() {
        let (acked, failures, phase, after_restart, stop) = (
            acked.clone(),
            failures.clone(),
            phase.clone(),
            after_restart.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::SeqCst;
            let mut n = 0;
            while !stop.load(SeqCst) {
                let id = format!("c{i}-{n}");
                let url = format!("{}/api/v1/widget/conversations/{conv}/messages", v.base);
                let body =
                    json!({"client_id": id, "body": format!("message {n} from visitor {i}")});
                match try_post(&v.http, url, &v.token, body).await {
                    Some((200 | 201, m)) => {
                        assert_eq!(m["conversation_id"].as_i64(), Some(conv), "{m}");
                        acked
                            .lock()
                            .unwrap()
                            .insert(id, (conv, m["seq"].as_i64().unwrap()));
                        if phase.load(SeqCst) == 2 {
                            *after_restart.lock().unwrap().entry(i).or_default() += 1;
                        }
                        n += 1;
                    }
                    other => {
                        let what = match &other {
                            Some((st, b)) => format!("{st} {}", b["error"]["code"]),
                            None => "connection error".into(),
                        };
                        assert!(
                            !matches!(other, Some((st, _)) if (400..500).contains(&st)),
                            "a send was refused: {what}"
                        );
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("phase {}: {what}", phase.load(SeqCst)));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    use std::sync::atomic::Ordering::SeqCst;
    wait_for(
        "200 sends acknowledged",
        Duration::from_secs(30),
        || async { (acked.lock().unwrap().len() >= 200).then_some(()) },
    )
    .await;
    phase.store(1, SeqCst);
    let before = acked.lock().unwrap().len();
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &cluster, "main", "restart"])
            .output()
            .expect("run pg_ctlcluster")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "pg_ctlcluster restart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "PostgreSQL restarted in {:?} with {before} sends acknowledged",
        t.elapsed()
    );
    phase.store(2, SeqCst);
    // Every visitor, on every node, gets 20 more sends through, with the same nodes.
    wait_for(
        "every visitor's sends succeed again after the restart",
        Duration::from_secs(60),
        || async {
            let m = after_restart.lock().unwrap();
            ((0..visitors.len()).all(|i| m.get(&i).copied().unwrap_or(0) >= 20)).then_some(())
        },
    )
    .await;
    stop.store(true, SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    println!(
        "{} sends acknowledged, {} failed and were retried: {:?}",
        acked.lock().unwrap().len(),
        failures.len(),
        failures.iter().take(10).collect::<Vec<_>>()
    );

    // Everything acknowledged is stored once, where the ack said, gap-free.
    let acked = acked.lock().unwrap().clone();
    let mut stored = HashSet::new();
    for (v, conv) in &visitors {
        let (st, msgs) = v
            .get(&format!(
                "/api/v1/widget/conversations/{conv}/messages?after=0&limit=10000"
            ))
            .await;
        assert_eq!(st, StatusCode::OK, "{msgs}");
        let msgs = msgs.as_array().unwrap();
        let seqs: Vec<i64> = msgs.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "conversation {conv} has a gap"
        );
        for m in msgs {
            if let Some(id) = m["client_id"].as_str() {
                assert!(stored.insert(id.to_owned()), "{id} stored twice");
                if let Some((c, seq)) = acked.get(id) {
                    assert_eq!(
                        (*c, *seq),
                        (*conv, m["seq"].as_i64().unwrap()),
                        "{id} moved"
                    );
                }
            }
        }
    }
    for id in acked.keys() {
        assert!(stored.contains(id), "acknowledged message {id} was lost");
    }
    // And the nodes are healthy without a restart of their own.
    for n in &c.nodes {
        let r = reqwest::get(format!("{}/healthz", n.base)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", n.name);
    }
}
