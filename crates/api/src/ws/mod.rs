//! The two WebSocket endpoints. One loop per socket: a `select!` over the client's frames,
//! the registry's events, acks of sends in flight, a heartbeat and shutdown.
//!
//! Delivery per conversation is driven by sequence numbers: the loop remembers the last
//! `seq` it sent; an event with the next one is sent, an older one is skipped, one further
//! ahead waits briefly for those before it (see [`ahead`]), and a gap that stays open (a
//! lost hint) is filled from the store. So the client gets every entry exactly once and in
//! order, whatever the bus does.

pub mod agent;
mod ahead;
mod lanes;
mod shared;
pub mod visitor;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes};
use axum::http::{HeaderMap, HeaderValue};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use confab_realtime::{Connection, Recv};
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

/// A frame as the text a socket sends.
pub fn encode<T: Serialize>(frame: &T) -> Option<Utf8Bytes> {
    match serde_json::to_string(frame) {
        Ok(text) => Some(Utf8Bytes::from(text)),
        Err(e) => {
            tracing::error!(error = %e, "could not serialize a frame");
            None
        }
    }
}

/// Queues a frame on the socket, after the ones queued before it; it goes out with the
/// loop's next flush (see [`Batched`]). False when the socket is gone.
pub async fn send_json<S, T>(sink: &mut Batched<S>, frame: &T) -> bool
where
    S: Sink<WsMessage> + Unpin,
    T: Serialize,
{
    match encode(frame) {
        Some(text) => send_text(sink, text).await,
        None => false,
    }
}

/// Queues an encoded frame, like [`send_json`]. The text is shared, not copied, so a frame
/// encoded once can go to many sockets.
pub async fn send_text<S>(sink: &mut Batched<S>, text: Utf8Bytes) -> bool
where
    S: Sink<WsMessage> + Unpin,
{
    sink.feed(WsMessage::Text(text)).await.is_ok()
}

/// A socket's writing half that writes in bursts. [`send_json`] only queues a frame (the
/// WebSocket library buffers it, writing to the connection once 4 KiB are waiting); the
/// socket loop calls [`Batched::flush_queued`] before it waits for more work, so every
/// frame it queued while handling what was ready — several events, a catch-up, the acks
/// that came back meanwhile — goes out with one flush rather than one write each. Frames
/// keep the order they were queued in. `send` (closes, pings) flushes everything queued
/// before it, too.
pub struct Batched<S> {
    sink: S,
    /// Frames were queued since the last flush.
    queued: bool,
}

impl<S: Sink<WsMessage> + Unpin> Batched<S> {
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            queued: false,
        }
    }

    /// Writes what is queued; false when the socket is gone.
    pub async fn flush_queued(&mut self) -> bool {
        !self.queued || self.flush().await.is_ok()
    }
}

impl<S: Sink<WsMessage> + Unpin> Sink<WsMessage> for Batched<S> {
    type Error = S::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Pin::new(&mut self.sink).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: WsMessage) -> Result<(), S::Error> {
        self.queued = true;
        Pin::new(&mut self.sink).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        let r = std::task::ready!(Pin::new(&mut self.sink).poll_flush(cx));
        if r.is_ok() {
            self.queued = false;
        }
        Poll::Ready(r)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Pin::new(&mut self.sink).poll_close(cx)
    }
}

/// A catch-up reads the store in pages, the first one small: most catch-ups (a socket that
/// missed a few entries, a conversation just opened) fit in it, and a small read is cheap
/// on every backend (SQLite runs one of at most 32 rows on the asking thread, without
/// sqlx's hand-offs). A longer backlog goes on in pages of [`CATCH_UP_PAGE`].
pub const CATCH_UP_FIRST: i64 = 32;
pub const CATCH_UP_PAGE: i64 = 500;

/// At most this many events are handled in one burst before the loop flushes and looks at
/// its other work (the client's frames, shutdown) again.
pub const BURST: usize = 64;

