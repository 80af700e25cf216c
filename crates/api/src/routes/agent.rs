//! The agent API (`/api/v1`): sign-in, the inbox (I1–I10) and administration.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use confab_domain::rules;
use confab_domain::text;
use confab_domain::*;
use confab_store::*;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, CurrentAgent, Via};
use crate::error::{ApiError, ApiResult};
use crate::events::HubEvent;
use crate::extract::{Json, Path, Query};
use crate::service::{self, AgentStatusChange};
use crate::state::AppState;
use crate::wire::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(setup_status, setup))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
        .routes(routes!(set_availability))
        .routes(routes!(create_token))
        .routes(routes!(folders))
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation, delete_conversation))
        .routes(routes!(history, send))
        .routes(routes!(assign))
        .routes(routes!(close))
        .routes(routes!(reopen))
        .routes(routes!(snooze))
        .routes(routes!(set_tags))
        .routes(routes!(read))
        .routes(routes!(super::files::agent_upload))
        .routes(routes!(super::files::agent_download))
        .routes(routes!(get_contact, update_contact))
        .routes(routes!(contact_notes, add_contact_note))
        .routes(routes!(notifications))
        .routes(routes!(notifications_read))
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(update_agent))
        .routes(routes!(list_teams, create_team))
        .routes(routes!(update_team, delete_team))
        .routes(routes!(list_sites, create_site))
        .routes(routes!(get_site, update_site))
}

type E = crate::error::ErrorBody;

fn session_cookie(state: &AppState, token: &str, max_age: i64) -> HeaderValue {
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        auth::SESSION_COOKIE
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn start_session(state: &AppState, agent: Agent) -> ApiResult<Response> {
    let token = auth::new_token();
    let csrf = auth::new_token();
    let now = state.now();
    state
        .store
        .create_session(NewSession {
            token_hash: auth::hash_token(&token),
            agent_id: agent.id,
            csrf_token: csrf.clone(),
            created_at: now,
            expires_at: now + state.settings.session_ttl,
        })
        .await?;
    let mut r = Json(Me {
        agent,
        csrf_token: Some(csrf),
    })
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(state, &token, state.settings.session_ttl.num_seconds()),
    );
    Ok(r)
}

/// O2: whether the owner account still has to be created.
#[utoipa::path(get, path = "/api/v1/setup", tag = "public", responses((status = 200, body = SetupStatus)))]
async fn setup_status(State(state): State<AppState>) -> ApiResult<Json<SetupStatus>> {
    Ok(Json(SetupStatus {
        needs_setup: state.store.count_agents().await? == 0,
    }))
}

/// O2: creates the owner on first run and signs them in; refused once anyone exists.
#[utoipa::path(post, path = "/api/v1/setup", tag = "public", request_body = SetupRequest,
    responses((status = 200, body = Me), (status = 409, body = E)))]
async fn setup(
    State(state): State<AppState>,
    Json(req): Json<SetupRequest>,
) -> ApiResult<Response> {
    if state.store.count_agents().await? > 0 {
        return Err(ApiError::conflict(
            "already_set_up",
            "the owner account already exists",
        ));
    }
    let email = text::email("email", &req.email)?;
    let name = text::short_text("name", &req.name)?;
    auth::validate_password(&req.password)?;
    let agent = state
        .store
        .create_agent(NewAgent {
            email,
            display_name: name.clone(),
            name,
            password_hash: auth::hash_password(&req.password)?,
            role: Role::Owner,
            access: Access::Full,
            now: state.now(),
        })
        .await?;
    state.agents_changed();
    start_session(&state, agent).await
}

/// Signs in with email and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "public", request_body = LoginRequest,
    responses((status = 200, body = Me), (status = 401, body = E)))]
async fn login(
    State(state): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let email = req.email.trim().to_lowercase();
    let found = state.store.agent_credentials(&email).await?;
    let (agent, hash) = match found {
        Some((a, h)) => (Some(a), h),
        None => (None, auth::dummy_hash().to_owned()),
    };
    let password = req.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    match agent {
        Some(a) if ok && !a.deactivated => start_session(&state, a).await,
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong email or password",
        )),
    }
}

