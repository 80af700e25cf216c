//! The application layer: what a request or socket frame does, once validated. HTTP
//! handlers and socket loops both call these, so the two paths cannot drift apart.
//!
//! **Invariant:** every change is committed by the store before its event is published.

use chrono::{DateTime, Utc};
use confab_domain::rules::{self, Handoff};
use confab_domain::text::{self, MessageBody};
use confab_domain::*;
use confab_store::*;

use crate::auth::CurrentVisitor;
use crate::error::{ApiError, ApiResult};
use crate::events::HubEvent;
use crate::state::AppState;
use crate::wire::*;

/// W4: what handing a conversation to people does right now.
pub fn handoff_for(state: &AppState, site: &Site, now: DateTime<Utc>) -> Handoff {
    let online = rules::site_online(
        state.presence.any_available(),
        &site.settings.office_hours,
        now,
    );
    rules::handoff(&site.settings, online, now)
}

/// The visitor's own conversation, or 404 (S2).
pub async fn visitor_conversation(
    state: &AppState,
    v: &CurrentVisitor,
    id: ConversationId,
) -> ApiResult<Conversation> {
    match state.store.conversation(id).await {
        Ok(c) if c.contact_id == v.session.contact_id => Ok(c),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(ApiError::not_found("conversation")),
        Err(e) => Err(e.into()),
    }
}

/// A conversation the agent may see, or 404 (I3, S2).
pub async fn agent_conversation(
    state: &AppState,
    agent: &Agent,
    id: ConversationId,
) -> ApiResult<Conversation> {
    match state.store.conversation(id).await {
        Ok(c) if rules::can_view(agent, &c) => Ok(c),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(ApiError::not_found("conversation")),
        Err(e) => Err(e.into()),
    }
}

pub async fn visitor_view(state: &AppState, c: &Conversation) -> VisitorConversation {
    let agent = match c.assignee_id {
        Some(id) => state.agent_by_id(id).await,
        None => None,
    };
    VisitorConversation::new(c, agent.as_ref())
}

/// The visitor's view of an entry, with the agent's avatar (W5).
pub async fn visitor_message(state: &AppState, m: &Message) -> Option<VisitorMessage> {
    let avatar = match m.agent_id {
        Some(id) => state.agent_by_id(id).await.and_then(|a| a.avatar_url),
        None => None,
    };
    VisitorMessage::from_message(m, avatar)
}

/// Publishes what a committed change wrote, then the conversation's new state.
pub async fn publish_change(state: &AppState, changed: &Changed) {
    publish_messages(state, &changed.written);
    match &changed.summary {
        Some(summary) => {
            let (conversation, before) = (&changed.conversation, Some(&changed.before));
            publish_summary(state, summary.clone(), conversation, before, false).await
        }
        None => publish_conversation(state, &changed.conversation, Some(&changed.before)).await,
    }
}

fn publish_messages(state: &AppState, written: &[Message]) {
    for m in written {
        state.publish(HubEvent::Message {
            message: Box::new(m.clone()),
        });
    }
}

/// Publishes a conversation's new state (list rows, the visitor's header). `before` is the
/// conversation before a change that may alter who sees it (see `HubEvent::Conversation`).
pub async fn publish_conversation(
    state: &AppState,
    conversation: &Conversation,
    before: Option<&Conversation>,
) {
    let mut q = ConversationQuery::new(AgentId(0));
    q.id = Some(conversation.id);
    q.limit = 1;
    match state.store.list_conversations(&q).await {
        Ok(mut rows) if !rows.is_empty() => {
            publish_summary(state, rows.remove(0), conversation, before, false).await
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, conversation_id = %conversation.id, "could not publish conversation")
        }
    }
}

async fn publish_summary(
    state: &AppState,
    summary: ConversationSummary,
    conversation: &Conversation,
    before: Option<&Conversation>,
    started: bool,
) {
    let visitor = visitor_view(state, &summary.conversation).await;
    let before = before
        .filter(|b| b.assignee_id != conversation.assignee_id || b.status != conversation.status);
    state.publish(HubEvent::Conversation {
        summary: Box::new(summary),
        visitor,
        before: before.map(|b| Box::new(b.clone())),
        started,
    });
}

/// Publishes what a new message wrote and the notifications committed with it (nothing
/// for a retry: the first attempt published it all).
///
/// The list row is built from the post rather than read back: this runs for every message.
async fn publish_posted(state: &AppState, posted: &Posted) {
    if !posted.created {
        return;
    }
    publish_messages(state, &posted.written);
    let summary = ConversationSummary::after_post(posted);
    publish_summary(
        state,
        summary,
        &posted.conversation,
        Some(&posted.before),
        false,
    )
    .await;
    for n in &posted.notifications {
        state.publish(HubEvent::Notification {
            notification: n.clone(),
        });
    }
}

