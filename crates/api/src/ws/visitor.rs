//! The visitor socket (`/api/v1/widget/ws`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use confab_domain::*;
use confab_realtime::{Connection, Topic};
use futures::stream::{SplitSink, SplitStream};
use futures::{Sink, SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::ahead::{self, Ahead};
use super::{
    classify, close, frame_error, lanes, on_burst, owned_headers, send_close, send_json,
    take_ready, Batched, Incoming, OnEvents, Replies, ReplyTx, MAX_FRAME,
};
use crate::auth::{self, CurrentVisitor};
use crate::error::{ApiError, ApiResult};
use crate::events::{HubEvent, Typist};
use crate::extract::Query;
use crate::service;
use crate::state::AppState;
use crate::wire::*;

#[derive(Deserialize)]
pub struct WsQuery {
    site_key: String,
}

/// Upgrades after checking the site and the page's origin (W1).
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let site = state
        .site_by_key(&q.site_key)
        .await?
        .ok_or_else(|| ApiError::not_found("site"))?;
    auth::check_site_origin(&state, &headers, &site)?;
    // The hello checks the origin again; it needs the headers until then, not their buffer.
    let headers = owned_headers(&headers);
    Ok(ws
        .max_frame_size(MAX_FRAME)
        // The library's defaults (128 KiB read buffer per socket) dominate the memory of
        // many idle sockets. Visitors' frames are small: 1 KiB holds most in one read, and
        // the buffer grows for a larger one, which then takes a few reads.
        .read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| {
            // Split here rather than in `run`, whose future would otherwise keep room for
            // the whole `WebSocket` for as long as the socket is open.
            let (tx, rx) = socket.split();
            run(state, site.id, headers, tx, rx)
        })
        .into_response())
}

/// Why a socket did not open: the close code and reason.
type Refused = (u16, &'static str);

/// Waits for the hello, authenticates its token and subscribes the socket to the visitor's
/// conversations on this site, from where the client says it is.
///
/// Takes the request's headers so that they are gone once the socket is open.
async fn open(
    state: &AppState,
    site_id: SiteId,
    headers: HeaderMap,
    rx: &mut SplitStream<WebSocket>,
) -> Result<(Session, Connection<HubEvent>), Refused> {
    let hello = tokio::time::timeout(Duration::from_secs(10), rx.next()).await;
    let (token, resume) = match hello.map(classify) {
        Ok(Incoming::Text(t)) => match serde_json::from_str::<VisitorClientFrame>(&t) {
            Ok(VisitorClientFrame::Hello { token, resume }) => (token, resume),
            _ => return Err((close::UNAUTHENTICATED, "hello first")),
        },
        Err(_) => return Err((close::NO_HELLO, "no hello")),
        Ok(_) => return Err((close::POLICY, "hello first")),
    };
    let visitor = match auth::authenticate_visitor(state, &headers, &token).await {
        Ok(v) if v.site.id == site_id => v,
        _ => return Err((close::UNAUTHENTICATED, "unknown visitor")),
    };
    let mut s = Session {
        state: state.clone(),
        visitor: Arc::new(visitor),
        last: HashMap::new(),
        ahead: Ahead::default(),
        sends: None,
        replies: Replies::default(),
    };
    let conn = state.registry.connect(Some(s.visitor.token_hash.clone()));
    conn.subscribe(Topic::Visitor(s.visitor.session.contact_id));
    let convs = match state
        .store
        .visitor_conversations(s.visitor.session.contact_id)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "visitor socket could not load conversations");
            return Err((close::GOING_AWAY, "try again"));
        }
    };
    for c in convs.iter().filter(|c| c.site_id == site_id) {
        conn.subscribe(Topic::Conversation(c.id));
        let after = resume
            .get(&c.id.to_string())
            .copied()
            .unwrap_or(0)
            .clamp(0, c.last_visible_seq);
        s.last.insert(c.id, after);
    }
    Ok((s, conn))
}