/// Ends the session and closes its sockets.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "agent", responses((status = 204)))]
async fn logout(State(state): State<AppState>, me: CurrentAgent) -> ApiResult<Response> {
    if let Via::Session(hash) = &me.via {
        state.store.delete_session(hash).await?;
        state.registry.close_session(hash);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(r)
}

#[utoipa::path(get, path = "/api/v1/me", tag = "agent", responses((status = 200, body = Me)))]
async fn me(me: CurrentAgent) -> Json<Me> {
    Json(Me {
        agent: me.agent,
        csrf_token: me.csrf_token,
    })
}

/// The agent's own profile and notification switches.
#[utoipa::path(patch, path = "/api/v1/me", tag = "agent", request_body = ProfilePatch, responses((status = 200, body = Agent)))]
async fn update_me(
    State(state): State<AppState>,
    me: CurrentAgent,
    Json(p): Json<ProfilePatch>,
) -> ApiResult<Json<Agent>> {
    if let Some(pw) = &p.password {
        auth::validate_password(pw)?;
        state
            .store
            .set_password(me.agent.id, &auth::hash_password(pw)?)
            .await?;
    }
    let patch = AgentPatch {
        name: p
            .name
            .as_deref()
            .map(|n| text::short_text("name", n))
            .transpose()?,
        display_name: p
            .display_name
            .as_deref()
            .map(|n| text::short_text("display_name", n))
            .transpose()?,
        avatar_url: p
            .avatar_url
            .map(|a| a.as_deref().map(|u| text::url("avatar_url", u)).transpose())
            .transpose()?,
        notify_desktop: p.notify_desktop,
        notify_sound: p.notify_sound,
        notify_all_messages: p.notify_all_messages,
        ..Default::default()
    };
    let a = state.store.update_agent(me.agent.id, patch).await?;
    state.agents_changed();
    state.publish(HubEvent::AgentChanged { agent_id: a.id });
    Ok(Json(a))
}

/// I1: online/away. Going away leaves ongoing conversations alone.
#[utoipa::path(put, path = "/api/v1/me/availability", tag = "agent", request_body = AvailabilityRequest, responses((status = 200, body = Agent)))]
async fn set_availability(
    State(state): State<AppState>,
    me: CurrentAgent,
    Json(req): Json<AvailabilityRequest>,
) -> ApiResult<Json<Agent>> {
    let a = state
        .store
        .update_agent(
            me.agent.id,
            AgentPatch {
                available: Some(req.available),
                ..Default::default()
            },
        )
        .await?;
    state.agents_changed();
    state.presence.set_available(a.id, a.available);
    crate::cluster::presence_changed(&state, &a);
    state.publish(HubEvent::AgentChanged { agent_id: a.id });
    Ok(Json(a))
}

/// An API token for integrations, shown once.
#[utoipa::path(post, path = "/api/v1/me/tokens", tag = "agent", request_body = TokenRequest, responses((status = 201, body = TokenResponse)))]
async fn create_token(
    State(state): State<AppState>,
    me: CurrentAgent,
    Json(req): Json<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let name = text::short_text("name", &req.name)?;
    let token = auth::new_token();
    let t = state
        .store
        .create_api_token(me.agent.id, &name, &auth::hash_token(&token), state.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            id: t.id,
            name: t.name,
            token,
        }),
    ))
}

/// I2: the folders' counts.
#[utoipa::path(get, path = "/api/v1/folders", tag = "agent", responses((status = 200, body = FolderCounts)))]
async fn folders(State(state): State<AppState>, me: CurrentAgent) -> ApiResult<Json<FolderCounts>> {
    Ok(Json(state.store.folder_counts(&me.agent).await?))
}

/// I2 / I9: the inbox list, by folder and filters.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "agent", params(ListQuery), responses((status = 200, body = Vec<ConversationSummary>)))]
async fn list_conversations(
    State(state): State<AppState>,
    me: CurrentAgent,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<ConversationSummary>>> {
    let agent = &me.agent;
    let mut query = ConversationQuery::new(agent.id);
    if let Some(folder) = q.folder {
        // Others' is not a restricted agent's folder: an empty list, not an error.
        let Some(f) = rules::folder_filter(agent, folder) else {
            return Ok(Json(vec![]));
        };
        query.filter = Some(f);
    }
    if rules::effective_access(agent) == Access::Restricted {
        query.visible_to = Some(agent.id);
    }
    query.status = q.status;
    query.assignee = q.assignee;
    query.site = q.site;
    query.tag = q.tag.filter(|t| !t.is_empty());
    query.text = q.q.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    query.channel = q.channel;
    query.rating = q.rating;
    query.team = q.team;
    query.since = q.since;
    query.until = q.until;
    query.before = match (q.before_time, q.before_id) {
        (Some(t), Some(id)) => Some((t, id)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "before_time and before_id go together",
            ))
        }
    };
    query.limit = q.limit.unwrap_or(50).clamp(1, 200);
    let rows = state.store.list_conversations(&query).await?;
    // Defence in depth: never list what the rules say this agent may not see.
    Ok(Json(
        rows.into_iter()
            .filter(|r| rules::can_view(agent, &r.conversation))
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "agent", params(("id" = i64, Path)),
    responses((status = 200, body = ConversationDetail), (status = 404, body = E)))]
