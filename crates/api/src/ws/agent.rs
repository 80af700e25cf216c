//! The agent socket (`/api/v1/ws`): live inbox lists and counts, open conversations,
//! collision (I7), presence and notifications (E3).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use confab_domain::rules;
use confab_domain::*;
use confab_realtime::{Connection, Recv, Topic};
use futures::{Sink, SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::{
    classify, close, frame_error, lanes, send_close, send_json, Incoming, Replies, ReplyTx,
    MAX_FRAME,
};
use crate::auth::{self, CurrentAgent, Via};
use crate::error::{ApiError, ApiResult};
use crate::events::{HubEvent, Typist};
use crate::service;
use crate::state::AppState;
use crate::wire::*;

/// Upgrades after checking the origin; the session cookie authenticates now, an API token
/// in the first frame otherwise.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    auth::check_agent_origin(&state, &headers)?;
    let by_cookie = match auth::authenticate_agent(&state, &headers, &Method::GET).await {
        Ok(a) => Some(a),
        Err(e) if e.code == "unauthenticated" => None,
        Err(e) => return Err(e),
    };
    Ok(ws
        .max_frame_size(MAX_FRAME)
        // The library's defaults (128 KiB read buffer per socket) dominate the memory of
        // many idle sockets; frames are small.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| run(state, by_cookie, socket))
        .into_response())
}

async fn run(state: AppState, by_cookie: Option<CurrentAgent>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let me = match by_cookie {
        Some(a) => a,
        None => {
            let hello = tokio::time::timeout(Duration::from_secs(10), rx.next()).await;
            let token = match hello.map(classify) {
                Ok(Incoming::Text(t)) => match serde_json::from_str::<AgentClientFrame>(&t) {
                    Ok(AgentClientFrame::Hello { token: Some(token) }) => token,
                    _ => return send_close(&mut tx, close::UNAUTHENTICATED, "sign in first").await,
                },
                Err(_) => return send_close(&mut tx, close::NO_HELLO, "no hello").await,
                Ok(_) => return send_close(&mut tx, close::POLICY, "hello first").await,
            };
            let mut headers = HeaderMap::new();
            if let Ok(v) = format!("Bearer {token}").parse() {
                headers.insert(axum::http::header::AUTHORIZATION, v);
            }
            match Box::pin(auth::authenticate_agent(&state, &headers, &Method::GET)).await {
                Ok(a) => a,
                Err(_) => {
                    return send_close(&mut tx, close::UNAUTHENTICATED, "unknown token").await
                }
            }
        }
    };
    let session = match &me.via {
        Via::Session(h) => Some(h.clone()),
        Via::ApiToken => None,
    };
    let mut conn = state.registry.connect(session);
    conn.subscribe(Topic::Agents);
    conn.subscribe(Topic::Agent(me.agent.id));
    if state.presence.connect(me.agent.id, me.agent.available) {
        crate::cluster::presence_changed(&state, &me.agent);
    }
    let mut s = Session {
        state: state.clone(),
        me: me.agent,
        viewing: HashMap::new(),
        reads: HashMap::new(),
        counts_dirty: None,
        sends: None,
        replies: Replies::default(),
    };
    let ok = match Box::pin(state.store.folder_counts(&s.me)).await {
        Ok(counts) => {
            send_json(
                &mut tx,
                &AgentServerFrame::Ready {
                    agent_id: s.me.id,
                    counts,
                },
            )
            .await
        }
        Err(_) => false,
    };
    if ok {
        s.serve(&mut tx, &mut rx, &mut conn).await;
    }
    // Gone: presence and viewers forget this socket.
    for id in s.viewing.keys().copied().collect::<Vec<_>>() {
        s.leave(&conn, id);
    }
    if state.presence.disconnect(s.me.id) {
        crate::cluster::presence_changed(&state, &s.me);
    }
}

struct Session {
    state: AppState,
    me: Agent,
    /// Open conversations and the last seq sent in each.
    viewing: HashMap<ConversationId, Seq>,
    /// This agent's read position per conversation, for list rows' unread markers.
    reads: HashMap<ConversationId, Seq>,
    /// Set when a change may have moved the folder counts: when this socket heard of it.
    counts_dirty: Option<Instant>,
    /// This socket's sends, committed one after another in the order they came. The worker
    /// starts with the first send.
    sends: Option<mpsc::Sender<Send>>,
    /// Acks and errors from the send worker and read tasks.
    replies: Replies<AgentServerFrame>,
}

/// A send from the agent's socket.
struct Send(ConversationId, AgentSendRequest);

