//! The ceiling's socket half: a bare WebSocket relay (tokio-tungstenite) that speaks just
//! enough of Confab's frames for the same clients to drive it — hello/ready, subscribe,
//! send → ack + message to every socket on the conversation, resume from an in-memory log,
//! ping/pong — with the work removed: no database, no auth, no rules, no list rows.
//! Run as its own process (`confab-bench relay`), like the server.
//!
//! With `--store DIR` it is both halves of the ceiling in one process: every `send` is
//! written through the storage ceiling's group commit ([`Storage`], same
//! durability as the server) and acked and relayed only once its batch is on disk, in
//! the order it arrived on its socket. That is the least a persisted, acknowledged,
//! delivered message costs on this machine; resume still reads the in-memory log.
//!
//! On the same port it answers the HTTP requests of the busy day's conversations (hyper
//! and axum, as the server): the widget script, its settings, a visitor session, page
//! views, the start of a conversation, its assignment and its close. Each write is one
//! row through the same group commit, answered once it is on disk; nothing is checked.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::ceiling::{Post, Storage};

#[derive(Default)]
struct Conv {
    log: Vec<Arc<str>>,
    subs: Vec<(u64, mpsc::UnboundedSender<Arc<str>>)>,
}

type Convs = Arc<Mutex<HashMap<i64, Conv>>>;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum In {
    Hello {
        token: Option<String>,
        #[serde(default)]
        resume: HashMap<String, i64>,
    },
    Subscribe {
        conversation_id: i64,
        after: i64,
    },
    Unsubscribe {
        conversation_id: i64,
    },
    Send {
        conversation_id: i64,
        client_id: String,
        body: String,
    },
    Ping,
    #[serde(other)]
    Other,
}

fn esc(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

pub async fn run(listen: &str, store: Option<&Path>) -> anyhow::Result<()> {
    let storage = store.map(Storage::open).transpose()?;
    let store = storage.as_ref().map(|s| s.tx.clone());
    let listener = TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let convs: Convs = Arc::default();
    // The same socket buffers as Confab's visitor socket, so the memory ceiling compares
    // like with like (the library's default read buffer alone is 128 KiB per socket).
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(4 * 1024);
    let routes = day_routes(store.clone());
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        let id = next_id;
        let (convs, store, routes) = (convs.clone(), store.clone(), routes.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            if !asks_for_socket(&stream).await {
                // Boxed: an idle socket's task stays the size of the socket's own future.
                let http = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(routes));
                let _ = Box::pin(http).await;
            } else if let Ok(ws) =
                tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            {
                conn(id, ws, convs, store).await;
            }
        });
    }
}