/// E3: stores and publishes notifications.
pub async fn notify(
    state: &AppState,
    conversation: ConversationId,
    items: Vec<(AgentId, NotificationKind)>,
    message: Option<&Message>,
    preview: &str,
) {
    if items.is_empty() {
        return;
    }
    let now = state.now();
    let preview = notification_preview(preview);
    let new = items
        .into_iter()
        .map(|(agent_id, kind)| NewNotification {
            agent_id,
            kind,
            conversation_id: conversation,
            message_id: message.map(|m| m.id),
            preview: preview.clone(),
            now,
        })
        .collect();
    match state.store.add_notifications(new).await {
        Ok(list) => {
            for n in list {
                state.publish(HubEvent::Notification { notification: n });
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, conversation_id = %conversation, "could not store notifications")
        }
    }
}

/// W2–W4: starts (or returns) the visitor's conversation.
pub async fn start_conversation(
    state: &AppState,
    v: &CurrentVisitor,
    req: StartRequest,
) -> ApiResult<(VisitorConversation, bool)> {
    let contact = state.store.contact(v.session.contact_id).await?;
    rules::check_may_start(v.site.settings.who_may_chat, contact.verified)?;
    let url = req
        .url
        .as_deref()
        .map(|u| text::url("url", u))
        .transpose()?;
    let now = state.now();
    if req.consent == Some(true) {
        if let Some(consent) = &v.site.settings.consent_text {
            state
                .store
                .update_contact(
                    contact.id,
                    ContactPatch {
                        consent: Some((consent.clone(), now)),
                        ..Default::default()
                    },
                )
                .await?;
        }
    } else if v.site.settings.consent_text.is_some() {
        return Err(ApiError::bad_request(
            "consent_required",
            "this site asks for consent before the chat starts",
        ));
    }
    let started = state
        .store
        .start_conversation(NewConversation {
            site_id: v.site.id,
            contact_id: contact.id,
            channel: Channel::Web,
            start_url: url,
            handoff: Some(handoff_for(state, &v.site, now)),
            notify: state.agents().await?,
            notify_preview: contact.name.clone().unwrap_or_else(|| "New visitor".into()),
            now,
        })
        .await?;
    if started.created {
        publish_messages(state, &started.messages);
        let summary = ConversationSummary::after_start(&started.conversation, &contact);
        publish_summary(state, summary, &started.conversation, None, true).await;
        for n in started.notifications {
            state.publish(HubEvent::Notification { notification: n });
        }
    }
    Ok((
        visitor_view(state, &started.conversation).await,
        started.created,
    ))
}

/// A visitor's message (W6), under the rules of I4.
pub async fn visitor_send(
    state: &AppState,
    v: &CurrentVisitor,
    conversation: ConversationId,
    client_id: &str,
    body: &str,
    attachment: Option<AttachmentId>,
) -> ApiResult<(VisitorMessage, bool)> {
    let client_id = text::client_id(client_id)?;
    let body = MessageBody::parse(body, attachment.is_some())?;
    let agents = state.agents().await?;
    let now = state.now();
    // The store checks that the conversation is the visitor's own (S2) in the post's
    // transaction: this path reads nothing before the post.
    let posted = state
        .store
        .post_message(NewMessage {
            conversation_id: conversation,
            author: Author::Visitor {
                contact_id: v.session.contact_id,
            },
            kind: MessageKind::Text,
            body,
            client_id: Some(client_id),
            attachment_id: attachment,
            mentions: vec![],
            reopen_policy: v.site.settings.reopen_policy,
            handoff_if_new: Some(handoff_for(state, &v.site, now)),
            notify: agents,
            now,
        })
        .await?;
    publish_posted(state, &posted).await;
    let vm = visitor_message(state, &posted.message)
        .await
        .ok_or_else(|| ApiError::internal("visitor message without visible_seq"))?;
    Ok((vm, posted.created))
}

