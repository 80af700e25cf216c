//! The agent socket (`/api/v1/ws`): live inbox lists and counts, open conversations,
//! collision (I7), presence and notifications (E3).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use confab_domain::rules;
use confab_domain::*;
use confab_realtime::{Connection, Topic};
use confab_store::ConversationSummary;
use futures::{Sink, SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;

use super::ahead::{self, Ahead};
use super::shared::Encoded;
use super::{
    classify, close, encode, frame_error, lanes, on_burst, send_close, send_json, send_text,
    take_ready, Batched, Incoming, OnEvents, Replies, ReplyTx, MAX_FRAME,
};
use crate::auth::{self, CurrentAgent, Via};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, HubEvent, Typist};
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
    let (tx, mut rx) = socket.split();
    let mut tx = Batched::new(tx);
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
    for shelf in events::shelves_for(me.agent.id, None) {
        conn.subscribe(Topic::Rows(shelf));
    }
    if state.presence.connect(me.agent.id, me.agent.available) {
        crate::cluster::presence_changed(&state, &me.agent);
    }
    let mut s = Session {
        state: state.clone(),
        me: me.agent,
        viewing: HashMap::new(),
        ahead: Ahead::default(),
        reads: HashMap::new(),
        folders: None,
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
    /// Entries of open conversations that came ahead of one still on its way.
    ahead: Ahead<Arc<HubEvent>>,
    /// This agent's read position per conversation, for list rows' unread markers.
    reads: HashMap<ConversationId, Seq>,
    /// The folders whose list rows this socket wants (`view`); every folder until it says.
    folders: Option<Vec<Folder>>,
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
/// is not held up by each commit in turn. Each send takes the agent afresh from the shared
/// agent list (dropped at every change on this node, at most 2 s old from another), so a
/// change of role or access applies to the very next message.
fn spawn_sender(state: AppState, me: Agent, out: ReplyTx<AgentServerFrame>) -> mpsc::Sender<Send> {
    lanes::spawn(
        move |Send(conversation_id, req)| {
            let (state, me) = (state.clone(), me.clone());
            async move {
                let me = state.agent_by_id(me.id).await.unwrap_or(me);
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
        tx: &mut Batched<S>,
        rx: &mut Rx,
        conn: &mut Connection<HubEvent>,
    ) {
        let state = self.state.clone();
        let mut heartbeat = tokio::time::interval(state.settings.heartbeat);
        heartbeat.tick().await;
        let mut counts_tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_seen = Instant::now();
        loop {
            // Everything the last turn queued, and what came meanwhile, goes out at once
            // (see `Batched`, `take_ready`).
            if !take_ready(self, tx, conn).await || !tx.flush_queued().await {
                return;
            }
            let held = self.ahead.deadline();
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
                // The replies behind it are taken with `take_ready`.
                Some(out) = self.replies.recv() => if !send_json(tx, &out).await { return },
                ev = conn.recv() => if !Box::pin(on_burst(self, tx, conn, ev)).await { return },
                _ = ahead::wait(held) => {
                    for id in self.ahead.expired(Instant::now()) {
                        if !Box::pin(self.catch_up(tx, id)).await { return }
                    }
                }
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
        tx: &mut Batched<S>,
        id: ConversationId,
    ) -> bool {
        self.ahead.forget(id);
        let mut limit = super::CATCH_UP_FIRST;
        loop {
            let Some(after) = self.viewing.get(&id).copied() else {
                return true;
            };
            let batch = match self.state.store.messages(id, after, limit, false).await {
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
                    &MessageFrame {
                        conversation_id: id,
                        message: &m,
                    },
                )
                .await
                {
                    return false;
                }
            }
            if (n as i64) < limit {
                return true;
            }
            limit = super::CATCH_UP_PAGE;
        }
    }

    fn publish_viewers(&self, id: ConversationId) {
        crate::cluster::publish_viewers(&self.state, id);
    }

    /// Sends `message`, the next entry of an open conversation, and the entries held
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
            self.viewing.insert(id, m.seq);
            let frame = MessageFrame {
                conversation_id: id,
                message: m,
            };
            if !send_json(tx, &frame).await {
                return false;
            }
            held = self.ahead.take(id, m.seq + 1);
            next = match held.as_deref() {
                Some(HubEvent::Message { message }) => Some(message),
                _ => None,
            };
        }
        true
    }

    /// Whether this socket wants the list row of `conv` (`before`: as it was, when its
    /// status or assignee changed): it is open here, or in a folder the socket shows, or
    /// just left one. Most rows are of posts to conversations in other folders, and each
    /// would be encoded, written and parsed for nothing (docs/performance.md, round 10).
    /// The registry already routes such posts' rows by shelf (`events::shelves_for`), so
    /// few of them reach this check; it decides exactly, by `rules::folder_of`.
    fn shows(&self, conv: &Conversation, before: Option<&Conversation>) -> bool {
        let Some(folders) = &self.folders else {
            return true;
        };
        let shown =
            |c: &Conversation| rules::folder_of(&self.me, c).is_some_and(|f| folders.contains(&f));
        self.viewing.contains_key(&conv.id) || shown(conv) || before.is_some_and(shown)
    }

    fn leave(&mut self, conn: &Connection<HubEvent>, id: ConversationId) {
        self.ahead.forget(id);
        if self.viewing.remove(&id).is_some() {
            conn.unsubscribe(Topic::Conversation(id));
            self.state.viewers.leave(id, self.me.id);
            self.publish_viewers(id);
        }
    }
}

impl OnEvents for Session {
    type Frame = AgentServerFrame;
    fn resync() -> AgentServerFrame {
        AgentServerFrame::Resync
    }
    fn replies(&mut self) -> &mut Replies<AgentServerFrame> {
        &mut self.replies
    }

    async fn on_event<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut Batched<S>,
        conn: &Connection<HubEvent>,
        event: &Arc<HubEvent>,
    ) -> bool {
        match &**event {
            HubEvent::Message { message } => {
                let id = message.conversation_id;
                let Some(last) = self.viewing.get(&id).copied() else {
                    return true;
                };
                if message.seq <= last {
                    true
                } else if message.seq == last + 1 {
                    self.send_in_order(tx, message).await
                } else if self
                    .ahead
                    .hold(id, message.seq, event.clone(), Instant::now())
                {
                    true
                } else {
                    self.catch_up(tx, id).await
                }
            }
            HubEvent::Conversation {
                summary,
                before,
                started,
                ..
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
                // The folders count conversations by status and assignee: only a new
                // conversation or a change of either (`before`) moves a count, not the
                // posts that make up most of these events.
                if *started || before.is_some() {
                    self.counts_dirty = Some(Instant::now());
                }
                if !self.shows(&summary.conversation, before.as_deref()) {
                    return true;
                }
                let my_read = match self.reads.get(&id) {
                    Some(r) => *r,
                    None if *started => {
                        self.reads.insert(id, 0);
                        0
                    }
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
                match list_row(event, summary, my_read) {
                    Some(row) => send_text(tx, row).await,
                    None => false,
                }
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
}

impl Session {
    async fn on_frame<S: Sink<WsMessage> + Unpin>(
        &mut self,
        tx: &mut Batched<S>,
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
            AgentClientFrame::View { folders } => {
                let mut shown = Vec::with_capacity(Folder::ALL.len());
                for f in folders {
                    if !shown.contains(&f) {
                        shown.push(f);
                    }
                }
                // The new shelves first: a shelf in both views is never left for a moment.
                let id = self.me.id;
                let shelves: Vec<_> = events::shelves_for(id, Some(&shown)).collect();
                for &shelf in &shelves {
                    conn.subscribe(Topic::Rows(shelf));
                }
                for shelf in events::shelves_for(id, self.folders.as_deref()) {
                    if !shelves.contains(&shelf) {
                        conn.unsubscribe(Topic::Rows(shelf));
                    }
                }
                self.folders = Some(shown);
                true
            }
            AgentClientFrame::Ping {} => send_json(tx, &AgentServerFrame::Pong).await,
        }
    }
}

/// List rows encoded for recent `Conversation` events, shared by every agent socket.
static LIST_ROWS: Encoded<HubEvent> = Encoded::new();

/// The `conversation` frame of `event` (whose summary is `summary`) for an agent who has
/// read up to `my_read`: the same text for every agent with the same read position, so
/// encoded once for all of them.
fn list_row(
    event: &Arc<HubEvent>,
    summary: &ConversationSummary,
    my_read: Seq,
) -> Option<Utf8Bytes> {
    LIST_ROWS.get_or_encode(event, my_read, || {
        let mut summary = summary.clone();
        summary.my_read_seq = my_read;
        summary.unread = summary.conversation.last_visitor_seq > my_read;
        encode(&AgentServerFrame::Conversation { summary })
    })
}

/// [`AgentServerFrame::Message`] with the entry borrowed rather than copied: the same JSON.
#[derive(Serialize)]
#[serde(tag = "type", rename = "message")]
struct MessageFrame<'a> {
    conversation_id: ConversationId,
    message: &'a Message,
}

fn error_frame(e: ApiError, client_id: Option<String>) -> AgentServerFrame {
    AgentServerFrame::Error {
        code: e.code.into(),
        message: e.message,
        client_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> chrono::DateTime<chrono::Utc> {
        t.parse().unwrap()
    }

    fn message() -> Message {
        Message {
            id: MessageId(81),
            conversation_id: ConversationId(12),
            seq: 4,
            visible_seq: Some(3),
            kind: MessageKind::Text,
            author_kind: AuthorKind::Visitor,
            agent_id: None,
            author_name: Some("Zo\u{eb} \"Z\"".into()),
            body: "hi\n<b>there</b> \u{1f600}".into(),
            event: None,
            attachment: None,
            client_id: Some("c-1".into()),
            mentions: vec![AgentId(3)],
            created_at: at("2026-11-21T12:00:03.123456Z"),
        }
    }

    fn summary(last_visitor_seq: Seq) -> ConversationSummary {
        let conversation: Conversation = serde_json::from_value(serde_json::json!({
            "id": 12, "site_id": 1, "contact_id": 7, "channel": "web", "status": "open",
            "assignee_id": 3, "team_id": null, "snoozed_until": null, "closed_at": null,
            "last_seq": 4, "last_visible_seq": 3, "handoff_at": null,
            "agent_took_part": true, "offline": false, "rating": null, "rating_comment": null,
            "start_url": null, "last_visitor_seq": last_visitor_seq, "visitor_read_seq": 0,
            "agent_read_seq": 0, "tags": ["a"], "created_at": "2026-11-21T12:00:00Z",
            "last_message_at": "2026-11-21T12:00:03Z"
        }))
        .unwrap();
        ConversationSummary {
            conversation,
            contact_name: Some("Zo\u{eb}".into()),
            contact_email: None,
            last_message: None,
            my_read_seq: 0,
            unread: true,
        }
    }

    #[test]
    fn a_borrowed_message_frame_is_the_same_json() {
        let m = message();
        let borrowed = encode(&MessageFrame {
            conversation_id: m.conversation_id,
            message: &m,
        })
        .unwrap();
        let owned = encode(&AgentServerFrame::Message {
            conversation_id: m.conversation_id,
            message: m.clone(),
        })
        .unwrap();
        assert_eq!(borrowed.as_str(), owned.as_str());
    }

    #[test]
    fn shared_list_rows_carry_each_agents_read_position() {
        let s = summary(4);
        let event = Arc::new(HubEvent::Conversation {
            summary: Box::new(s.clone()),
            visitor: VisitorConversation::new(&s.conversation, None),
            before: None,
            started: false,
        });
        // Agents in the order their sockets take the event: some share a read position.
        for my_read in [0, 4, 0, 2, 4, 0, 7, 2] {
            let row = list_row(&event, &s, my_read).unwrap();
            let mut expected = s.clone();
            expected.my_read_seq = my_read;
            expected.unread = 4 > my_read;
            let expected = encode(&AgentServerFrame::Conversation { summary: expected }).unwrap();
            assert_eq!(row.as_str(), expected.as_str(), "my_read_seq {my_read}");
        }
        // Another event's row is never taken for this one's.
        let s2 = summary(6);
        let other = Arc::new(HubEvent::Conversation {
            summary: Box::new(s2.clone()),
            visitor: VisitorConversation::new(&s2.conversation, None),
            before: None,
            started: false,
        });
        let row: serde_json::Value =
            serde_json::from_str(list_row(&other, &s2, 4).unwrap().as_str()).unwrap();
        assert_eq!(row["summary"]["conversation"]["last_visitor_seq"], 6);
        assert_eq!(row["summary"]["unread"], true);
    }
}
