//! Clients that speak Confab's visitor and agent socket protocols (docs/protocol.md), one
//! task per socket, bound to a chosen 127.0.0.x source address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::util::{self, dec_t, dir_of};

pub type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket from `src` to `url` (ws://127.0.0.1:PORT/path).
pub async fn connect(
    url: &str,
    server: SocketAddr,
    src: IpAddr,
    headers: &[(&'static str, String)],
) -> anyhow::Result<Ws> {
    let sock = TcpSocket::new_v4()?;
    // A `bind` to port 0 makes the kernel pick a port there and then, searching its bind
    // table for one no socket on `src` holds, TIME_WAIT included. After a storm or two that
    // is tens of thousands of entries: the search took a third of the machine's CPU and
    // blocked this runtime's threads for seconds (docs/performance.md, round 15). With this
    // option the port is picked at `connect`, where only the full 4-tuple must be unique.
    setsockopt(&sock, IpBindAddressNoPort, &true).context("IP_BIND_ADDRESS_NO_PORT")?;
    sock.bind(SocketAddr::new(src, 0))
        .with_context(|| format!("bind {src}"))?;
    let stream = sock
        .connect(server)
        .await
        .with_context(|| format!("connect from {src}"))?;
    stream.set_nodelay(true)?;
    let mut req = url.into_client_request()?;
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse()?);
    }
    // tungstenite zeroes the free part of its read buffer before every read; at the
    // default 128 KiB that memset was a tenth of the machine's CPU in the busy day, taken
    // from the server under test. Frames here are small; the buffer still grows for a
    // large one.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await?;
    Ok(ws)
}

/// What every socket of one worker adds to.
pub struct Stats {
    pub v2a: Mutex<Histogram<u64>>,
    pub a2v: Mutex<Histogram<u64>>,
    pub ack: Mutex<Histogram<u64>>,
    pub acked_v: AtomicU64,
    pub acked_a: AtomicU64,
    pub deliv_v2a: AtomicU64,
    pub deliv_a2v: AtomicU64,
    pub dup: AtomicU64,
    pub gap: AtomicU64,
    pub errors: AtomicU64,
    pub resyncs: AtomicU64,
    pub closed: AtomicU64,
    pub frames_in: AtomicU64,
    /// Latest ack arrival (unix ns).
    pub last_ack_ns: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

impl Stats {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            v2a: Mutex::new(util::hist()),
            a2v: Mutex::new(util::hist()),
            ack: Mutex::new(util::hist()),
            acked_v: AtomicU64::new(0),
            acked_a: AtomicU64::new(0),
            deliv_v2a: AtomicU64::new(0),
            deliv_a2v: AtomicU64::new(0),
            dup: AtomicU64::new(0),
            gap: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            last_ack_ns: AtomicU64::new(0),
            first_error: Mutex::new(None),
        })
    }

    pub fn error(&self, what: String) {
        self.errors.fetch_add(1, Relaxed);
        let mut f = self.first_error.lock().unwrap();
        if f.is_none() {
            *f = Some(what);
        }
    }

    /// Clears the counters and histograms between steps.
    pub fn reset(&self) {
        for h in [&self.v2a, &self.a2v, &self.ack] {
            h.lock().unwrap().reset();
        }
        for c in [
            &self.acked_v,
            &self.acked_a,
            &self.deliv_v2a,
            &self.deliv_a2v,
            &self.dup,
            &self.gap,
            &self.errors,
            &self.resyncs,
            &self.closed,
            &self.frames_in,
            &self.last_ack_ns,
        ] {
            c.store(0, Relaxed);
        }
        *self.first_error.lock().unwrap() = None;
    }
}

#[derive(Deserialize)]
struct InFrame {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    conversation_id: Option<i64>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    message: Option<InMsg>,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct InMsg {
    seq: i64,
    #[serde(default)]
    visible_seq: Option<i64>,
    #[serde(default)]
    body: String,
}

/// What an acknowledged send came back with.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub seq: i64,
    pub visible_seq: Option<i64>,
}

