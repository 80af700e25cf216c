//! The embedded web front-ends: the inbox at `/`, the widget at `/widget.js`, the demo page
//! at `/demo` (O2). Built by `npm run build` into `web/dist` and compiled into the binary;
//! nothing is read from the source tree at run time.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
struct Assets;

const NOT_BUILT: &str = "<!doctype html><title>Confab</title><p>The web UI was not built into this binary. \
    Run <code>npm ci && npm run build</code> in <code>web/</code>, then build Confab again. The API is at <code>/api</code>.</p>";

fn asset(path: &str) -> Option<Response> {
    let file = Assets::get(path)?;
    let mime = mime_for(path);
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut r = Response::new(axum::body::Body::from(file.data.into_owned()));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(r)
}

fn mime_for(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// The inbox and its assets.
pub async fn inbox(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        // Unknown API paths answer in the API's error format.
        return crate::error::ApiError::not_found("route").into_response();
    }
    if let Some(r) = asset(path).filter(|_| !path.is_empty()) {
        return r;
    }
    if path.is_empty() || path == "index.html" {
        return asset("index.html").unwrap_or_else(|| Html(NOT_BUILT).into_response());
    }
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// The widget script, loadable from any page (CORS is not needed for a script tag).
pub async fn widget() -> Response {
    asset("widget.js")
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "widget not built").into_response())
}

/// O2: a page that embeds the widget for the first site.
pub async fn demo(State(state): State<AppState>) -> Response {
    let Some(page) = Assets::get("demo.html") else {
        return Html(NOT_BUILT).into_response();
    };
    let key = match state.store.list_sites().await {
        Ok(sites) => sites
            .first()
            .map(|s| s.public_key.clone())
            .unwrap_or_default(),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let html = String::from_utf8_lossy(&page.data).replace("{{SITE_KEY}}", &key);
    Html(html).into_response()
}