async fn get_conversation(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<ConversationDetail>> {
    let conversation = service::agent_conversation(&state, &me.agent, id).await?;
    let contact = state.store.contact(conversation.contact_id).await?;
    let site = state.store.site(conversation.site_id).await?;
    let assignee = match conversation.assignee_id {
        Some(a) => state.agent_by_id(a).await.as_ref().map(AgentCard::from),
        None => None,
    };
    let mut q = ConversationQuery::new(me.agent.id);
    q.id = Some(id);
    let my_read_seq = state
        .store
        .list_conversations(&q)
        .await?
        .first()
        .map(|r| r.my_read_seq)
        .unwrap_or(0);
    Ok(Json(ConversationDetail {
        conversation,
        contact,
        assignee,
        site_name: site.name,
        reopen_policy: site.settings.reopen_policy,
        my_read_seq,
    }))
}

/// I5: permanent delete, by the owner only.
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "owner", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = E), (status = 404, body = E)))]
async fn delete_conversation(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
) -> ApiResult<StatusCode> {
    service::delete(&state, &me.agent, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Entries after `after` (by `seq`), notes and events included.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "agent", params(("id" = i64, Path), HistoryQuery),
    responses((status = 200, body = Vec<Message>), (status = 404, body = E)))]
async fn history(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<Message>>> {
    service::agent_conversation(&state, &me.agent, id).await?;
    Ok(Json(
        state
            .store
            .messages(id, q.after.max(0), q.limit.unwrap_or(500), false)
            .await?,
    ))
}

/// A reply (assigns an unassigned conversation to the replier, I3) or an internal note.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "agent", params(("id" = i64, Path)), request_body = AgentSendRequest,
    responses((status = 201, body = Message), (status = 200, body = Message), (status = 409, body = E)))]
async fn send(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
    Json(req): Json<AgentSendRequest>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    let (m, created) = service::agent_send(&state, &me.agent, id, req).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(m),
    ))
}

/// I3: assign to an available agent, or back to Unassigned (`null`).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/assign", tag = "agent", params(("id" = i64, Path)), request_body = AssignRequest,
    responses((status = 200, body = Conversation), (status = 422, body = E)))]
async fn assign(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
    Json(req): Json<AssignRequest>,
) -> ApiResult<Json<Conversation>> {
    Ok(Json(
        service::assign(&state, &me.agent, id, req.assignee_id).await?,
    ))
}

/// I4: closes (the assignee, or any full-access agent, admin or owner).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/close", tag = "agent", params(("id" = i64, Path)),
    responses((status = 200, body = Conversation), (status = 403, body = E)))]
async fn close(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<Conversation>> {
    let change = AgentStatusChange::Close;
    Ok(Json(
        service::change_status(&state, &me.agent, id, change).await?,
    ))
}

/// I4: reopens, if the site's policy allows.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/reopen", tag = "agent", params(("id" = i64, Path)),
    responses((status = 200, body = Conversation), (status = 422, body = E)))]
async fn reopen(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<Conversation>> {
    let conv = service::agent_conversation(&state, &me.agent, id).await?;
    let policy = state.store.site(conv.site_id).await?.settings.reopen_policy;
    let change = AgentStatusChange::Reopen(policy);
    Ok(Json(
        service::change_status(&state, &me.agent, id, change).await?,
    ))
}

/// I4: snoozes until a time; it wakes then, or at the visitor's next message.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/snooze", tag = "agent", params(("id" = i64, Path)), request_body = SnoozeRequest,
    responses((status = 200, body = Conversation), (status = 422, body = E)))]