/// Whether a new connection asks for one of Confab's socket paths (the rest go to the
/// HTTP routes), read from its first bytes without taking them off the socket.
async fn asks_for_socket(stream: &TcpStream) -> bool {
    const SOCKETS: [&[u8]; 2] = [b"GET /api/v1/ws", b"GET /api/v1/widget/ws"];
    let mut head = [0u8; 21];
    for _ in 0..1000 {
        let n = match stream.peek(&mut head).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let seen = &head[..n];
        if SOCKETS.iter().any(|p| seen.starts_with(p)) {
            return true;
        }
        // Only the start of a request line so far, which may still become a socket's.
        if n == head.len() || !SOCKETS.iter().any(|p| p.starts_with(seen)) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

/// The busy day's HTTP requests, with the work removed.
fn day_routes(store: Option<mpsc::Sender<Post>>) -> Router {
    Router::new()
        .route("/widget.js", get(|| async { WIDGET.as_slice() }))
        .route(
            "/api/v1/widget/config",
            get(|| async { Json(json!({"name": "relay", "online": true})) }),
        )
        .route("/api/v1/widget/sessions", post(session))
        .route("/api/v1/widget/page-views", post(page_view))
        .route("/api/v1/widget/conversations", post(start))
        .route("/api/v1/conversations/{id}/{change}", post(change))
        .with_state(Arc::new(Day {
            store,
            next: AtomicI64::new(1),
        }))
}

/// As many bytes as Confab's widget script sends a browser (gzipped, about 15 KiB).
static WIDGET: [u8; 15 * 1024] = [b' '; 15 * 1024];

struct Day {
    store: Option<mpsc::Sender<Post>>,
    /// Session tokens and conversation ids.
    next: AtomicI64,
}

impl Day {
    /// Stores `row` under `conv` (one insert through the group commit) and waits until
    /// it is on disk.
    async fn store(&self, conv: i64, row: String) -> Result<(), StatusCode> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        let gone = StatusCode::SERVICE_UNAVAILABLE;
        store.send((conv, row, tx)).await.map_err(|_| gone)?;
        rx.await.map(drop).map_err(|_| gone)
    }
}

async fn session(State(day): State<Arc<Day>>, body: String) -> Result<Json<Value>, StatusCode> {
    let id = day.next.fetch_add(1, Relaxed);
    day.store(0, body).await?;
    Ok(Json(json!({"token": format!("v:day:{id}")})))
}

async fn page_view(State(day): State<Arc<Day>>, body: String) -> Result<StatusCode, StatusCode> {
    day.store(0, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn start(State(day): State<Arc<Day>>, body: String) -> Result<Json<Value>, StatusCode> {
    let id = day.next.fetch_add(1, Relaxed);
    day.store(id, body).await?;
    Ok(Json(json!({"id": id})))
}

/// An assignment or a close.
async fn change(
    State(day): State<Arc<Day>>,
    axum::extract::Path((id, change)): axum::extract::Path<(i64, String)>,
) -> Result<Json<Value>, StatusCode> {
    day.store(id, change).await?;
    Ok(Json(json!({"id": id})))
}

/// A send waiting for its commit: conversation, client id, body, the commit's answer.
type Pending = (i64, String, String, oneshot::Receiver<i64>);

/// Appends a message to its conversation's log, acks it to its sender and relays it to
/// every socket on the conversation.
fn deliver(
    convs: &Convs,
    author: &str,
    out_tx: &mpsc::UnboundedSender<Arc<str>>,
    conversation_id: i64,
    client_id: &str,
    body: &str,
) {
    let mut g = convs.lock().unwrap();
    let c = g.entry(conversation_id).or_default();
    let seq = c.log.len() + 1;
    let msg = format!(
        r#"{{"id":{seq},"conversation_id":{conversation_id},"seq":{seq},"visible_seq":{seq},"kind":"text","author":{{"kind":"{author}"}},"body":{}}}"#,
        esc(body)
    );
    let frame: Arc<str> = Arc::from(format!(
        r#"{{"type":"message","conversation_id":{conversation_id},"message":{msg}}}"#
    ));
    c.log.push(frame.clone());
    let _ = out_tx.send(Arc::from(format!(
        r#"{{"type":"ack","client_id":{},"message":{msg}}}"#,
        esc(client_id)
    )));
    c.subs.retain(|(_, s)| s.send(frame.clone()).is_ok());
}

async fn conn(
    id: u64,
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    convs: Convs,
    store: Option<mpsc::Sender<Post>>,
) {
    let (mut tx, mut rx) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Arc<str>>();
    let mut mine: Vec<i64> = Vec::new();
    let mut author = "visitor";
    // With a store: sends go to the group commit at once, and this socket's committed
    // ones are delivered in arrival order by one task (commits finish in that order).
    let mut committed: Option<mpsc::UnboundedSender<Pending>> = None;
    let subscribe = |cid: i64, after: i64, mine: &mut Vec<i64>| {
        let mut g = convs.lock().unwrap();
        let c = g.entry(cid).or_default();
        if !c.subs.iter().any(|(i, _)| *i == id) {
            c.subs.push((id, out_tx.clone()));
        }
        for m in c.log.iter().skip(after.max(0) as usize) {
            let _ = out_tx.send(m.clone());
        }
        if !mine.contains(&cid) {
            mine.push(cid);
        }
    };
    loop {
        tokio::select! {
            m = rx.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(f) = serde_json::from_str::<In>(&text) else { continue };
                match f {
                    In::Hello { token, resume } => {
                        if token.as_deref().is_some_and(|t| t.starts_with("a:")) {
                            author = "agent";
                        }
                        for (cid, after) in resume {
                            if let Ok(cid) = cid.parse() { subscribe(cid, after, &mut mine); }
                        }
                        let _ = out_tx.send(Arc::from(r#"{"type":"ready"}"#));
                    }
                    In::Subscribe { conversation_id, after } => subscribe(conversation_id, after, &mut mine),
                    In::Unsubscribe { conversation_id } => {
                        let mut g = convs.lock().unwrap();
                        if let Some(c) = g.get_mut(&conversation_id) { c.subs.retain(|(i, _)| *i != id); }
                        mine.retain(|c| *c != conversation_id);
                    }
                    In::Send { conversation_id, client_id, body } => match &store {
                        None => deliver(&convs, author, &out_tx, conversation_id, &client_id, &body),
                        Some(store) => {
                            let (rtx, rrx) = oneshot::channel();
                            if store.send((conversation_id, body.clone(), rtx)).await.is_err() { break; }
                            let done = committed.get_or_insert_with(|| {
                                let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Pending>();
                                let (convs, out_tx) = (convs.clone(), out_tx.clone());
                                tokio::spawn(async move {
                                    while let Some((cid, client_id, body, commit)) = done_rx.recv().await {
                                        if commit.await.is_err() { break; }
                                        deliver(&convs, author, &out_tx, cid, &client_id, &body);
                                    }
                                });
                                done_tx
                            });
                            let _ = done.send((conversation_id, client_id, body, rrx));
                        }
                    },
                    In::Ping => { let _ = out_tx.send(Arc::from(r#"{"type":"pong"}"#)); }
                    In::Other => {}
                }
            }
            Some(out) = out_rx.recv() => {
                if tx.send(Message::text(out.to_string())).await.is_err() { break; }
            }
        }
    }
    let mut g = convs.lock().unwrap();
    for cid in mine {
        if let Some(c) = g.get_mut(&cid) {
            c.subs.retain(|(i, _)| *i != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A connected pair: what the client writes, and the relay's end of it.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        (client, listener.accept().await.unwrap().0)
    }

    async fn asks(parts: &[&str]) -> bool {
        let (mut client, server) = pair().await;
        let writer = async {
            for p in parts {
                client.write_all(p.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let (asked, ()) = tokio::join!(asks_for_socket(&server), writer);
        // Peeked, not taken: the request is still there for whoever serves it.
        let mut head = [0u8; 3];
        let n = server.peek(&mut head).await.unwrap();
        assert_eq!(&head[..n], &parts[0].as_bytes()[..n]);
        asked
    }

    #[tokio::test]
    async fn sockets_and_requests_are_told_apart_by_their_request_line() {
        assert!(asks(&["GET /api/v1/ws HTTP/1.1\r\n"]).await);
        assert!(asks(&["GET /api/v1/widget/ws?site_key=k HTTP/1.1\r\n"]).await);
        // A request line that comes in pieces is waited for.
        assert!(asks(&["GET /api/v", "1/widget/w", "s?site_key=k HTTP/1.1\r\n"]).await);
        assert!(!asks(&["GET /widget.js HTTP/1.1\r\n"]).await);
        assert!(!asks(&["GET /api/v1/widget/config?site_key=k HTTP/1.1\r\n"]).await);
        assert!(!asks(&["POST /api/v1/widget/sessions HTTP/1.1\r\n"]).await);
        assert!(!asks(&["GET /api/v", "1/conversations/1 HTTP/1.1\r\n"]).await);
    }
}
