//! Who is calling: agents by session cookie (with CSRF) or API token, visitors by session
//! token from an allowed origin. Every access decision is made on the server.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use base64::Engine;
use confab_domain::{Agent, Site};
use confab_store::VisitorSession;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "confab_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A fresh secret of 256 random bits, URL-safe.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Tokens are stored only as their SHA-256 (they are random, so no salt is needed).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// argon2id with the crate's recommended parameters.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the email is unknown, so timing does not tell.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

pub fn validate_password(p: &str) -> Result<(), ApiError> {
    if p.chars().count() < 8 {
        return Err(ApiError::bad_request(
            "weak_password",
            "password must be at least 8 characters",
        ));
    }
    if p.len() > 1024 {
        return Err(ApiError::bad_request("too_long", "password is too long"));
    }
    Ok(())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// How an agent authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// The session cookie; the value is the session's token hash.
    Session(String),
    ApiToken,
}

/// The signed-in agent, freshly loaded for this request.
#[derive(Debug, Clone)]
pub struct CurrentAgent {
    pub agent: Agent,
    pub via: Via,
    pub csrf_token: Option<String>,
}

impl CurrentAgent {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.agent.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "admin_only",
                "only admins and the owner may do this",
            ))
        }
    }
}

/// Authenticates an agent from request headers (used by the extractor and the socket).
pub async fn authenticate_agent(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<CurrentAgent, ApiError> {
    if let Some(token) = bearer(headers) {
        let agent_id = state
            .store
            .agent_by_api_token(&hash_token(token))
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let agent = state.store.agent(agent_id).await?;
        if agent.deactivated {
            return Err(ApiError::unauthorized());
        }
        return Ok(CurrentAgent {
            agent,
            via: Via::ApiToken,
            csrf_token: None,
        });
    }
    let token = cookie(headers, SESSION_COOKIE).ok_or_else(ApiError::unauthorized)?;
    let hash = hash_token(token);
    let session = state
        .store
        .session(&hash, state.now())
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    // CSRF: a cookie-authenticated change must echo the session's token in a header,
    // which another site's page cannot read.
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
            return Err(ApiError::forbidden(
                "csrf_failed",
                "missing or wrong X-CSRF-Token header",
            ));
        }
    }
    if session.agent.deactivated {
        return Err(ApiError::unauthorized());
    }
    Ok(CurrentAgent {
        agent: session.agent,
        via: Via::Session(hash),
        csrf_token: Some(session.csrf_token),
    })
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

impl FromRequestParts<AppState> for CurrentAgent {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate_agent(state, &parts.headers, &parts.method).await
    }
}

/// The request's `Origin`, if it sent one.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN)?.to_str().ok()
}

/// Whether `origin` is this server's own (the page that sent it came from us).
pub fn is_own_origin(state: &AppState, headers: &HeaderMap, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if state
        .settings
        .public_origin
        .as_deref()
        .is_some_and(|o| o.eq_ignore_ascii_case(&origin))
    {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
}

/// W1: a visitor request is refused when its `Origin` is neither allowed by the site nor
/// our own. Browsers always send `Origin` on cross-site requests and socket upgrades, so a
/// request without one is not a foreign page's (a same-origin GET, or not a browser).
pub fn check_site_origin(
    state: &AppState,
    headers: &HeaderMap,
    site: &Site,
) -> Result<(), ApiError> {
    let Some(o) = origin(headers) else {
        return Ok(());
    };
    let lower = o.trim_end_matches('/').to_ascii_lowercase();
    if site
        .settings
        .allowed_origins
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&lower))
        || is_own_origin(state, headers, o)
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "origin_not_allowed",
            format!("origin {o} is not allowed for this site"),
        ))
    }
}

/// The agent socket and API accept our own origin and configured ones.
pub fn check_agent_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(o) = origin(headers) else {
        return Ok(());
    };
    let lower = o.trim_end_matches('/').to_ascii_lowercase();
    if is_own_origin(state, headers, o)
        || state
            .settings
            .agent_origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&lower))
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "origin_not_allowed",
            format!("origin {o} is not allowed"),
        ))
    }
}

/// A visitor: their session and site, from an allowed origin.
#[derive(Debug, Clone)]
pub struct CurrentVisitor {
    pub session: VisitorSession,
    pub token_hash: String,
    pub site: Site,
}

pub async fn authenticate_visitor(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
) -> Result<CurrentVisitor, ApiError> {
    let token_hash = hash_token(token);
    let session = state
        .store
        .visitor_session(&token_hash)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "unknown visitor token",
            )
        })?;
    let site = state.site(session.site_id).await?;
    check_site_origin(state, headers, &site)?;
    Ok(CurrentVisitor {
        session,
        token_hash,
        site,
    })
}

impl FromRequestParts<AppState> for CurrentVisitor {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing visitor token",
            )
        })?;
        authenticate_visitor(state, &parts.headers, token).await
    }
}

/// W3: checks a logged-in customer's HMAC: hex(HMAC-SHA256(site secret, id)).
pub fn verify_identity(site: &Site, id: &str, mac_hex: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Ok(mac_bytes) = hex::decode(mac_hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(site.identity_secret.as_bytes()) else {
        return false;
    };
    mac.update(id.as_bytes());
    mac.verify_slice(&mac_bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_token();
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&a)
                .unwrap()
                .len(),
            32
        );
        assert_ne!(a, new_token());
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[test]
    fn passwords_use_argon2id() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; confab_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