async fn snooze(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
    Json(req): Json<SnoozeRequest>,
) -> ApiResult<Json<Conversation>> {
    let change = AgentStatusChange::Snooze(req.until);
    Ok(Json(
        service::change_status(&state, &me.agent, id, change).await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/conversations/{id}/tags", tag = "agent", params(("id" = i64, Path)), request_body = TagsRequest,
    responses((status = 200, body = Conversation)))]
async fn set_tags(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
    Json(req): Json<TagsRequest>,
) -> ApiResult<Json<Conversation>> {
    service::agent_conversation(&state, &me.agent, id).await?;
    if req.tags.len() > 50 {
        return Err(ApiError::bad_request("too_many", "at most 50 tags"));
    }
    let tags = req
        .tags
        .iter()
        .map(|t| text::tag(t))
        .collect::<Result<Vec<_>, _>>()?;
    let c = state.store.set_tags(id, &tags).await?;
    service::publish_conversation(&state, &c, None).await;
    Ok(Json(c))
}

/// Read receipt by `seq`; the visitor sees "Seen".
#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "agent", params(("id" = i64, Path)), request_body = ReadRequest,
    responses((status = 204)))]
async fn read(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
    Json(req): Json<ReadRequest>,
) -> ApiResult<StatusCode> {
    service::agent_read(&state, &me.agent, id, req.seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A contact the agent may see: through at least one visible conversation.
async fn visible_contact(
    state: &AppState,
    agent: &Agent,
    id: ContactId,
) -> ApiResult<(Contact, Vec<Conversation>)> {
    let contact = state.store.contact(id).await?;
    let conversations: Vec<Conversation> = state
        .store
        .contact_conversations(id)
        .await?
        .into_iter()
        .filter(|c| rules::can_view(agent, c))
        .collect();
    if conversations.is_empty() && rules::effective_access(agent) == Access::Restricted {
        return Err(ApiError::not_found("contact"));
    }
    Ok((contact, conversations))
}

/// I8: the side panel: contact, earlier conversations, pages visited, shared notes.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "agent", params(("id" = i64, Path)),
    responses((status = 200, body = ContactDetail), (status = 404, body = E)))]
async fn get_contact(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ContactId>,
) -> ApiResult<Json<ContactDetail>> {
    let (contact, conversations) = visible_contact(&state, &me.agent, id).await?;
    let page_views = state.store.page_views(id, 100).await?;
    let notes = state.store.contact_notes(id).await?;
    Ok(Json(ContactDetail {
        contact,
        conversations,
        page_views,
        notes,
    }))
}

/// I8: edit name, email, phone and tags.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "agent", params(("id" = i64, Path)), request_body = ContactPatchRequest,
    responses((status = 200, body = Contact), (status = 404, body = E)))]
async fn update_contact(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ContactId>,
    Json(p): Json<ContactPatchRequest>,
) -> ApiResult<Json<Contact>> {
    visible_contact(&state, &me.agent, id).await?;
    let opt = |v: Option<Option<String>>,
               f: &dyn Fn(&str) -> Result<String, text::Invalid>|
     -> ApiResult<Option<Option<String>>> {
        Ok(match v {
            None => None,
            Some(None) => Some(None),
            Some(Some(s)) if s.trim().is_empty() => Some(None),
            Some(Some(s)) => Some(Some(f(&s)?)),
        })
    };
    let patch = ContactPatch {
        name: opt(p.name, &|s| text::short_text("name", s))?,
        email: opt(p.email, &|s| text::email("email", s))?,
        phone: opt(p.phone, &|s| text::phone("phone", s))?,
        tags: p
            .tags
            .map(|t| {
                t.iter()
                    .map(|x| text::tag(x))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?,
        ..Default::default()
    };
    Ok(Json(state.store.update_contact(id, patch).await?))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}/notes", tag = "agent", params(("id" = i64, Path)), responses((status = 200, body = Vec<ContactNote>)))]
async fn contact_notes(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ContactId>,
) -> ApiResult<Json<Vec<ContactNote>>> {
    visible_contact(&state, &me.agent, id).await?;
    Ok(Json(state.store.contact_notes(id).await?))
}

/// I8: a note on the contact, shared by all agents.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/notes", tag = "agent", params(("id" = i64, Path)), request_body = NoteRequest,
    responses((status = 201, body = ContactNote)))]
