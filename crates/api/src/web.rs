//! The embedded web front-ends: the inbox at `/`, the widget at `/widget.js`, the demo page
//! at `/demo` (O2). Built by `npm run build` into `web/dist` and compiled into the binary;
//! nothing is read from the source tree at run time.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{LazyLock, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use rust_embed::RustEmbed;

use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
struct Assets;

const NOT_BUILT: &str = "<!doctype html><title>Confab</title><p>The web UI was not built into this binary. \
    Run <code>npm ci && npm run build</code> in <code>web/</code>, then build Confab again. The API is at <code>/api</code>.</p>";

/// An embedded file as it is served: its bytes, its gzipped bytes (made on first use and
/// kept; `None` when gzip would not make it smaller) and an ETag per representation.
struct Served {
    raw: Bytes,
    gzip: OnceLock<Option<Bytes>>,
    etag: String,
    gzip_etag: String,
    mime: &'static str,
    cache: &'static str,
}

impl Served {
    fn new(path: &str, file: rust_embed::EmbeddedFile) -> Self {
        let raw = match file.data {
            std::borrow::Cow::Borrowed(b) => Bytes::from_static(b),
            std::borrow::Cow::Owned(v) => Bytes::from(v),
        };
        let hash = hex::encode(&file.metadata.sha256_hash()[..16]);
        Self {
            raw,
            gzip: OnceLock::new(),
            etag: format!("\"{hash}\""),
            gzip_etag: format!("\"{hash}-gz\""),
            mime: mime_for(path),
            cache: if path.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            },
        }
    }

    fn gzipped(&self) -> Option<&Bytes> {
        self.gzip
            .get_or_init(|| {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.raw.len() / 2),
                    flate2::Compression::best(),
                );
                enc.write_all(&self.raw).ok()?;
                let gz = enc.finish().ok()?;
                (gz.len() < self.raw.len()).then(|| Bytes::from(gz))
            })
            .as_ref()
    }

    /// The response for a request with these headers: gzipped when the client takes gzip,
    /// `304 Not Modified` when it already holds this representation.
    fn respond(&self, req: &HeaderMap) -> Response {
        let gzip = accepts_gzip(req).then(|| self.gzipped()).flatten();
        let etag = if gzip.is_some() {
            &self.gzip_etag
        } else {
            &self.etag
        };
        let mut r = if if_none_match(req, etag) {
            let mut r = Response::new(axum::body::Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let mut r = Response::new(axum::body::Body::from(gzip.unwrap_or(&self.raw).clone()));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(self.mime));
            if gzip.is_some() {
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            r
        };
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(self.cache));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if let Ok(v) = HeaderValue::from_str(etag) {
            h.insert(header::ETAG, v);
        }
        // `nosniff` comes from the router's `security_headers`, as on every response.
        r
    }
}

/// Every embedded file, by path; gzip happens per file on its first request.
static SERVED: LazyLock<HashMap<String, Served>> = LazyLock::new(|| {
    Assets::iter()
        .filter_map(|path| {
            let file = Assets::get(&path)?;
            Some((path.to_string(), Served::new(&path, file)))
        })
        .collect()
});

fn asset(path: &str, req: &HeaderMap) -> Option<Response> {
    SERVED.get(path).map(|s| s.respond(req))
}

/// Whether `Accept-Encoding` takes gzip (RFC 9110 §12.5.3: by name or `*`, not at q=0).
fn accepts_gzip(req: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in req.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q_zero = parts.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(!q_zero),
                "*" => any = Some(!q_zero),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2) or is `*`.
fn if_none_match(req: &HeaderMap, etag: &str) -> bool {
    req.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
            })
        })
    })
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
pub async fn inbox(uri: Uri, req: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        // Unknown API paths answer in the API's error format.
        return crate::error::ApiError::not_found("route").into_response();
    }
    if let Some(r) = asset(path, &req).filter(|_| !path.is_empty()) {
        return r;
    }
    if path.is_empty() || path == "index.html" {
        return asset("index.html", &req).unwrap_or_else(|| Html(NOT_BUILT).into_response());
    }
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// The widget script, loadable from any page (CORS is not needed for a script tag).
pub async fn widget(req: HeaderMap) -> Response {
    asset("widget.js", &req)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn gzip_only_when_the_client_takes_it() {
        for (value, takes) in [
            ("gzip", true),
            ("gzip, deflate, br, zstd", true),
            ("br;q=1.0, GZIP;q=0.5", true),
            ("x-gzip", true),
            ("*", true),
            ("gzip;q=0", false),
            ("gzip; q=0.000, *", false),
            ("*;q=0", false),
            ("br, *;q=0", false),
            ("br", false),
            ("identity", false),
            ("", false),
        ] {
            assert_eq!(
                accepts_gzip(&headers(&[("accept-encoding", value)])),
                takes,
                "{value:?}"
            );
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
        assert!(accepts_gzip(&headers(&[
            ("accept-encoding", "br"),
            ("accept-encoding", "gzip")
        ])));
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        let etag = "\"abc-gz\"";
        for (value, matches) in [
            ("\"abc-gz\"", true),
            ("W/\"abc-gz\"", true),
            ("\"x\", \"abc-gz\"", true),
            ("*", true),
            ("\"abc\"", false),
            ("abc-gz", false),
            ("", false),
        ] {
            assert_eq!(
                if_none_match(&headers(&[("if-none-match", value)]), etag),
                matches,
                "{value:?}"
            );
        }
    }

    async fn body(r: Response) -> Bytes {
        axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap()
    }

    /// W1: the widget goes out gzipped to browsers that take gzip, and a browser that
    /// already has it revalidates with its ETag and gets no body. Needs `web/dist` built
    /// (the README's test command builds it first).
    #[tokio::test]
    async fn the_widget_is_served_gzipped_and_revalidated() {
        let plain = widget(HeaderMap::new()).await;
        assert_eq!(
            plain.status(),
            StatusCode::OK,
            "web/dist/widget.js missing: run `npm ci && npm run build` in web/ first"
        );
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let plain_etag = plain.headers()[header::ETAG].clone();
        let raw = body(plain).await;

        let zipped = widget(headers(&[("accept-encoding", "gzip, br")])).await;
        assert_eq!(zipped.status(), StatusCode::OK);
        let h = zipped.headers().clone();
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[header::VARY], "accept-encoding");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert_eq!(h[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_ne!(h[header::ETAG], plain_etag, "one ETag per representation");
        let gz = body(zipped).await;
        assert!(
            gz.len() * 2 < raw.len(),
            "{} of {} bytes",
            gz.len(),
            raw.len()
        );
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, raw);

        let etag = h[header::ETAG].to_str().unwrap();
        let again = widget(headers(&[
            ("accept-encoding", "gzip"),
            ("if-none-match", etag),
        ]))
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag);
        assert!(body(again).await.is_empty());
        // The gzipped ETag does not revalidate the plain representation.
        let plain_again = widget(headers(&[("if-none-match", etag)])).await;
        assert_eq!(plain_again.status(), StatusCode::OK);
        assert_eq!(body(plain_again).await, raw);
    }
}
