//! The API's error policy.
//!
//! - One [`ApiError`] type, returned by every handler, turned into
//!   `{"error": {"code", "message"}}` with a stable snake_case `code`.
//! - Bad input says exactly what is wrong (400/413/415); a refused product rule is 409/422
//!   with the rule's code; "not yours to see" is 404, exactly like "does not exist" (S2).
//! - A busy or unreachable database is 503. Anything else is a 500 that says only
//!   `internal`; the cause is logged once, with the request id, never sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_domain::rules::Refusal;
use confab_domain::text::Invalid;
use confab_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case.
    pub code: String,
    /// For people; may change.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first")
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        // Logged once here; the request id is on the surrounding span.
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match r {
            Refusal::NotVisible => StatusCode::NOT_FOUND,
            Refusal::Forbidden | Refusal::OwnerOnly | Refusal::LoginRequired => {
                StatusCode::FORBIDDEN
            }
            Refusal::Closed | Refusal::NotClosed => StatusCode::CONFLICT,
            Refusal::AssigneeUnavailable | Refusal::ReopenNotAllowed | Refusal::SnoozeInPast => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        };
        Self::new(status, r.code(), r.to_string())
    }
}

impl From<Invalid> for ApiError {
    fn from(i: Invalid) -> Self {
        Self::bad_request(i.code(), i.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(what) => {
                Self::conflict("already_exists", format!("{what} already exists"))
            }
            StoreError::IdempotencyConflict => Self::conflict(
                "client_id_reused",
                "client_id was already used for a different message",
            ),
            StoreError::Refused(r) => r.into(),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage is busy, try again",
                )
            }
            StoreError::Internal(m) => Self::internal(m),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