async fn add_contact_note(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ContactId>,
    Json(req): Json<NoteRequest>,
) -> ApiResult<(StatusCode, Json<ContactNote>)> {
    visible_contact(&state, &me.agent, id).await?;
    let body = text::long_text("body", &req.body, false)?;
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .store
                .add_contact_note(id, me.agent.id, &body, state.now())
                .await?,
        ),
    ))
}

/// E3: the agent's in-app notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "agent", responses((status = 200, body = Vec<Notification>)))]
async fn notifications(
    State(state): State<AppState>,
    me: CurrentAgent,
) -> ApiResult<Json<Vec<Notification>>> {
    let all = state.store.notifications(me.agent.id, 100).await?;
    if rules::effective_access(&me.agent) == Access::Full {
        return Ok(Json(all));
    }
    // I3 / S2: a restricted agent was told of a conversation while it was theirs to see;
    // once it is someone else's, its notifications (with their previews) are hidden too.
    let mut visible = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(all.len());
    for n in all {
        let id = n.conversation_id;
        let ok = match visible.get(&id) {
            Some(ok) => *ok,
            None => {
                let ok = match service::agent_conversation(&state, &me.agent, id).await {
                    Ok(_) => true,
                    Err(e) if e.status == StatusCode::NOT_FOUND => false,
                    Err(e) => return Err(e),
                };
                visible.insert(id, ok);
                ok
            }
        };
        if ok {
            out.push(n);
        }
    }
    Ok(Json(out))
}

#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "agent", request_body = NotificationsReadRequest, responses((status = 204)))]
async fn notifications_read(
    State(state): State<AppState>,
    me: CurrentAgent,
    Json(req): Json<NotificationsReadRequest>,
) -> ApiResult<StatusCode> {
    state
        .store
        .mark_notifications_read(me.agent.id, &req.ids, state.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The team, with who is connected.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agent", responses((status = 200, body = Vec<TeamMember>)))]
async fn list_agents(
    State(state): State<AppState>,
    _me: CurrentAgent,
) -> ApiResult<Json<Vec<TeamMember>>> {
    let agents = state.store.list_agents().await?;
    Ok(Json(
        agents
            .into_iter()
            .map(|a| TeamMember {
                connected: state.presence.cluster_get(a.id).is_some(),
                agent: a,
            })
            .collect(),
    ))
}

/// Creates an agent (admins; only the owner may make another admin... or owner: nobody).
#[utoipa::path(post, path = "/api/v1/agents", tag = "admin", request_body = NewAgentRequest,
    responses((status = 201, body = Agent), (status = 403, body = E), (status = 409, body = E)))]
async fn create_agent(
    State(state): State<AppState>,
    me: CurrentAgent,
    Json(req): Json<NewAgentRequest>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    me.require_admin()?;
    check_role_change(&me.agent, req.role)?;
    let name = text::short_text("name", &req.name)?;
    let display_name = match &req.display_name {
        Some(d) => text::short_text("display_name", d)?,
        None => name.clone(),
    };
    auth::validate_password(&req.password)?;
    let a = state
        .store
        .create_agent(NewAgent {
            email: text::email("email", &req.email)?,
            name,
            display_name,
            password_hash: auth::hash_password(&req.password)?,
            role: req.role,
            access: req.access,
            now: state.now(),
        })
        .await?;
    state.agents_changed();
    Ok((StatusCode::CREATED, Json(a)))
}

/// There is one owner; only the owner hands out the admin role.
fn check_role_change(actor: &Agent, role: Role) -> ApiResult<()> {
    match role {
        Role::Owner => Err(ApiError::forbidden("owner_only", "there is one owner")),
        Role::Admin if actor.role != Role::Owner => Err(ApiError::forbidden(
            "owner_only",
            "only the owner makes admins",
        )),
        _ => Ok(()),
    }
}

/// Changes an agent's role, access, names, password, or deactivates them.
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "admin", params(("id" = i64, Path)), request_body = AgentPatchRequest,
    responses((status = 200, body = Agent), (status = 403, body = E), (status = 404, body = E)))]