/// An agent's reply or note (I6), under I3 and I4.
pub async fn agent_send(
    state: &AppState,
    agent: &Agent,
    conversation: ConversationId,
    req: AgentSendRequest,
) -> ApiResult<(Message, bool)> {
    let client_id = text::client_id(&req.client_id)?;
    let body = MessageBody::parse(&req.body, req.attachment_id.is_some())?;
    if !matches!(req.kind, MessageKind::Text | MessageKind::Note) {
        return Err(ApiError::bad_request(
            "invalid_kind",
            "kind must be text or note",
        ));
    }
    let agents = state.agents().await?;
    let mut mentions = req.mentions.clone();
    mentions.sort();
    mentions.dedup();
    if let Some(bad) = mentions
        .iter()
        .find(|m| !agents.iter().any(|a| a.id == **m))
    {
        return Err(ApiError::bad_request(
            "unknown_agent",
            format!("mentioned agent {bad} does not exist"),
        ));
    }
    let now = state.now();
    // The store checks that the agent sees the conversation (I3, S2) in the post's
    // transaction: this path reads nothing before the post.
    let posted = state
        .store
        .post_message(NewMessage {
            conversation_id: conversation,
            author: Author::Agent(agent.clone()),
            kind: req.kind,
            body,
            client_id: Some(client_id),
            attachment_id: req.attachment_id,
            mentions,
            // Agents' posts never reopen (I4): the policy is read for visitors only.
            reopen_policy: ReopenPolicy::Reopen,
            handoff_if_new: None,
            notify: agents,
            now,
        })
        .await?;
    publish_posted(state, &posted).await;
    Ok((posted.message, posted.created))
}

/// I3: assign, reassign or unassign.
pub async fn assign(
    state: &AppState,
    actor: &Agent,
    conversation: ConversationId,
    target: Option<AgentId>,
) -> ApiResult<Conversation> {
    // The store checks that the actor may see and assign the conversation (404 if not
    // visible), in the assignment's own transaction.
    let target = match target {
        Some(id) => Some(state.store.agent(id).await.map_err(|e| match e {
            StoreError::NotFound(_) => {
                ApiError::bad_request("unknown_agent", format!("agent {id} does not exist"))
            }
            e => e.into(),
        })?),
        None => None,
    };
    let changed = state
        .store
        .assign(conversation, Some(actor), target.as_ref(), state.now())
        .await?;
    if !changed.written.is_empty() {
        publish_change(state, &changed).await;
        if let Some(t) = target.filter(|t| t.id != actor.id) {
            notify(
                state,
                conversation,
                vec![(t.id, NotificationKind::AssignedToMe)],
                None,
                &format!("{} assigned you a conversation", actor.display_name),
            )
            .await;
        }
    }
    Ok(changed.conversation)
}

/// What an agent can do to a conversation's status (I4).
#[derive(Debug, Clone, Copy)]
pub enum AgentStatusChange {
    Close,
    /// Under the site's reopen policy.
    Reopen(ReopenPolicy),
    Snooze(DateTime<Utc>),
}

/// I4: close, reopen, snooze, by `actor`.
pub async fn change_status(
    state: &AppState,
    actor: &Agent,
    conversation: ConversationId,
    change: AgentStatusChange,
) -> ApiResult<Conversation> {
    // The change names its actor, so the store checks what they may do (404 if they
    // cannot see the conversation), in the change's own transaction.
    let by = actor.clone();
    let change = match change {
        AgentStatusChange::Close => StatusChange::Close {
            by: Some(by),
            by_visitor: false,
        },
        AgentStatusChange::Reopen(policy) => StatusChange::Reopen { by, policy },
        AgentStatusChange::Snooze(until) => StatusChange::Snooze { by, until },
    };
    let changed = state
        .store
        .change_status(conversation, change, state.now())
        .await?;
    publish_change(state, &changed).await;
    Ok(changed.conversation)
}

/// I5: permanent delete, files included.
pub async fn delete(
    state: &AppState,
    actor: &Agent,
    conversation: ConversationId,
) -> ApiResult<()> {
    let conv = agent_conversation(state, actor, conversation).await?;
    rules::check_delete(actor, &conv)?;
    let paths = state.store.delete_conversation(conversation).await?;
    for p in paths {
        let path = state.settings.data_dir.join(&p);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, path = %path.display(), "could not remove attachment file");
            }
        }
    }
    state.publish(HubEvent::Deleted {
        conversation_id: conversation,
        before: Box::new(conv),
    });
    Ok(())
}

pub async fn visitor_read(
    state: &AppState,
    v: &CurrentVisitor,
    conversation: ConversationId,
    seq: Seq,
) -> ApiResult<Seq> {
    visitor_conversation(state, v, conversation).await?;
    let seq = state.store.mark_read_by_visitor(conversation, seq).await?;
    state.publish(HubEvent::VisitorRead {
        conversation_id: conversation,
        seq,
    });
    Ok(seq)
}

pub async fn agent_read(
    state: &AppState,
    agent: &Agent,
    conversation: ConversationId,
    seq: Seq,
) -> ApiResult<Seq> {
    agent_conversation(state, agent, conversation).await?;
    let visible_seq = state
        .store
        .mark_read_by_agent(conversation, agent.id, seq)
        .await?;
    state.publish(HubEvent::AgentRead {
        conversation_id: conversation,
        agent_id: agent.id,
        seq,
        visible_seq,
    });
    Ok(visible_seq)
}