/// What a socket's session does with the registry's events (the agent's and the visitor's
/// differ only in these).
pub(crate) trait OnEvents {
    /// The frames the socket sends.
    type Frame: Serialize;
    /// Tells the client it missed events and must fetch again.
    fn resync() -> Self::Frame;
    /// Frames handed back by work done off the loop (acks of sends).
    fn replies(&mut self) -> &mut Replies<Self::Frame>;
    /// Handles one event; false when the socket must close.
    async fn on_event<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut Batched<S>,
        conn: &Connection<crate::events::HubEvent>,
        event: &Arc<crate::events::HubEvent>,
    ) -> bool;
}

/// Queues what is ready now, before the loop flushes and waits again: the replies and the
/// events that came while it handled its last branch. A send's ack and its own entry are
/// ready together (the send's task publishes the entry, then hands back the ack); when the
/// loop took one per turn, each went out with a flush, a `send` and a wake-up of the
/// client of its own (docs/performance.md, round 25). False when the socket must close.
pub(crate) async fn take_ready<H: OnEvents, S: Sink<WsMessage> + Unpin>(
    session: &mut H,
    tx: &mut Batched<S>,
    conn: &mut Connection<crate::events::HubEvent>,
) -> bool {
    while let Some(out) = session.replies().try_recv() {
        if !send_json(tx, &out).await {
            return false;
        }
    }
    match conn.try_recv() {
        // Boxed, as the loops box it: only a turn with events pays for the room it takes.
        Some(first) => Box::pin(on_burst(session, tx, conn, first)).await,
        None => true,
    }
}