async fn update_agent(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<AgentId>,
    Json(p): Json<AgentPatchRequest>,
) -> ApiResult<Json<Agent>> {
    me.require_admin()?;
    let target = state.store.agent(id).await?;
    if target.role == Role::Owner && me.agent.role != Role::Owner {
        return Err(ApiError::forbidden(
            "owner_only",
            "only the owner changes the owner",
        ));
    }
    if target.role == Role::Owner
        && (p.role.is_some_and(|r| r != Role::Owner) || p.deactivated == Some(true))
    {
        return Err(ApiError::forbidden(
            "owner_only",
            "the owner cannot be demoted or deactivated",
        ));
    }
    if let Some(r) = p.role.filter(|r| *r != target.role) {
        check_role_change(&me.agent, r)?;
    }
    if let Some(pw) = &p.password {
        auth::validate_password(pw)?;
    }
    let patch = AgentPatch {
        name: p
            .name
            .as_deref()
            .map(|n| text::short_text("name", n))
            .transpose()?,
        display_name: p
            .display_name
            .as_deref()
            .map(|n| text::short_text("display_name", n))
            .transpose()?,
        role: p
            .role
            .filter(|r| *r != Role::Owner || target.role == Role::Owner),
        access: p.access,
        deactivated: p.deactivated,
        ..Default::default()
    };
    if let Some(pw) = &p.password {
        state
            .store
            .set_password(id, &auth::hash_password(pw)?)
            .await?;
    }
    let a = state.store.update_agent(id, patch).await?;
    if a.deactivated {
        state.store.delete_agent_sessions(id).await?;
    }
    state.agents_changed();
    state.publish(HubEvent::AgentChanged { agent_id: id });
    Ok(Json(a))
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "agent", responses((status = 200, body = Vec<Team>)))]
async fn list_teams(
    State(state): State<AppState>,
    _me: CurrentAgent,
) -> ApiResult<Json<Vec<Team>>> {
    Ok(Json(state.store.list_teams().await?))
}

/// I10: a group of agents.
#[utoipa::path(post, path = "/api/v1/teams", tag = "admin", request_body = TeamRequest, responses((status = 201, body = Team)))]
async fn create_team(
    State(state): State<AppState>,
    me: CurrentAgent,
    Json(req): Json<TeamRequest>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    me.require_admin()?;
    let name = text::short_text("name", req.name.as_deref().unwrap_or(""))?;
    let members = req.members.unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(state.store.create_team(&name, &members).await?),
    ))
}

