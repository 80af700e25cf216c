//! The visitor API (`/api/v1/widget`): what the widget calls (W1–W10).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use confab_domain::rich_text::render_markdown;
use confab_domain::rules;
use confab_domain::text;
use confab_domain::*;
use confab_store::{ContactPatch, NewContact};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, CurrentVisitor};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::service;
use crate::state::AppState;
use crate::wire::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(config))
        .routes(routes!(create_session))
        .routes(routes!(identify))
        .routes(routes!(update_contact))
        .routes(routes!(list_conversations, start_conversation))
        .routes(routes!(history, send))
        .routes(routes!(read))
        .routes(routes!(end))
        .routes(routes!(rate))
        .routes(routes!(page_view))
        .routes(routes!(super::files::visitor_upload))
        .routes(routes!(super::files::visitor_download))
}

async fn site_for_key(state: &AppState, headers: &HeaderMap, key: &str) -> ApiResult<Site> {
    let site = state
        .site_by_key(key)
        .await?
        .ok_or_else(|| ApiError::not_found("site"))?;
    auth::check_site_origin(state, headers, &site)?;
    Ok(site)
}

/// The widget's settings (W2–W4).
#[utoipa::path(get, path = "/api/v1/widget/config", tag = "public", params(ConfigQuery),
    responses((status = 200, body = WidgetConfig), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn config(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> ApiResult<Json<WidgetConfig>> {
    let site = site_for_key(&state, &headers, &q.site_key).await?;
    let now = state.now();
    let s = &site.settings;
    let online = rules::site_online(state.presence.any_available(), &s.office_hours, now);
    Ok(Json(WidgetConfig {
        site_name: site.name.clone(),
        welcome_html: render_markdown(&s.welcome_message),
        online,
        online_message_html: render_markdown(&s.online_message),
        offline_message_html: render_markdown(&rules::offline_message(s, now)),
        next_open: s.office_hours.next_open(now),
        privacy_url: s.privacy_url.clone(),
        terms_url: s.terms_url.clone(),
        consent_text: s.consent_text.clone(),
        who_may_chat: s.who_may_chat,
        visible: rules::widget_visible(s.who_may_chat, false),
        meeting_url: s.meeting_url.clone(),
        max_attachment_bytes: s.max_attachment_bytes,
        attachment_types: super::files::ALLOWED_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        wait_time_secs: s.wait_time_secs,
    }))
}

fn client_meta(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let ua = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(500).collect());
    let ip = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|s| s.trim().chars().take(64).collect());
    (ua, ip)
}

/// Opens a visitor session (a new anonymous contact, or an identified customer).
#[utoipa::path(post, path = "/api/v1/widget/sessions", tag = "public", request_body = SessionRequest,
    responses((status = 201, body = SessionResponse), (status = 403, body = crate::error::ErrorBody)))]
async fn create_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<SessionRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let site = site_for_key(&state, &headers, &req.site_key).await?;
    let now = state.now();
    let (user_agent, ip) = client_meta(&headers);
    let contact = match &req.identity {
        Some(id) => identified_contact(&state, &site, id, user_agent, ip).await?,
        None => {
            state
                .store
                .create_contact(NewContact {
                    site_id: Some(site.id),
                    user_agent,
                    ip,
                    now: Some(now),
                    ..Default::default()
                })
                .await?
        }
    };
    let token = auth::new_token();
    state
        .store
        .create_visitor_session(&auth::hash_token(&token), site.id, contact.id, now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionResponse {
            token,
            contact: VisitorContact::from(&contact),
        }),
    ))
}

/// W3: finds or creates the contact of a signed customer id.
async fn identified_contact(
    state: &AppState,
    site: &Site,
    id: &Identity,
    user_agent: Option<String>,
    ip: Option<String>,
) -> ApiResult<Contact> {
    let external = text::short_text("id", &id.id)?;
    if !auth::verify_identity(site, &external, &id.hmac) {
        return Err(ApiError::forbidden(
            "identity_invalid",
            "the identity's hmac does not match",
        ));
    }
    let name = id
        .name
        .as_deref()
        .map(|n| text::short_text("name", n))
        .transpose()?;
    let email = id
        .email
        .as_deref()
        .map(|e| text::email("email", e))
        .transpose()?;
    if let Some(c) = state
        .store
        .contact_by_external_id(site.id, &external)
        .await?
    {
        return Ok(c);
    }
    Ok(state
        .store
        .create_contact(NewContact {
            site_id: Some(site.id),
            name,
            email,
            external_id: Some(external),
            verified: true,
            user_agent,
            ip,
            now: Some(state.now()),
        })
        .await?)
}