impl lanes::Laned for Send {
    fn lane(&self) -> ConversationId {
        self.0
    }
}

/// Starts the socket's send lanes (see [`lanes`]): one agent answering many conversations
/// is not held up by each commit in turn. Each send re-reads the agent, so a change of
/// role or access applies to the very next message.
fn spawn_sender(state: AppState, me: Agent, out: ReplyTx<AgentServerFrame>) -> mpsc::Sender<Send> {
    lanes::spawn(
        move |Send(conversation_id, req)| {
            let (state, me) = (state.clone(), me.clone());
            async move {
                let me = state.store.agent(me.id).await.unwrap_or(me);
                let client_id = req.client_id.clone();
                let frame = match service::agent_send(&state, &me, conversation_id, req).await {
                    Ok((message, _)) => AgentServerFrame::Ack { client_id, message },
                    Err(e) => error_frame(e, Some(client_id)),
                };
                Box::new(frame)
            }
        },
        out,
    )
}

type Rx = futures::stream::SplitStream<WebSocket>;

impl Session {
    async fn serve<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut S,
        rx: &mut Rx,
        conn: &mut Connection<HubEvent>,
    ) {
        let state = self.state.clone();
        let mut heartbeat = tokio::time::interval(state.settings.heartbeat);
        heartbeat.tick().await;
        let mut counts_tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_seen = Instant::now();
        loop {
            tokio::select! {
                frame = rx.next() => match classify(frame) {
                    Incoming::Text(t) => {
                        last_seen = Instant::now();
                        // Boxed, like the other handlers: an idle socket's task should not keep
                        // room for the database futures they hold while they run.
                        if !Box::pin(self.on_frame(tx, conn, &t)).await { return; }
                    }
                    Incoming::Alive => last_seen = Instant::now(),
                    Incoming::Violation => return send_close(tx, close::POLICY, "text frames up to 64 KiB").await,
                    Incoming::Closed => return,
                },
                Some(out) = self.replies.recv() => if !send_json(tx, &out).await { return },
                ev = conn.recv() => match ev {
                    Recv::Event(e) => if !Box::pin(self.on_event(tx, conn, &e)).await { return },
                    Recv::Lagged => if !send_json(tx, &AgentServerFrame::Resync).await { return },
                    Recv::Closed => return send_close(tx, close::UNAUTHENTICATED, "session ended").await,
                },
                _ = counts_tick.tick(), if self.counts_dirty.is_some() => {
                    let after = self.counts_dirty.take().unwrap_or_else(Instant::now);
                    if let Ok(counts) = Box::pin(state.folder_counts_after(&self.me, after)).await {
                        if !send_json(tx, &AgentServerFrame::Counts { counts }).await { return; }
                    }
                }
                _ = heartbeat.tick() => {
                    if last_seen.elapsed() > state.settings.heartbeat * 3 { return; }
                    if tx.send(WsMessage::Ping(Default::default())).await.is_err() { return; }
                }
                _ = state.shutdown.cancelled() => return send_close(tx, close::GOING_AWAY, "server shutting down").await,
            }
        }
    }

    async fn catch_up<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut S,
        id: ConversationId,
    ) -> bool {
        loop {
            let Some(after) = self.viewing.get(&id).copied() else {
                return true;
            };
            let batch = match self.state.store.messages(id, after, 500, false).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, conversation_id = %id, "catch-up failed; asking the client to resync");
                    return send_json(tx, &AgentServerFrame::Resync).await;
                }
            };
            let n = batch.len();
            for m in batch {
                self.viewing.insert(id, m.seq);
                if !send_json(
                    tx,
                    &AgentServerFrame::Message {
                        conversation_id: id,
                        message: m,
                    },
                )
                .await
                {
                    return false;
                }
            }
            if n < 500 {
                return true;
            }
        }
    }

    fn publish_viewers(&self, id: ConversationId) {
        crate::cluster::publish_viewers(&self.state, id);
    }

    fn leave(&mut self, conn: &Connection<HubEvent>, id: ConversationId) {
        if self.viewing.remove(&id).is_some() {
            conn.unsubscribe(Topic::Conversation(id));
            self.state.viewers.leave(id, self.me.id);
            self.publish_viewers(id);
        }
    }

    async fn on_event<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut S,
        conn: &Connection<HubEvent>,
        e: &HubEvent,
    ) -> bool {
        match e {
            HubEvent::Message { message } => {
                let id = message.conversation_id;
                let Some(last) = self.viewing.get(&id).copied() else {
                    return true;
                };
                if message.seq <= last {
                    true
                } else if message.seq == last + 1 {
                    self.viewing.insert(id, message.seq);
                    send_json(
                        tx,
                        &AgentServerFrame::Message {
                            conversation_id: id,
                            message: (**message).clone(),
                        },
                    )
                    .await
                } else {
                    self.catch_up(tx, id).await
                }
            }
            HubEvent::Conversation {
                summary, before, ..
            } => {
                let id = summary.conversation.id;
                if !rules::can_view(&self.me, &summary.conversation) {
                    // Only an agent who could see it before hears that it went away; the
                    // others learn nothing of a conversation they may not see (S2).
                    let could_see = before
                        .as_ref()
                        .is_some_and(|b| rules::can_view(&self.me, b))
                        || self.viewing.contains_key(&id);
                    if !could_see {
                        return true;
                    }
                    self.counts_dirty = Some(Instant::now());
                    self.leave(conn, id);
                    return send_json(
                        tx,
                        &AgentServerFrame::Removed {
                            conversation_id: id,
                        },
                    )
                    .await;
                }
                self.counts_dirty = Some(Instant::now());
                let my_read = match self.reads.get(&id) {
                    Some(r) => *r,
                    None => {
                        let r = self
                            .state
                            .store
                            .agent_read_seq(id, self.me.id)
                            .await
                            .unwrap_or(0);
                        self.reads.insert(id, r);
                        r
                    }
                };
                let mut summary = (**summary).clone();
                summary.my_read_seq = my_read;
                summary.unread = summary.conversation.last_visitor_seq > my_read;
                send_json(tx, &AgentServerFrame::Conversation { summary }).await
            }
            HubEvent::Deleted {
                conversation_id,
                before,
            } => {
                if !rules::can_view(&self.me, before) && !self.viewing.contains_key(conversation_id)
                {
                    return true;
                }
                self.counts_dirty = Some(Instant::now());
                self.leave(conn, *conversation_id);
                send_json(
                    tx,
                    &AgentServerFrame::Removed {
                        conversation_id: *conversation_id,
                    },
                )
                .await
            }
            HubEvent::Typing {
                conversation_id,
                typist,
                typing,
                note,
            } if self.viewing.contains_key(conversation_id) => {
                let author = match typist {
                    Typist::Visitor => AuthorCard {
                        kind: AuthorKind::Visitor,
                        name: None,
                        avatar_url: None,
                    },
                    Typist::Agent { id, .. } if *id == self.me.id => return true,
                    Typist::Agent { name, .. } => AuthorCard {
                        kind: AuthorKind::Agent,
                        name: Some(name.clone()),
                        avatar_url: None,
                    },
                };
                send_json(
                    tx,
                    &AgentServerFrame::Typing {
                        conversation_id: *conversation_id,
                        author,
                        typing: *typing,
                        note: *note,
                    },
                )
                .await
            }
            HubEvent::VisitorRead {
                conversation_id,
                seq,
            } if self.viewing.contains_key(conversation_id) => {
                send_json(
                    tx,
                    &AgentServerFrame::Read {
                        conversation_id: *conversation_id,
                        reader: Reader::Visitor,
                        seq: *seq,
                    },
                )
                .await
            }
            HubEvent::AgentRead {
                conversation_id,
                agent_id,
                seq,
                ..
            } if *agent_id == self.me.id => {
                let r = self.reads.entry(*conversation_id).or_insert(0);
                *r = (*r).max(*seq);
                send_json(
                    tx,
                    &AgentServerFrame::Read {
                        conversation_id: *conversation_id,
                        reader: Reader::Me,
                        seq: *seq,
                    },
                )
                .await
            }
            HubEvent::Viewers {
                conversation_id, ..
            } if self.viewing.contains_key(conversation_id) => {
                // The event carries one node's viewers; show the whole cluster's.
                let (viewing, typing) = self.state.viewers.snapshot(*conversation_id);
                send_json(
                    tx,
                    &AgentServerFrame::Viewers {
                        conversation_id: *conversation_id,
                        viewing,
                        typing,
                    },
                )
                .await
            }
            HubEvent::Notification { notification } if notification.agent_id == self.me.id => {
                send_json(
                    tx,
                    &AgentServerFrame::Notification {
                        notification: notification.clone(),
                    },
                )
                .await
            }
            HubEvent::Presence {
                agent,
                connected,
                available,
            } => {
                send_json(
                    tx,
                    &AgentServerFrame::Presence {
                        agent: agent.clone(),
                        connected: *connected,
                        available: *available,
                    },
                )
                .await
            }
            HubEvent::AgentChanged { agent_id } if *agent_id == self.me.id => {
                match self.state.store.agent(*agent_id).await {
                    Ok(a) if !a.deactivated => {
                        self.state.presence.set_available(a.id, a.available);
                        self.me = a;
                        self.counts_dirty = Some(Instant::now());
                        // Access may have narrowed: drop what this agent may no longer see.
                        for id in self.viewing.keys().copied().collect::<Vec<_>>() {
                            if service::agent_conversation(&self.state, &self.me, id)
                                .await
                                .is_err()
                            {
                                self.leave(conn, id);
                                if !send_json(
                                    tx,
                                    &AgentServerFrame::Removed {
                                        conversation_id: id,
                                    },
                                )
                                .await
                                {
                                    return false;
                                }
                            }
                        }
                        true
                    }
                    _ => {
                        send_close(tx, close::UNAUTHENTICATED, "deactivated").await;
                        false
                    }
                }
            }
            _ => true,
        }
    }

    async fn on_frame<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut S,
        conn: &Connection<HubEvent>,
        text: &str,
    ) -> bool {
        let frame = match serde_json::from_str::<AgentClientFrame>(text) {
            Ok(f) => f,
            Err(e) => {
                let (code, message) = frame_error(&e);
                return send_json(
                    tx,
                    &AgentServerFrame::Error {
                        code: code.into(),
                        message,
                        client_id: None,
                    },
                )
                .await;
            }
        };
        match frame {
            AgentClientFrame::Hello { .. } => {
                // After a resync: the client re-subscribes with its own positions.
                match self.state.store.folder_counts(&self.me).await {
                    Ok(counts) => {
                        send_json(
                            tx,
                            &AgentServerFrame::Ready {
                                agent_id: self.me.id,
                                counts,
                            },
                        )
                        .await
                    }
                    Err(_) => true,
                }
            }
            AgentClientFrame::Subscribe {
                conversation_id,
                after,
            } => {
                if let Err(e) =
                    service::agent_conversation(&self.state, &self.me, conversation_id).await
                {
                    return send_json(tx, &error_frame(e, None)).await;
                }
                let first = !self.viewing.contains_key(&conversation_id);
                conn.subscribe(Topic::Conversation(conversation_id));
                // Entries this socket already sent are on their way (a re-subscribe after a
                // resync): go on from the furthest of the two.
                let sent = self.viewing.get(&conversation_id).copied().unwrap_or(0);
                self.viewing.insert(conversation_id, after.max(sent).max(0));
                if first {
                    self.state.viewers.view(conversation_id, self.me.id);
                    self.publish_viewers(conversation_id);
                }
                self.catch_up(tx, conversation_id).await
            }
            AgentClientFrame::Unsubscribe { conversation_id } => {
                self.leave(conn, conversation_id);
                true
            }
            AgentClientFrame::Send {
                conversation_id,
                client_id,
                body,
                kind,
                mentions,
                attachment_id,
            } => {
                let req = AgentSendRequest {
                    client_id,
                    body,
                    kind,
                    mentions,
                    attachment_id,
                };
                let sends = self.sends.get_or_insert_with(|| {
                    spawn_sender(self.state.clone(), self.me.clone(), self.replies.sender())
                });
                sends.send(Send(conversation_id, req)).await.is_ok()
            }
            AgentClientFrame::Typing {
                conversation_id,
                typing,
                kind,
            } => {
                if self.viewing.contains_key(&conversation_id) {
                    self.state
                        .viewers
                        .typing(conversation_id, self.me.id, typing);
                    let typist = Typist::Agent {
                        id: self.me.id,
                        name: self.me.display_name.clone(),
                    };
                    self.state.publish(HubEvent::Typing {
                        conversation_id,
                        typist,
                        typing,
                        note: kind == MessageKind::Note,
                    });
                    self.publish_viewers(conversation_id);
                }
                true
            }
            AgentClientFrame::Read {
                conversation_id,
                seq,
            } => {
                let (state, me, out) = (self.state.clone(), self.me.clone(), self.replies.sender());
                tokio::spawn(async move {
                    if let Err(e) = service::agent_read(&state, &me, conversation_id, seq).await {
                        let _ = out.send(Box::new(error_frame(e, None)));
                    }
                });
                true
            }
            AgentClientFrame::Ping {} => send_json(tx, &AgentServerFrame::Pong).await,
        }
    }
}

fn error_frame(e: ApiError, client_id: Option<String>) -> AgentServerFrame {
    AgentServerFrame::Error {
        code: e.code.into(),
        message: e.message,
        client_id,
    }
}
