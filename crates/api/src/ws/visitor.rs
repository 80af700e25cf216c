//! The visitor socket (`/api/v1/widget/ws`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use confab_domain::*;
use confab_realtime::{Recv, Topic};
use futures::{Sink, SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{classify, close, frame_error, send_close, send_json, Incoming, MAX_FRAME};
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
        .store
        .site_by_key(&q.site_key)
        .await?
        .ok_or_else(|| ApiError::not_found("site"))?;
    auth::check_site_origin(&state, &headers, &site)?;
    Ok(ws
        .max_frame_size(MAX_FRAME)
        // The library's defaults (128 KiB read buffer per socket) dominate the memory of
        // many idle sockets; frames are small.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| run(state, site, headers, socket))
        .into_response())
}

async fn run(state: AppState, site: Site, headers: HeaderMap, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let hello = tokio::time::timeout(Duration::from_secs(10), rx.next()).await;
    let (token, resume) = match hello.map(classify) {
        Ok(Incoming::Text(t)) => match serde_json::from_str::<VisitorClientFrame>(&t) {
            Ok(VisitorClientFrame::Hello { token, resume }) => (token, resume),
            _ => return send_close(&mut tx, close::UNAUTHENTICATED, "hello first").await,
        },
        Err(_) => return send_close(&mut tx, close::NO_HELLO, "no hello").await,
        Ok(_) => return send_close(&mut tx, close::POLICY, "hello first").await,
    };
    let visitor = match auth::authenticate_visitor(&state, &headers, &token).await {
        Ok(v) if v.site.id == site.id => v,
        _ => return send_close(&mut tx, close::UNAUTHENTICATED, "unknown visitor").await,
    };
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<VisitorServerFrame>();
    let sends = spawn_sender(state.clone(), visitor.clone(), out_tx.clone());
    let mut s = Session {
        state: state.clone(),
        visitor,
        last: HashMap::new(),
        sends,
    };
    let mut conn = state.registry.connect(Some(s.visitor.token_hash.clone()));
    conn.subscribe(Topic::Visitor(s.visitor.session.contact_id));
    let convs = match state
        .store
        .visitor_conversations(s.visitor.session.contact_id)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "visitor socket could not load conversations");
            return send_close(&mut tx, close::GOING_AWAY, "try again").await;
        }
    };
    for c in convs.iter().filter(|c| c.site_id == site.id) {
        conn.subscribe(Topic::Conversation(c.id));
        let after = resume
            .get(&c.id.to_string())
            .copied()
            .unwrap_or(0)
            .clamp(0, c.last_visible_seq);
        s.last.insert(c.id, after);
    }
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
        if !s.catch_up(&mut tx, id).await {
            return;
        }
    }

    let mut heartbeat = tokio::time::interval(state.settings.heartbeat);
    heartbeat.tick().await;
    let mut last_seen = Instant::now();
    loop {
        tokio::select! {
            frame = rx.next() => match classify(frame) {
                Incoming::Text(t) => {
                    last_seen = Instant::now();
                    if !s.on_frame(&mut tx, &conn, &out_tx, &t).await { break; }
                }
                Incoming::Alive => last_seen = Instant::now(),
                Incoming::Violation => { send_close(&mut tx, close::POLICY, "text frames up to 64 KiB").await; break; }
                Incoming::Closed => break,
            },
            Some(out) = out_rx.recv() => if !send_json(&mut tx, &out).await { break },
            ev = conn.recv() => match ev {
                Recv::Event(e) => if !s.on_event(&mut tx, &conn, &e).await { break },
                Recv::Lagged => if !send_json(&mut tx, &VisitorServerFrame::Resync).await { break },
                Recv::Closed => { send_close(&mut tx, close::UNAUTHENTICATED, "session ended").await; break; }
            },
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
    visitor: CurrentVisitor,
    /// Per subscribed conversation, the last visible seq sent.
    last: HashMap<ConversationId, Seq>,
    /// This socket's sends, committed one after another in the order they came.
    sends: mpsc::Sender<Send>,
}

struct Send {
    conversation_id: ConversationId,
    client_id: String,
    body: String,
    attachment_id: Option<AttachmentId>,
}

/// One worker per socket commits its sends in order, so several messages in a row keep
/// their order (W6), while the socket loop goes on delivering events. Acks go back on an
/// unbounded channel: it holds at most one ack per queued send (256), and a bounded one
/// deadlocked the loop (waiting to queue a send) against the worker (waiting to queue an
/// ack only that loop drains).
fn spawn_sender(
    state: AppState,
    visitor: CurrentVisitor,
    out: mpsc::UnboundedSender<VisitorServerFrame>,
) -> mpsc::Sender<Send> {
    let (tx, mut rx) = mpsc::channel::<Send>(256);
    tokio::spawn(async move {
        while let Some(s) = rx.recv().await {
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
            // The socket may be gone; the message is committed all the same.
            let _ = out.send(frame);
        }
    });
    tx
}

impl Session {
    /// Sends everything after the last sent seq, from the store.
    async fn catch_up<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut S,
        id: ConversationId,
    ) -> bool {
        loop {
            let after = self.last.get(&id).copied().unwrap_or(0);
            let batch = match self.state.store.messages(id, after, 500, true).await {
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
            if n < 500 {
                return true;
            }
        }
    }

    async fn on_event<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut S,
        conn: &confab_realtime::Connection<HubEvent>,
        e: &HubEvent,
    ) -> bool {
        match e {
            HubEvent::Message { message } => {
                let Some(last) = self.last.get(&message.conversation_id).copied() else {
                    return true;
                };
                let Some(vs) = message.visible_seq else {
                    return true;
                };
                if vs <= last {
                    true
                } else if vs == last + 1 {
                    match service::visitor_message(&self.state, message).await {
                        Some(vm) => {
                            self.last.insert(message.conversation_id, vs);
                            send_json(
                                tx,
                                &VisitorServerFrame::Message {
                                    conversation_id: message.conversation_id,
                                    message: vm,
                                },
                            )
                            .await
                        }
                        None => true,
                    }
                } else {
                    self.catch_up(tx, message.conversation_id).await
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

    async fn on_frame<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut S,
        conn: &confab_realtime::Connection<HubEvent>,
        out: &mpsc::UnboundedSender<VisitorServerFrame>,
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
                // A resync: start again from what the client says it has.
                let ids: Vec<ConversationId> = self.last.keys().copied().collect();
                for id in ids {
                    if let Some(seq) = resume.get(&id.to_string()) {
                        self.last.insert(id, (*seq).max(0));
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
                self.last.insert(conversation_id, after.max(0));
                self.catch_up(tx, conversation_id).await
            }
            VisitorClientFrame::Send {
                conversation_id,
                client_id,
                body,
                attachment_id,
            } => self
                .sends
                .send(Send {
                    conversation_id,
                    client_id,
                    body,
                    attachment_id,
                })
                .await
                .is_ok(),
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
                let (state, visitor, out) = (self.state.clone(), self.visitor.clone(), out.clone());
                tokio::spawn(async move {
                    if let Err(e) =
                        service::visitor_read(&state, &visitor, conversation_id, seq).await
                    {
                        let _ = out.send(error_frame(e, None));
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
