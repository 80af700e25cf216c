//! Confab's HTTP and WebSocket API: the axum router, extractors, wire types, the
//! error-to-response mapping, the socket loops and the timer jobs.
//!
//! **Invariant:** only this crate knows HTTP and JSON shapes; it asks the domain for every
//! decision and the store for every fact.

pub mod auth;
pub mod cluster;
pub mod error;
pub mod events;
pub mod extract;
pub mod jobs;
pub mod routes;
pub mod service;
pub mod state;
pub mod web;
pub mod wire;
pub mod ws;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa_axum::routes;

pub use state::{ApiSettings, AppBuilder, AppState, Clock};

/// The whole application: API, sockets, documents and the embedded web UI.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = routes::api_router()
        .routes(routes!(ws_visitor))
        .routes(routes!(ws_agent))
        .routes(routes!(healthz))
        .split_for_parts();
    let openapi = Arc::new(openapi);
    let routes = Router::new()
        .merge(api)
        .route(
            "/api/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
        .route("/widget.js", get(web::widget))
        .route("/demo", get(web::demo))
        .fallback(web::inbox)
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not take that method",
            )
        })
        .with_state(state);
    // The middleware wraps the router once, outermost first, instead of each route
    // (`Router::layer`): every route then carried its own boxed copy of all six layers,
    // and each request cloned and boxed all of them again (docs/performance.md, round 14).
    // None of them needs to know the matched route.
    let layered = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(Ids::default()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(widget_cors))
        .service(routes);
    // Handed back as a `Router`, served like one (`into_make_service`), whose only route is
    // its fallback: one lookup in an empty table and one box more per request, instead of
    // naming the layered service's type.
    Router::new().fallback_service(layered)
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::api_router()
        .routes(routes!(ws_visitor))
        .routes(routes!(ws_agent))
        .routes(routes!(healthz))
        .split_for_parts()
        .1
}

/// O3: ready when the database answers.
#[utoipa::path(get, path = "/healthz", tag = "public", responses((status = 200), (status = 503)))]
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

/// The visitor socket: `hello` with the visitor token first. See docs/protocol.md.
#[utoipa::path(get, path = "/api/v1/widget/ws", tag = "public", params(("site_key" = String, Query)),
    responses((status = 101), (status = 403, body = error::ErrorBody), (status = 404, body = error::ErrorBody)))]
async fn ws_visitor(
    state: State<AppState>,
    headers: axum::http::HeaderMap,
    q: extract::Query<ws::visitor::WsQuery>,
    upgrade: axum::extract::WebSocketUpgrade,
) -> error::ApiResult<Response> {
    ws::visitor::upgrade(state, headers, q, upgrade).await
}

/// The agent socket: session cookie at the upgrade, or `hello` with an API token.
#[utoipa::path(get, path = "/api/v1/ws", tag = "public", responses((status = 101), (status = 403, body = error::ErrorBody)))]
async fn ws_agent(
    state: State<AppState>,
    headers: axum::http::HeaderMap,
    upgrade: axum::extract::WebSocketUpgrade,
) -> error::ApiResult<Response> {
    ws::agent::upgrade(state, headers, upgrade).await
}

/// Request ids: a random prefix per process and a counter.
#[derive(Clone)]
struct Ids {
    prefix: String,
    next: Arc<AtomicU64>,
}

impl Default for Ids {
    fn default() -> Self {
        Self {
            prefix: auth::new_token()[..8].to_owned(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for Ids {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// W1: the widget's API is called from the sites' own pages. Preflights are answered for
/// any origin (the real request is checked against the site's allowed origins by the
/// handler); responses name the caller's origin. No cookies are involved.
async fn widget_cors(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/v1/widget/") {
        return next.run(req).await;
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    if let Some(o) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PATCH"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

async fn security_headers(req: Request, next: Next) -> Response {
    let widget =
        req.uri().path() == "/widget.js" || req.uri().path().starts_with("/api/v1/widget/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    if !widget && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        // The inbox is never framed by another site.
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}

/// Accepted sockets send each write at once. Frames are small and each burst is flushed
/// once (`ws::Batched`); Nagle's algorithm would hold a frame back until the peer has
/// acknowledged the one before, and a peer with nothing to send delays that by up to
/// 40 ms: the p99 of delivery at 5,000 msg/s was 44 ms for it (docs/performance.md,
/// round 9).
fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    })
}

/// Serves on `listener` until `shutdown` completes, then closes sockets (1001) and waits
/// for requests in flight. Runs the timer jobs alongside.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let jobs = tokio::spawn(jobs::run(state.clone(), Duration::from_millis(500)));
    let heartbeat = tokio::spawn(cluster::heartbeat(state.clone(), Duration::from_secs(2)));
    // Made into a service once: served as a plain `Router`, axum rebuilds the whole route
    // table (a boxed clone of every route and layer) for each accepted connection, 3 % of
    // the server's samples in a day of short conversations (docs/performance.md, round 14).
    let app = router(state.clone()).into_make_service();
    let stop = state.shutdown.clone();
    let result = axum::serve(no_delay(listener), app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stop.cancelled() => {}
            }
            stop.cancel();
        })
        .await;
    state.shutdown.cancel();
    let _ = jobs.await;
    let _ = heartbeat.await;
    result
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_sockets_do_not_wait_for_acknowledgements() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = super::no_delay(listener);
        let client = tokio::net::TcpStream::connect(addr);
        let ((accepted, _), _client) = tokio::join!(listener.accept(), client);
        assert!(accepted.nodelay().unwrap());
    }
}