/// W3 / C1: identifies the visitor as a logged-in customer; their anonymous conversations
/// move onto the customer's contact.
#[utoipa::path(post, path = "/api/v1/widget/identify", tag = "visitor", request_body = Identity,
    responses((status = 200, body = VisitorContact), (status = 403, body = crate::error::ErrorBody)))]
async fn identify(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Json(id): Json<Identity>,
) -> ApiResult<Json<VisitorContact>> {
    let current = state.store.contact(v.session.contact_id).await?;
    let target = identified_contact(
        &state,
        &v.site,
        &id,
        current.user_agent.clone(),
        current.ip.clone(),
    )
    .await?;
    if target.id == current.id {
        return Ok(Json(VisitorContact::from(&target)));
    }
    // The session is verified as this customer, so merging into the customer is allowed (C1).
    let merged = if rules::may_merge_into(true, &target) {
        state.store.merge_contacts(current.id, target.id).await?
    } else {
        target
    };
    state
        .store
        .repoint_visitor_session(&v.token_hash, merged.id)
        .await?;
    Ok(Json(VisitorContact::from(&merged)))
}

/// The offline flow's questions: name, email, phone. An email never merges an anonymous
/// visitor into an existing contact here: that would show them someone else's history (S2).
#[utoipa::path(operation_id = "visitor_update_contact", patch, path = "/api/v1/widget/contact", tag = "visitor", request_body = VisitorContactUpdate,
    responses((status = 200, body = VisitorContact)))]
async fn update_contact(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Json(req): Json<VisitorContactUpdate>,
) -> ApiResult<Json<VisitorContact>> {
    let patch = ContactPatch {
        name: req
            .name
            .as_deref()
            .map(|n| text::short_text("name", n))
            .transpose()?
            .map(Some),
        email: req
            .email
            .as_deref()
            .map(|e| text::email("email", e))
            .transpose()?
            .map(Some),
        phone: req
            .phone
            .as_deref()
            .map(|p| text::phone("phone", p))
            .transpose()?
            .map(Some),
        ..Default::default()
    };
    let c = state
        .store
        .update_contact(v.session.contact_id, patch)
        .await?;
    Ok(Json(VisitorContact::from(&c)))
}

/// The visitor's conversations, newest first.
#[utoipa::path(operation_id = "visitor_list_conversations", get, path = "/api/v1/widget/conversations", tag = "visitor", responses((status = 200, body = Vec<VisitorConversation>)))]
async fn list_conversations(
    State(state): State<AppState>,
    v: CurrentVisitor,
) -> ApiResult<Json<Vec<VisitorConversation>>> {
    let mut out = Vec::new();
    for c in state
        .store
        .visitor_conversations(v.session.contact_id)
        .await?
    {
        if c.site_id == v.site.id {
            out.push(service::visitor_view(&state, &c).await);
        }
    }
    Ok(Json(out))
}

/// Starts the chat, or returns the one already open (two tabs get one conversation).
#[utoipa::path(post, path = "/api/v1/widget/conversations", tag = "visitor", request_body = StartRequest,
    responses((status = 201, body = VisitorConversation), (status = 200, body = VisitorConversation), (status = 403, body = crate::error::ErrorBody)))]
async fn start_conversation(
    State(state): State<AppState>,
    v: CurrentVisitor,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<VisitorConversation>)> {
    let body = body?;
    // The body is optional: an empty one starts a chat with no page and no consent.
    let req: StartRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StartRequest::default()
    } else {
        // The same codes as every other JSON body (not the socket's `invalid_frame`).
        serde_json::from_slice(&body).map_err(|e| {
            let code = if e.is_syntax() || e.is_eof() {
                "invalid_json"
            } else {
                "invalid_body"
            };
            ApiError::bad_request(code, e.to_string())
        })?
    };
    let (conv, created) = service::start_conversation(&state, &v, req).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(conv),
    ))
}