pub type Done = oneshot::Sender<Result<Acked, String>>;

// ---------------------------------------------------------------- visitors

/// One visitor: its token and conversation, and what its socket has seen.
pub struct VisitorState {
    pub token: String,
    pub conv: i64,
    /// The last visible seq received in `conv`.
    pub last: AtomicI64,
    /// The seq the storm waits for.
    pub expected: AtomicI64,
}

pub enum VCmd {
    Send {
        client_id: String,
        body: String,
        done: Option<Done>,
    },
    /// Resolves once `last >= seq`.
    WaitSeq(i64, oneshot::Sender<()>),
    /// Close politely.
    Close,
}

/// Runs a visitor socket: hello (with the resume map), then frames until closed.
/// `ready` fires on the server's `ready`.
pub async fn run_visitor(
    mut ws: Ws,
    st: Arc<VisitorState>,
    mut rx: mpsc::UnboundedReceiver<VCmd>,
    stats: Arc<Stats>,
    ready: oneshot::Sender<()>,
) {
    let hello = |last: i64| {
        json!({"type":"hello","token":st.token,"resume":{st.conv.to_string(): last}}).to_string()
    };
    if ws
        .send(Message::text(hello(st.last.load(Relaxed))))
        .await
        .is_err()
    {
        stats.error("visitor hello send failed".into());
        return;
    }
    let mut ready = Some(ready);
    let mut waiting: HashMap<String, Done> = HashMap::new();
    let mut seq_waits: Vec<(i64, oneshot::Sender<()>)> = Vec::new();
    let mut ping = tokio::time::interval(Duration::from_secs(25));
    ping.tick().await;
    loop {
        tokio::select! {
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => {
                        if ready.is_some() {
                            stats.error(format!("visitor closed before ready: {c:?}"));
                        }
                        stats.closed.fetch_add(1, Relaxed);
                        break;
                    }
                    Some(Ok(_)) => continue, // ping/pong: tungstenite answers pings itself
                    Some(Err(e)) => { stats.error(format!("visitor socket: {e}")); break; }
                    None => { stats.closed.fetch_add(1, Relaxed); break; }
                };
                stats.frames_in.fetch_add(1, Relaxed);
                let Ok(f) = serde_json::from_str::<InFrame>(&text) else {
                    stats.error(format!("visitor: unparsable frame {}", text.as_str()));
                    continue;
                };
                match f.ty.as_str() {
                    "ready" => { if let Some(r) = ready.take() { let _ = r.send(()); } }
                    "message" => {
                        let Some(m) = f.message else { continue };
                        if f.conversation_id != Some(st.conv) { continue; }
                        let last = st.last.load(Relaxed);
                        if m.seq <= last {
                            stats.dup.fetch_add(1, Relaxed);
                            continue;
                        }
                        if m.seq > last + 1 {
                            stats.gap.fetch_add(1, Relaxed);
                        }
                        st.last.store(m.seq, Relaxed);
                        if dir_of(&m.body) == Some(b'a') {
                            if let Some(t) = dec_t(&m.body) {
                                util::record_since(&mut stats.a2v.lock().unwrap(), t);
                                stats.deliv_a2v.fetch_add(1, Relaxed);
                            }
                        }
                        let mut i = 0;
                        while i < seq_waits.len() {
                            if seq_waits[i].0 <= m.seq { let (_, tx) = seq_waits.swap_remove(i); let _ = tx.send(()); } else { i += 1; }
                        }
                    }
                    "ack" => {
                        let (Some(cid), Some(m)) = (f.client_id, f.message) else { continue };
                        if let Some(t) = dec_t(&m.body) {
                            util::record_since(&mut stats.ack.lock().unwrap(), t);
                        }
                        stats.acked_v.fetch_add(1, Relaxed);
                        stats.last_ack_ns.fetch_max(util::now_ns(), Relaxed);
                        if let Some(d) = waiting.remove(&cid) {
                            let _ = d.send(Ok(Acked { seq: m.seq, visible_seq: m.visible_seq }));
                        }
                    }
                    "error" => {
                        stats.error(format!("visitor error frame: {}", text.as_str()));
                        if let Some(d) = f.client_id.and_then(|c| waiting.remove(&c)) {
                            let _ = d.send(Err(f.code.unwrap_or_default()));
                        }
                    }
                    "resync" => {
                        stats.resyncs.fetch_add(1, Relaxed);
                        if ws.send(Message::text(hello(st.last.load(Relaxed)))).await.is_err() { break; }
                    }
                    _ => {}
                }
            }
            c = rx.recv() => match c {
                Some(VCmd::Send { client_id, body, done }) => {
                    let f = json!({"type":"send","conversation_id":st.conv,"client_id":client_id,"body":body});
                    if let Some(d) = done { waiting.insert(client_id, d); }
                    if ws.send(Message::text(f.to_string())).await.is_err() {
                        stats.error("visitor send failed".into());
                        break;
                    }
                }
                Some(VCmd::WaitSeq(want, tx)) => {
                    if st.last.load(Relaxed) >= want { let _ = tx.send(()); } else { seq_waits.push((want, tx)); }
                }
                Some(VCmd::Close) => { let _ = ws.close(None).await; break; }
                // Dropped: the socket goes away without a word (a storm's "drop").
                None => break,
            },
            _ = ping.tick() => {
                if ws.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() { break; }
            }
        }
    }
}