#[utoipa::path(patch, path = "/api/v1/teams/{id}", tag = "admin", params(("id" = i64, Path)), request_body = TeamRequest, responses((status = 200, body = Team)))]
async fn update_team(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<TeamId>,
    Json(req): Json<TeamRequest>,
) -> ApiResult<Json<Team>> {
    me.require_admin()?;
    let name = req
        .name
        .as_deref()
        .map(|n| text::short_text("name", n))
        .transpose()?;
    Ok(Json(
        state
            .store
            .update_team(id, name.as_deref(), req.members.as_deref())
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "admin", params(("id" = i64, Path)), responses((status = 204)))]
async fn delete_team(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<TeamId>,
) -> ApiResult<StatusCode> {
    me.require_admin()?;
    state.store.delete_team(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn embed_snippet(state: &AppState, headers: &HeaderMap, key: &str) -> String {
    let origin = state.settings.public_origin.clone().unwrap_or_else(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1:8080");
        format!("http://{host}")
    });
    format!("<script async src=\"{origin}/widget.js\" data-site-key=\"{key}\"></script>")
}

fn site_view(state: &AppState, headers: &HeaderMap, site: Site, admin: bool) -> SiteView {
    SiteView {
        embed_snippet: embed_snippet(state, headers, &site.public_key),
        id: site.id,
        name: site.name,
        public_key: site.public_key,
        identity_secret: admin.then_some(site.identity_secret),
        settings: site.settings,
        created_at: site.created_at,
    }
}

/// Applies the fields given onto `base` (a PATCH changes only what it names). Unknown
/// fields and wrong types are refused with the field named.
fn merge_settings(
    base: &SiteSettings,
    patch: Option<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<SiteSettings> {
    let mut value = serde_json::to_value(base).map_err(ApiError::internal)?;
    if let (Some(obj), Some(patch)) = (value.as_object_mut(), patch) {
        obj.extend(patch);
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("settings: {e}")))
}

/// Checks and normalizes settings before they are saved.
pub fn validate_settings(mut s: SiteSettings) -> ApiResult<SiteSettings> {
    s.allowed_origins = s
        .allowed_origins
        .iter()
        .map(|o| text::origin("allowed_origins", o))
        .collect::<Result<_, _>>()?;
    s.office_hours
        .validate()
        .map_err(|e| ApiError::bad_request("invalid_office_hours", e.to_string()))?;
    for (field, v) in [
        ("welcome_message", &s.welcome_message),
        ("online_message", &s.online_message),
        ("offline_message", &s.offline_message),
    ] {
        text::long_text(field, v, true)?;
    }
    for (field, v) in [
        ("privacy_url", &mut s.privacy_url),
        ("terms_url", &mut s.terms_url),
        ("meeting_url", &mut s.meeting_url),
    ] {
        if let Some(u) = v.as_deref() {
            *v = if u.trim().is_empty() {
                None
            } else {
                Some(text::url(field, u)?)
            };
        }
    }
    if let Some(c) = &s.consent_text {
        if c.trim().is_empty() {
            s.consent_text = None;
        } else {
            text::long_text("consent_text", c, false)?;
        }
    }
    if s.wait_time_secs > 3600 {
        return Err(ApiError::bad_request(
            "out_of_range",
            "wait_time_secs must be at most 3600",
        ));
    }
    if s.inactivity_timeout_secs < 60 || s.inactivity_timeout_secs > 7 * 86400 {
        return Err(ApiError::bad_request(
            "out_of_range",
            "inactivity_timeout_secs must be between 60 and 604800",
        ));
    }
    if s.max_attachment_bytes == 0 || s.max_attachment_bytes > super::files::HARD_LIMIT {
        return Err(ApiError::bad_request(
            "out_of_range",
            format!(
                "max_attachment_bytes must be between 1 and {}",
                super::files::HARD_LIMIT
            ),
        ));
    }
    Ok(s)
}

#[utoipa::path(get, path = "/api/v1/sites", tag = "agent", responses((status = 200, body = Vec<SiteView>)))]
async fn list_sites(
    State(state): State<AppState>,
    me: CurrentAgent,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<SiteView>>> {
    let admin = me.agent.is_admin();
    Ok(Json(
        state
            .store
            .list_sites()
            .await?
            .into_iter()
            .map(|s| site_view(&state, &headers, s, admin))
            .collect(),
    ))
}

/// A new site with its own widget key.
#[utoipa::path(post, path = "/api/v1/sites", tag = "admin", request_body = SiteRequest, responses((status = 201, body = SiteView)))]
async fn create_site(
    State(state): State<AppState>,
    me: CurrentAgent,
    headers: HeaderMap,
    Json(req): Json<SiteRequest>,
) -> ApiResult<(StatusCode, Json<SiteView>)> {
    me.require_admin()?;
    let name = text::short_text("name", req.name.as_deref().unwrap_or(""))?;
    let settings = validate_settings(merge_settings(&SiteSettings::default(), req.settings)?)?;
    let site = state
        .store
        .create_site(NewSite {
            name,
            public_key: auth::new_token(),
            identity_secret: auth::new_token(),
            settings,
            now: state.now(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(site_view(&state, &headers, site, true)),
    ))
}

#[utoipa::path(get, path = "/api/v1/sites/{id}", tag = "agent", params(("id" = i64, Path)), responses((status = 200, body = SiteView), (status = 404, body = E)))]
async fn get_site(
    State(state): State<AppState>,
    me: CurrentAgent,
    headers: HeaderMap,
    Path(id): Path<SiteId>,
) -> ApiResult<Json<SiteView>> {
    let site = state.store.site(id).await?;
    Ok(Json(site_view(&state, &headers, site, me.agent.is_admin())))
}

/// Changes a site's name or settings.
#[utoipa::path(patch, path = "/api/v1/sites/{id}", tag = "admin", params(("id" = i64, Path)), request_body = SiteRequest,
    responses((status = 200, body = SiteView), (status = 400, body = E)))]
async fn update_site(
    State(state): State<AppState>,
    me: CurrentAgent,
    headers: HeaderMap,
    Path(id): Path<SiteId>,
    Json(req): Json<SiteRequest>,
) -> ApiResult<Json<SiteView>> {
    me.require_admin()?;
    let name = req
        .name
        .as_deref()
        .map(|n| text::short_text("name", n))
        .transpose()?;
    let settings = match req.settings {
        Some(patch) => {
            let current = state.store.site(id).await?.settings;
            Some(validate_settings(merge_settings(&current, Some(patch))?)?)
        }
        None => None,
    };
    let site = state
        .store
        .update_site(id, name.as_deref(), settings.as_ref())
        .await?;
    state.site_changed(id);
    Ok(Json(site_view(&state, &headers, site, true)))
}