/// Entries after `after`, in order (by visible sequence).
#[utoipa::path(operation_id = "visitor_history", get, path = "/api/v1/widget/conversations/{id}/messages", tag = "visitor", params(("id" = i64, Path), HistoryQuery),
    responses((status = 200, body = Vec<VisitorMessage>), (status = 404, body = crate::error::ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Path(id): Path<ConversationId>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<VisitorMessage>>> {
    service::visitor_conversation(&state, &v, id).await?;
    let msgs = state
        .store
        .messages(id, q.after.max(0), q.limit.unwrap_or(500), true)
        .await?;
    let mut out = Vec::with_capacity(msgs.len());
    for m in &msgs {
        if let Some(vm) = service::visitor_message(&state, m).await {
            out.push(vm);
        }
    }
    Ok(Json(out))
}

/// Sends a message; acknowledged only once it is on disk. A retry with the same
/// `client_id` returns the stored message with 200.
#[utoipa::path(operation_id = "visitor_send", post, path = "/api/v1/widget/conversations/{id}/messages", tag = "visitor", params(("id" = i64, Path)), request_body = VisitorSendRequest,
    responses((status = 201, body = VisitorMessage), (status = 200, body = VisitorMessage), (status = 409, body = crate::error::ErrorBody)))]
async fn send(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Path(id): Path<ConversationId>,
    Json(req): Json<VisitorSendRequest>,
) -> ApiResult<(StatusCode, Json<VisitorMessage>)> {
    let (m, created) =
        service::visitor_send(&state, &v, id, &req.client_id, &req.body, req.attachment_id).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(m),
    ))
}

/// Read receipt (visible sequence).
#[utoipa::path(operation_id = "visitor_read", post, path = "/api/v1/widget/conversations/{id}/read", tag = "visitor", params(("id" = i64, Path)), request_body = ReadRequest,
    responses((status = 204)))]
async fn read(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Path(id): Path<ConversationId>,
    Json(req): Json<ReadRequest>,
) -> ApiResult<StatusCode> {
    service::visitor_read(&state, &v, id, req.seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// W8: the visitor ends the chat.
#[utoipa::path(post, path = "/api/v1/widget/conversations/{id}/end", tag = "visitor", params(("id" = i64, Path)),
    responses((status = 200, body = VisitorConversation), (status = 409, body = crate::error::ErrorBody)))]
async fn end(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<VisitorConversation>> {
    let conv = service::visitor_conversation(&state, &v, id).await?;
    let changed = state
        .store
        .change_status(
            id,
            confab_store::StatusChange::Close {
                by: None,
                by_visitor: true,
            },
            state.now(),
        )
        .await?;
    service::publish_change(&state, &changed).await;
    if !conv.agent_took_part {
        // E3: the visitor left before anyone answered.
        let agents = state.agents().await?;
        let items = agents
            .iter()
            .filter(|a| rules::can_view(a, &changed.conversation))
            .map(|a| (a.id, NotificationKind::MissedChat))
            .collect();
        service::notify(
            &state,
            id,
            items,
            None,
            "The visitor left before anyone answered",
        )
        .await;
    }
    Ok(Json(
        service::visitor_view(&state, &changed.conversation).await,
    ))
}

/// W8: good or bad, and a comment.
#[utoipa::path(post, path = "/api/v1/widget/conversations/{id}/rating", tag = "visitor", params(("id" = i64, Path)), request_body = RatingRequest,
    responses((status = 200, body = VisitorConversation)))]
async fn rate(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Path(id): Path<ConversationId>,
    Json(req): Json<RatingRequest>,
) -> ApiResult<Json<VisitorConversation>> {
    service::visitor_conversation(&state, &v, id).await?;
    let comment = req
        .comment
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .map(|c| text::long_text("comment", c, false))
        .transpose()?;
    let changed = state
        .store
        .rate(id, req.rating, comment.as_deref(), state.now())
        .await?;
    service::publish_change(&state, &changed).await;
    Ok(Json(
        service::visitor_view(&state, &changed.conversation).await,
    ))
}

/// W10: a page the visitor saw.
#[utoipa::path(post, path = "/api/v1/widget/page-views", tag = "visitor", request_body = PageViewRequest, responses((status = 204)))]
async fn page_view(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Json(req): Json<PageViewRequest>,
) -> ApiResult<StatusCode> {
    let view = PageView {
        url: text::url("url", &req.url)?,
        title: req
            .title
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| text::short_text("title", t))
            .transpose()?,
        referrer: req
            .referrer
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| text::url("referrer", r))
            .transpose()?,
        created_at: state.now(),
    };
    state
        .store
        .add_page_view(v.session.contact_id, view)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