// ---------------------------------------------------------------- agents

pub enum ACmd {
    Subscribe(i64),
    Unsubscribe(i64),
    Send {
        conv: i64,
        client_id: String,
        body: String,
        done: Option<Done>,
    },
    /// Resolves once `n` visitor bench messages of `conv` arrived on this socket.
    WaitVisitorMsgs(i64, u64, oneshot::Sender<()>),
}

/// Runs an agent socket. With `hello_token`, sends the integration `hello` first (the
/// relay uses it); with a cookie, the server sends `ready` at once.
pub async fn run_agent(
    mut ws: Ws,
    hello_token: Option<String>,
    mut rx: mpsc::UnboundedReceiver<ACmd>,
    stats: Arc<Stats>,
    ready: oneshot::Sender<()>,
) {
    if let Some(t) = hello_token {
        if ws
            .send(Message::text(json!({"type":"hello","token":t}).to_string()))
            .await
            .is_err()
        {
            stats.error("agent hello failed".into());
            return;
        }
    }
    let mut ready = Some(ready);
    // Per open conversation: last seq, and visitor bench messages seen.
    let mut viewing: HashMap<i64, (i64, u64)> = HashMap::new();
    let mut waiting: HashMap<String, Done> = HashMap::new();
    let mut msg_waits: HashMap<i64, (u64, oneshot::Sender<()>)> = HashMap::new();
    let mut ping = tokio::time::interval(Duration::from_secs(25));
    ping.tick().await;
    loop {
        tokio::select! {
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => { stats.error(format!("agent socket closed: {c:?}")); break; }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => { stats.error(format!("agent socket: {e}")); break; }
                    None => { stats.error("agent socket ended".into()); break; }
                };
                stats.frames_in.fetch_add(1, Relaxed);
                // Most frames are list rows and counts; only a few kinds matter here.
                if !matches!(frame_type(&text), "message" | "ack" | "error" | "ready" | "resync") { continue; }
                let Ok(f) = serde_json::from_str::<InFrame>(&text) else {
                    stats.error(format!("agent: unparsable frame {}", text.as_str()));
                    continue;
                };
                match f.ty.as_str() {
                    "ready" => {
                        // Like an agent at work: the inbox shows the Mine folder, where each
                        // agent's conversations are (list rows of the others do not come).
                        let f = json!({"type":"view","folders":["mine"]});
                        if ws.send(Message::text(f.to_string())).await.is_err() { return; }
                        if let Some(r) = ready.take() { let _ = r.send(()); }
                    }
                    "message" => {
                        let (Some(cid), Some(m)) = (f.conversation_id, f.message) else { continue };
                        let Some(v) = viewing.get_mut(&cid) else { continue };
                        if m.seq <= v.0 { stats.dup.fetch_add(1, Relaxed); continue; }
                        if m.seq > v.0 + 1 { stats.gap.fetch_add(1, Relaxed); }
                        v.0 = m.seq;
                        if dir_of(&m.body) == Some(b'v') {
                            if let Some(t) = dec_t(&m.body) {
                                util::record_since(&mut stats.v2a.lock().unwrap(), t);
                                stats.deliv_v2a.fetch_add(1, Relaxed);
                            }
                            v.1 += 1;
                            if msg_waits.get(&cid).is_some_and(|(n, _)| v.1 >= *n) {
                                if let Some((_, tx)) = msg_waits.remove(&cid) { let _ = tx.send(()); }
                            }
                        }
                    }
                    "ack" => {
                        let (Some(cid), Some(m)) = (f.client_id, f.message) else { continue };
                        if let Some(t) = dec_t(&m.body) {
                            util::record_since(&mut stats.ack.lock().unwrap(), t);
                        }
                        stats.acked_a.fetch_add(1, Relaxed);
                        stats.last_ack_ns.fetch_max(util::now_ns(), Relaxed);
                        if let Some(d) = waiting.remove(&cid) {
                            let _ = d.send(Ok(Acked { seq: m.seq, visible_seq: m.visible_seq }));
                        }
                    }
                    "error" => {
                        stats.error(format!("agent error frame: {}", text.as_str()));
                        if let Some(d) = f.client_id.and_then(|c| waiting.remove(&c)) {
                            let _ = d.send(Err(f.code.unwrap_or_default()));
                        }
                    }
                    "resync" => {
                        stats.resyncs.fetch_add(1, Relaxed);
                        for (cid, (last, _)) in &viewing {
                            let f = json!({"type":"subscribe","conversation_id":cid,"after":last});
                            if ws.send(Message::text(f.to_string())).await.is_err() { return; }
                        }
                    }
                    _ => {}
                }
            }
            c = rx.recv() => {
                let frame = match c {
                    Some(ACmd::Subscribe(cid)) => {
                        let after = viewing.entry(cid).or_insert((0, 0)).0;
                        json!({"type":"subscribe","conversation_id":cid,"after":after})
                    }
                    Some(ACmd::Unsubscribe(cid)) => {
                        viewing.remove(&cid);
                        json!({"type":"unsubscribe","conversation_id":cid})
                    }
                    Some(ACmd::Send { conv, client_id, body, done }) => {
                        let f = json!({"type":"send","conversation_id":conv,"client_id":client_id,"body":body,"kind":"text","mentions":[]});
                        if let Some(d) = done { waiting.insert(client_id, d); }
                        f
                    }
                    Some(ACmd::WaitVisitorMsgs(cid, n, tx)) => {
                        if viewing.get(&cid).is_some_and(|v| v.1 >= n) { let _ = tx.send(()); } else { msg_waits.insert(cid, (n, tx)); }
                        continue;
                    }
                    None => { let _ = ws.close(None).await; break; }
                };
                if ws.send(Message::text(frame.to_string())).await.is_err() {
                    stats.error("agent send failed".into());
                    break;
                }
            }
            _ = ping.tick() => {
                if ws.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() { break; }
            }
        }
    }
}

/// The value of the first `"type"` key (the tag comes first in the server's frames).
fn frame_type(text: &str) -> &str {
    let Some(i) = text.find("\"type\":\"") else {
        return "";
    };
    let rest = &text[i + 8..];
    rest.find('"').map(|j| &rest[..j]).unwrap_or("")
}