/// Handles `first` and the events queued behind it (at most [`BURST`]), in order; the loop
/// then writes all their frames with one flush. False when the socket must close.
pub(crate) async fn on_burst<H: OnEvents, S: Sink<WsMessage> + Unpin>(
    session: &mut H,
    tx: &mut Batched<S>,
    conn: &mut Connection<crate::events::HubEvent>,
    first: Recv<crate::events::HubEvent>,
) -> bool {
    let mut next = Some(first);
    let mut handled = 0;
    while let Some(ev) = next {
        let ok = match ev {
            Recv::Event(e) => session.on_event(tx, conn, &e).await,
            Recv::Lagged => send_json(tx, &H::resync()).await,
            Recv::Closed => {
                send_close(tx, close::UNAUTHENTICATED, "session ended").await;
                false
            }
        };
        if !ok {
            return false;
        }
        handled += 1;
        next = if handled < BURST {
            conn.try_recv()
        } else {
            None
        };
    }
    true
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

    /// A reply that is already waiting, if any.
    pub fn try_recv(&mut self) -> Option<Box<F>> {
        self.chan.as_mut().and_then(|(_, rx)| rx.try_recv().ok())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{HubEvent, Typist};
    use confab_domain::ConversationId;
    use confab_realtime::{Registry, Topic};
    use std::convert::Infallible;

    /// A socket that records what reaches the connection: each flush is one write.
    #[derive(Default)]
    struct Wire {
        buffered: Vec<String>,
        writes: Vec<Vec<String>>,
    }

    impl Sink<WsMessage> for Wire {
        type Error = Infallible;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(mut self: Pin<&mut Self>, item: WsMessage) -> Result<(), Infallible> {
            let text = match item {
                WsMessage::Text(t) => t.to_string(),
                WsMessage::Close(c) => format!("close {}", c.map_or(0, |c| c.code)),
                other => format!("{other:?}"),
            };
            self.buffered.push(text);
            Ok(())
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<(), Infallible>> {
            let batch = std::mem::take(&mut self.buffered);
            self.writes.push(batch);
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            self.poll_flush(cx)
        }
    }

    #[tokio::test]
    async fn queued_frames_go_out_in_order_with_one_flush() {
        let mut tx = Batched::new(Wire::default());
        assert!(tx.flush_queued().await);
        assert!(tx.sink.writes.is_empty(), "nothing queued, nothing written");
        for i in 0..5 {
            assert!(send_json(&mut tx, &serde_json::json!({ "n": i })).await);
        }
        let shared = Utf8Bytes::from_static(r#"{"n":5}"#);
        assert!(send_text(&mut tx, shared.clone()).await);
        assert!(tx.sink.writes.is_empty(), "queued, not yet written");
        assert!(tx.flush_queued().await);
        let expected: Vec<String> = (0..6).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
        assert_eq!(tx.sink.writes, vec![expected]);
        assert!(tx.flush_queued().await);
        assert_eq!(tx.sink.writes.len(), 1, "no second write for nothing");
    }

    /// A socket session that sends each event's typing flag and hands back its replies.
    #[derive(Default)]
    struct Echo {
        replies: Replies<serde_json::Value>,
    }

    impl OnEvents for Echo {
        type Frame = serde_json::Value;
        fn resync() -> serde_json::Value {
            serde_json::json!("resync")
        }
        fn replies(&mut self) -> &mut Replies<serde_json::Value> {
            &mut self.replies
        }
        async fn on_event<S: Sink<WsMessage> + Unpin>(
            &mut self,
            tx: &mut Batched<S>,
            _: &Connection<HubEvent>,
            event: &Arc<HubEvent>,
        ) -> bool {
            match &**event {
                HubEvent::Typing { typing, .. } => {
                    send_json(tx, &serde_json::json!({ "typing": typing })).await
                }
                _ => true,
            }
        }
    }

    fn typing(on: bool) -> Arc<HubEvent> {
        Arc::new(HubEvent::Typing {
            conversation_id: ConversationId(1),
            typist: Typist::Visitor,
            typing: on,
            note: false,
        })
    }

    /// A send's ack and the event of its own entry are ready together; they go out with the
    /// loop's one flush, not one turn and one write each.
    #[tokio::test]
    async fn replies_and_events_ready_together_go_out_with_one_flush() {
        let registry = Registry::<HubEvent>::new(16);
        let mut conn = registry.connect(None);
        conn.subscribe(Topic::Conversation(ConversationId(1)));
        let mut session = Echo::default();
        let mut tx = Batched::new(Wire::default());

        assert!(take_ready(&mut session, &mut tx, &mut conn).await);
        assert!(tx.flush_queued().await);
        assert!(tx.sink.writes.is_empty(), "nothing ready, nothing written");

        let acks = session.replies().sender();
        registry.deliver(typing(true));
        acks.send(Box::new(serde_json::json!("ack 1"))).unwrap();
        acks.send(Box::new(serde_json::json!("ack 2"))).unwrap();
        registry.deliver(typing(false));
        assert!(take_ready(&mut session, &mut tx, &mut conn).await);
        assert!(tx.sink.writes.is_empty(), "queued, not yet written");
        assert!(tx.flush_queued().await);
        assert_eq!(
            tx.sink.writes,
            vec![vec![
                r#""ack 1""#.to_string(),
                r#""ack 2""#.to_string(),
                r#"{"typing":true}"#.to_string(),
                r#"{"typing":false}"#.to_string(),
            ]]
        );
        assert!(conn.try_recv().is_none(), "every ready event was taken");
    }

    #[tokio::test]
    async fn a_close_goes_out_after_the_frames_queued_before_it() {
        let mut tx = Batched::new(Wire::default());
        assert!(send_json(&mut tx, &serde_json::json!({ "n": 1 })).await);
        assert!(send_json(&mut tx, &serde_json::json!({ "n": 2 })).await);
        send_close(&mut tx, close::GOING_AWAY, "bye").await;
        assert_eq!(
            tx.sink.writes,
            vec![vec![
                r#"{"n":1}"#.to_string(),
                r#"{"n":2}"#.to_string(),
                "close 1001".to_string()
            ]]
        );
        assert!(tx.flush_queued().await);
        assert_eq!(tx.sink.writes.len(), 1);
    }
}