async fn run(
    state: AppState,
    site_id: SiteId,
    headers: HeaderMap,
    tx: SplitSink<WebSocket, WsMessage>,
    mut rx: SplitStream<WebSocket>,
) {
    let mut tx = Batched::new(tx);
    // The opening and the handlers below are boxed: an idle socket's task waits in the loop
    // and should not keep room for the database futures they hold while they run.
    let (mut s, mut conn) = match Box::pin(open(&state, site_id, headers, &mut rx)).await {
        Ok(opened) => opened,
        Err((code, reason)) => return send_close(&mut tx, code, reason).await,
    };
    if !send_json(
        &mut tx,
        &VisitorServerFrame::Ready {
            contact_id: s.visitor.session.contact_id,
        },
    )
    .await
    {
        return;
    }
    let ids: Vec<ConversationId> = s.last.keys().copied().collect();
    for id in ids {
        if !Box::pin(s.catch_up(&mut tx, id)).await {
            return;
        }
    }

    let mut heartbeat = tokio::time::interval(state.settings.heartbeat);
    heartbeat.tick().await;
    let mut last_seen = Instant::now();
    loop {
        // Everything the last turn queued, and what came meanwhile, goes out at once (see
        // `Batched`, `take_ready`).
        if !take_ready(&mut s, &mut tx, &mut conn).await || !tx.flush_queued().await {
            break;
        }
        let held = s.ahead.deadline();
        tokio::select! {
            frame = rx.next() => match classify(frame) {
                Incoming::Text(t) => {
                    last_seen = Instant::now();
                    if !Box::pin(s.on_frame(&mut tx, &conn, &t)).await { break; }
                }
                Incoming::Alive => last_seen = Instant::now(),
                Incoming::Violation => { send_close(&mut tx, close::POLICY, "text frames up to 64 KiB").await; break; }
                Incoming::Closed => break,
            },
            // The replies behind it are taken with `take_ready`.
            Some(out) = s.replies.recv() => if !send_json(&mut tx, &out).await { break },
            ev = conn.recv() => if !Box::pin(on_burst(&mut s, &mut tx, &mut conn, ev)).await { break },
            _ = ahead::wait(held) => {
                let mut ok = true;
                for id in s.ahead.expired(Instant::now()) {
                    ok = Box::pin(s.catch_up(&mut tx, id)).await;
                    if !ok { break }
                }
                if !ok { break }
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > state.settings.heartbeat * 3 { break; }
                if tx.send(WsMessage::Ping(Default::default())).await.is_err() { break; }
            }
            _ = state.shutdown.cancelled() => { send_close(&mut tx, close::GOING_AWAY, "server shutting down").await; break; }
        }
    }
}

struct Session {
    state: AppState,
    /// Shared with the send worker and read tasks rather than copied into each.
    visitor: Arc<CurrentVisitor>,
    /// Per subscribed conversation, the last visible seq sent.
    last: HashMap<ConversationId, Seq>,
    /// Entries that came ahead of one still on its way, by visible seq.
    ahead: Ahead<Arc<HubEvent>>,
    /// This socket's sends (one lane per conversation, see [`lanes`]). The lanes start
    /// with the first send: most visitor sockets never send.
    sends: Option<mpsc::Sender<Send>>,
    /// Acks and errors from the send worker and read tasks.
    replies: Replies<VisitorServerFrame>,
}

struct Send {
    conversation_id: ConversationId,
    client_id: String,
    body: String,
    attachment_id: Option<AttachmentId>,
}

impl lanes::Laned for Send {
    fn lane(&self) -> ConversationId {
        self.conversation_id
    }
}

/// Starts the socket's send lanes (see [`lanes`]): the socket loop goes on delivering
/// events while sends commit.
fn spawn_sender(
    state: AppState,
    visitor: Arc<CurrentVisitor>,
    out: ReplyTx<VisitorServerFrame>,
) -> mpsc::Sender<Send> {
    lanes::spawn(
        move |s: Send| {
            let (state, visitor) = (state.clone(), visitor.clone());
            async move {
                let frame = match service::visitor_send(
                    &state,
                    &visitor,
                    s.conversation_id,
                    &s.client_id,
                    &s.body,
                    s.attachment_id,
                )
                .await
                {
                    Ok((message, _)) => VisitorServerFrame::Ack {
                        client_id: s.client_id,
                        message,
                    },
                    Err(e) => error_frame(e, Some(s.client_id)),
                };
                Box::new(frame)
            }
        },
        out,
    )
}

