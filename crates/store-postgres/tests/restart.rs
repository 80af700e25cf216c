//! Surviving PostgreSQL going away: calls fail with `Unavailable` (the server's 503) while
//! it is gone, and succeed again once it is back, with no new store.
//!
//! The shared test server is not restarted (others use it); instead the store talks to it
//! through a TCP proxy that this test stops (connections reset, port closed) and starts
//! again on the same port, which is what a restart looks like from the client's side. A
//! second case terminates the store's server processes with `pg_terminate_backend`, which
//! is what its connections see when PostgreSQL shuts down.

mod common;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::TestDb;
use confab_domain::text::MessageBody;
use confab_domain::*;
use confab_store::*;
use confab_store_postgres::{PgOptions, PgStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A TCP forwarder standing in for the PostgreSQL server.
struct Proxy {
    addr: SocketAddr,
    target: String,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let p = Proxy {
            addr,
            target,
            tasks: Arc::default(),
        };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// The server is down: every connection is cut and new ones are refused.
    async fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        // Aborted tasks drop their sockets (and the listener) on their next poll.
        for _ in 0..100 {
            if TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the proxy's port stayed open");
    }

    /// The server is back, on the same address.
    async fn restart(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

/// `url` pointing at `addr` instead of its own host and port.
fn via(url: &str, addr: SocketAddr) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let end = url[authority..]
        .find(['/', '?'])
        .map_or(url.len(), |i| authority + i);
    let host_start = url[authority..end]
        .rfind('@')
        .map_or(authority, |i| authority + i + 1);
    format!("{}{}{}", &url[..host_start], addr, &url[end..])
}

fn options() -> PgOptions {
    PgOptions {
        max_connections: 4,
        min_connections: 1,
        acquire_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    }
}

fn post(conv: &Conversation, client_id: &str) -> NewMessage {
    NewMessage {
        conversation_id: conv.id,
        author: Author::Visitor {
            contact_id: conv.contact_id,
        },
        kind: MessageKind::Text,
        body: MessageBody::parse("hello", false).unwrap(),
        client_id: Some(client_id.into()),
        attachment_id: None,
        mentions: vec![],
        reopen_policy: ReopenPolicy::Reopen,
        handoff_if_new: None,
        notify: Default::default(),
        now: Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap(),
    }
}

async fn conversation(s: &dyn Store) -> Conversation {
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
    let site = s
        .create_site(NewSite {
            name: "shop".into(),
            public_key: "k".into(),
            identity_secret: "s".into(),
            settings: SiteSettings::default(),
            now,
        })
        .await
        .unwrap();
    let contact = s
        .create_contact(NewContact {
            site_id: Some(site.id),
            now: Some(now),
            ..Default::default()
        })
        .await
        .unwrap();
    s.start_conversation(NewConversation {
        site_id: site.id,
        contact_id: contact.id,
        channel: Channel::Web,
        start_url: None,
        handoff: None,
        notify: Default::default(),
        notify_preview: String::new(),
        now,
    })
    .await
    .unwrap()
    .conversation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_unavailable_while_postgres_is_down_and_work_once_it_is_back() {
    let db = TestDb::create().await;
    let pg = PgConnectOptions::from_str(&db.url).unwrap();
    let proxy = Proxy::start(format!("{}:{}", pg.get_host(), pg.get_port())).await;
    let store = PgStore::connect_with(&via(&db.url, proxy.addr), options())
        .await
        .unwrap();
    let conv = conversation(&store).await;
    assert!(store.post_message(post(&conv, "1")).await.unwrap().created);

    proxy.stop().await;
    let started = Instant::now();
    let down = store.post_message(post(&conv, "2")).await;
    assert!(
        matches!(down, Err(StoreError::Unavailable(_))),
        "a post while PostgreSQL is down is Unavailable, got {down:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it fails within the acquire timeout, took {:?}",
        started.elapsed()
    );
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.conversation(conv.id).await,
        Err(StoreError::Unavailable(_))
    ));

    proxy.restart().await;
    store.ping().await.expect("the pool reconnects by itself");
    let p = store.post_message(post(&conv, "2")).await.unwrap();
    assert!(p.created, "the failed post was not stored, its retry is");
    assert_eq!(p.message.seq, 2, "no seq was lost to the outage");
    let all = store.messages(conv.id, 0, 100, false).await.unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);

    // Connections cut while idle (a restart between two requests) are replaced unnoticed.
    proxy.stop().await;
    proxy.restart().await;
    assert!(store.post_message(post(&conv, "3")).await.unwrap().created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_while_postgres_is_down_is_unavailable() {
    let db = TestDb::create().await;
    let pg = PgConnectOptions::from_str(&db.url).unwrap();
    let proxy = Proxy::start(format!("{}:{}", pg.get_host(), pg.get_port())).await;
    proxy.stop().await;
    let r = PgStore::connect_with(&via(&db.url, proxy.addr), options()).await;
    assert!(
        matches!(r, Err(StoreError::Unavailable(_))),
        "got {:?}",
        r.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_terminated_by_the_server_are_replaced() {
    let db = TestDb::create().await;
    let store = PgStore::connect_with(&db.url, options()).await.unwrap();
    let conv = conversation(&store).await;
    assert!(store.post_message(post(&conv, "1")).await.unwrap().created);
    // What every client connection sees when PostgreSQL shuts down (SQLSTATE 57P01).
    let mut admin = PgConnection::connect(&common::admin_url()).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()) t",
    )
    .bind(&db.name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
    assert!(killed >= 1, "the store had a connection to terminate");
    let p = store.post_message(post(&conv, "2")).await.unwrap();
    assert_eq!((p.created, p.message.seq), (true, 2));
}
