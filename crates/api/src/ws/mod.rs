//! The two WebSocket endpoints. One loop per socket: a `select!` over the client's frames,
//! the registry's events, acks of sends in flight, a heartbeat and shutdown.
//!
//! Delivery per conversation is driven by sequence numbers: the loop remembers the last
//! `seq` it sent; an event with the next one is sent, an older one is skipped, and a gap
//! (a lost hint) is filled from the store. So the client gets every entry exactly once and
//! in order, whatever the bus does.

pub mod agent;
mod lanes;
pub mod visitor;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes};
use axum::http::{HeaderMap, HeaderValue};
use futures::{Sink, SinkExt};
use serde::Serialize;
use tokio::sync::mpsc;

/// Frames larger than this are a protocol violation.
pub const MAX_FRAME: usize = 64 * 1024;

pub mod close {
    pub const UNAUTHENTICATED: u16 = 4401;
    pub const ORIGIN: u16 = 4403;
    pub const NO_HELLO: u16 = 4408;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
}

pub async fn send_json<S, T>(sink: &mut S, frame: &T) -> bool
where
    S: Sink<WsMessage> + Unpin,
    T: Serialize,
{
    match serde_json::to_string(frame) {
        Ok(text) => sink
            .send(WsMessage::Text(Utf8Bytes::from(text)))
            .await
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "could not serialize a frame");
            false
        }
    }
}

pub async fn send_close<S>(sink: &mut S, code: u16, reason: &'static str)
where
    S: Sink<WsMessage> + Unpin,
{
    let _ = sink
        .send(WsMessage::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// A copy of the request's headers that owns its bytes, for checks made after the upgrade.
/// The request's values are slices of hyper's read buffer for the connection (about
/// 16 KiB), which would otherwise stay allocated for as long as the copy lives.
pub fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(name, value)| {
            // Cannot fail: hyper accepts the same bytes in a value as `HeaderValue` does.
            let mut copy = HeaderValue::from_bytes(value.as_bytes()).ok()?;
            copy.set_sensitive(value.is_sensitive());
            Some((name.clone(), copy))
        })
        .collect()
}

/// Frames that work done off the socket loop (committed sends, failed reads) hands back to
/// the loop to send.
///
/// The channel is made on first use: most sockets never send, and a tokio channel allocates
/// a block of 32 slots as soon as it exists. Frames are boxed so that block holds pointers
/// rather than frames of a few hundred bytes each (about 10 KiB per socket otherwise).
pub struct Replies<F> {
    chan: Option<(ReplyTx<F>, mpsc::UnboundedReceiver<Box<F>>)>,
}

/// Where a task sends the frames it hands back; see [`Replies`].
pub type ReplyTx<F> = mpsc::UnboundedSender<Box<F>>;

impl<F> Default for Replies<F> {
    fn default() -> Self {
        Self { chan: None }
    }
}

impl<F> Replies<F> {
    /// A sender for a task that will reply. Unbounded, so the task never waits on the loop
    /// (see the visitor socket's `spawn_sender`).
    pub fn sender(&mut self) -> ReplyTx<F> {
        self.chan
            .get_or_insert_with(mpsc::unbounded_channel)
            .0
            .clone()
    }

    /// The next reply; pending until a sender has been asked for. Never `None` while `self`
    /// lives, since it keeps a sender.
    pub async fn recv(&mut self) -> Option<Box<F>> {
        match &mut self.chan {
            Some((_, rx)) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// What to do with the next client frame's text.
pub enum Incoming {
    Text(String),
    /// Pong or ping: the client is alive.
    Alive,
    /// Binary, oversized or unreadable: close with a policy violation.
    Violation,
    Closed,
}

pub fn classify(frame: Option<Result<WsMessage, axum::Error>>) -> Incoming {
    match frame {
        Some(Ok(WsMessage::Text(t))) if t.len() <= MAX_FRAME => Incoming::Text(t.to_string()),
        Some(Ok(WsMessage::Text(_))) | Some(Ok(WsMessage::Binary(_))) => Incoming::Violation,
        Some(Ok(WsMessage::Ping(_))) | Some(Ok(WsMessage::Pong(_))) => Incoming::Alive,
        // A frame over the upgrade's size limit (or otherwise malformed) fails the read
        // before we see it; the connection can still carry the 1008 close that says why.
        // (If the peer is already gone, sending the close just fails.)
        Some(Err(_)) => Incoming::Violation,
        Some(Ok(WsMessage::Close(_))) | None => Incoming::Closed,
    }
}

/// The stable code of a frame that did not parse.
pub fn frame_error(e: &serde_json::Error) -> (&'static str, String) {
    if e.is_syntax() || e.is_eof() {
        ("invalid_json", e.to_string())
    } else {
        ("invalid_frame", e.to_string())
    }
}