impl Session {
    /// Where to go on in a conversation when the client says it has everything up to
    /// `seq`: from there, or from what this socket already sent if that is further.
    fn resume_from(&mut self, id: ConversationId, seq: Seq) {
        let sent = self.last.get(&id).copied().unwrap_or(0);
        self.last.insert(id, seq.max(sent).max(0));
    }

    /// Sends `message`, the next visible entry of a conversation, and the entries held
    /// because they came ahead of it.
    async fn send_in_order<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut Batched<S>,
        message: &Message,
    ) -> bool {
        let id = message.conversation_id;
        let mut held: Option<Arc<HubEvent>>;
        let mut next = Some(message);
        while let Some(m) = next {
            let Some(vs) = m.visible_seq else { break };
            let Some(vm) = service::visitor_message(&self.state, m).await else {
                break;
            };
            self.last.insert(id, vs);
            let frame = VisitorServerFrame::Message {
                conversation_id: id,
                message: vm,
            };
            if !send_json(tx, &frame).await {
                return false;
            }
            held = self.ahead.take(id, vs + 1);
            next = match held.as_deref() {
                Some(HubEvent::Message { message }) => Some(message),
                _ => None,
            };
        }
        true
    }

    /// Sends everything after the last sent seq, from the store.
    async fn catch_up<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut Batched<S>,
        id: ConversationId,
    ) -> bool {
        self.ahead.forget(id);
        let mut limit = super::CATCH_UP_FIRST;
        loop {
            let after = self.last.get(&id).copied().unwrap_or(0);
            let batch = match self.state.store.messages(id, after, limit, true).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, conversation_id = %id, "catch-up failed; asking the client to resync");
                    return send_json(tx, &VisitorServerFrame::Resync).await;
                }
            };
            let n = batch.len();
            for m in &batch {
                if let Some(vm) = service::visitor_message(&self.state, m).await {
                    self.last.insert(id, vm.seq);
                    if !send_json(
                        tx,
                        &VisitorServerFrame::Message {
                            conversation_id: id,
                            message: vm,
                        },
                    )
                    .await
                    {
                        return false;
                    }
                }
            }
            if (n as i64) < limit {
                return true;
            }
            limit = super::CATCH_UP_PAGE;
        }
    }
}

impl OnEvents for Session {
    type Frame = VisitorServerFrame;
    fn resync() -> VisitorServerFrame {
        VisitorServerFrame::Resync
    }
    fn replies(&mut self) -> &mut Replies<VisitorServerFrame> {
        &mut self.replies
    }

    async fn on_event<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut Batched<S>,
        conn: &Connection<HubEvent>,
        event: &Arc<HubEvent>,
    ) -> bool {
        let e: &HubEvent = event;
        match e {
            HubEvent::Message { message } => {
                let id = message.conversation_id;
                let Some(last) = self.last.get(&id).copied() else {
                    return true;
                };
                let Some(vs) = message.visible_seq else {
                    return true;
                };
                if vs <= last {
                    true
                } else if vs == last + 1 {
                    self.send_in_order(tx, message).await
                } else if self.ahead.hold(id, vs, event.clone(), Instant::now()) {
                    true
                } else {
                    self.catch_up(tx, id).await
                }
            }
            HubEvent::Conversation {
                summary, visitor, ..
            } => {
                let c = &summary.conversation;
                if c.contact_id != self.visitor.session.contact_id
                    || c.site_id != self.visitor.site.id
                {
                    return true;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = self.last.entry(c.id) {
                    // A conversation started elsewhere (another tab, or a message under the
                    // `final` policy): follow it from the start.
                    conn.subscribe(Topic::Conversation(c.id));
                    e.insert(0);
                    if !self.catch_up(tx, c.id).await {
                        return false;
                    }
                }
                send_json(
                    tx,
                    &VisitorServerFrame::Conversation {
                        conversation: visitor.clone(),
                    },
                )
                .await
            }
            HubEvent::Deleted {
                conversation_id, ..
            } => {
                self.last.remove(conversation_id);
                self.ahead.forget(*conversation_id);
                conn.unsubscribe(Topic::Conversation(*conversation_id));
                true
            }
            HubEvent::Typing {
                conversation_id,
                typist: Typist::Agent { name, .. },
                typing,
                note: false,
            } if self.last.contains_key(conversation_id) => {
                let author = AuthorCard {
                    kind: AuthorKind::Agent,
                    name: Some(name.clone()),
                    avatar_url: None,
                };
                send_json(
                    tx,
                    &VisitorServerFrame::Typing {
                        conversation_id: *conversation_id,
                        author,
                        typing: *typing,
                    },
                )
                .await
            }
            HubEvent::AgentRead {
                conversation_id,
                visible_seq,
                ..
            } if self.last.contains_key(conversation_id) => {
                send_json(
                    tx,
                    &VisitorServerFrame::Read {
                        conversation_id: *conversation_id,
                        seq: *visible_seq,
                    },
                )
                .await
            }
            _ => true,
        }
    }
}

impl Session {
    async fn on_frame<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut Batched<S>,
        conn: &Connection<HubEvent>,
        text: &str,
    ) -> bool {
        let frame = match serde_json::from_str::<VisitorClientFrame>(text) {
            Ok(f) => f,
            Err(e) => {
                let (code, message) = frame_error(&e);
                return send_json(
                    tx,
                    &VisitorServerFrame::Error {
                        code: code.into(),
                        message,
                        client_id: None,
                    },
                )
                .await;
            }
        };
        match frame {
            VisitorClientFrame::Hello { resume, .. } => {
                // A resync: go on from what the client says it has. Entries this socket
                // already sent are on their way (same connection), so sending them again
                // would repeat them.
                let ids: Vec<ConversationId> = self.last.keys().copied().collect();
                for id in ids {
                    if let Some(seq) = resume.get(&id.to_string()) {
                        self.resume_from(id, *seq);
                    }
                    if !self.catch_up(tx, id).await {
                        return false;
                    }
                }
                send_json(
                    tx,
                    &VisitorServerFrame::Ready {
                        contact_id: self.visitor.session.contact_id,
                    },
                )
                .await
            }
            VisitorClientFrame::Subscribe {
                conversation_id,
                after,
            } => {
                if let Err(e) =
                    service::visitor_conversation(&self.state, &self.visitor, conversation_id).await
                {
                    return send_json(tx, &error_frame(e, None)).await;
                }
                conn.subscribe(Topic::Conversation(conversation_id));
                self.resume_from(conversation_id, after);
                self.catch_up(tx, conversation_id).await
            }
            VisitorClientFrame::Send {
                conversation_id,
                client_id,
                body,
                attachment_id,
            } => {
                let sends = self.sends.get_or_insert_with(|| {
                    spawn_sender(
                        self.state.clone(),
                        self.visitor.clone(),
                        self.replies.sender(),
                    )
                });
                sends
                    .send(Send {
                        conversation_id,
                        client_id,
                        body,
                        attachment_id,
                    })
                    .await
                    .is_ok()
            }
            VisitorClientFrame::Typing {
                conversation_id,
                typing,
            } => {
                if self.last.contains_key(&conversation_id) {
                    self.state.publish(HubEvent::Typing {
                        conversation_id,
                        typist: Typist::Visitor,
                        typing,
                        note: false,
                    });
                }
                true
            }
            VisitorClientFrame::Read {
                conversation_id,
                seq,
            } => {
                let (state, visitor, out) = (
                    self.state.clone(),
                    self.visitor.clone(),
                    self.replies.sender(),
                );
                tokio::spawn(async move {
                    if let Err(e) =
                        service::visitor_read(&state, &visitor, conversation_id, seq).await
                    {
                        let _ = out.send(Box::new(error_frame(e, None)));
                    }
                });
                true
            }
            VisitorClientFrame::Ping {} => send_json(tx, &VisitorServerFrame::Pong).await,
        }
    }
}

fn error_frame(e: ApiError, client_id: Option<String>) -> VisitorServerFrame {
    VisitorServerFrame::Error {
        code: e.code.into(),
        message: e.message,
        client_id,
    }
}
