//! Attachments (W6): uploads checked by content, kept under the data folder, served only to
//! those who may see the conversation, active types always as downloads with `nosniff`.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use confab_domain::*;
use confab_store::NewAttachment;

use crate::auth::{CurrentAgent, CurrentVisitor};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::service;
use crate::state::AppState;
use crate::wire::{AttachmentInfo, UploadQuery};

/// The largest upload on any site, whatever its setting.
pub const HARD_LIMIT: u64 = 25 * 1024 * 1024;

/// Types accepted, by content.
pub const ALLOWED_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];

/// Shown inline; everything else is a download.
const INLINE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The type of `bytes` judged by their content, if it is one we accept.
pub fn sniff(bytes: &[u8], filename: &str) -> Option<&'static str> {
    if let Some(kind) = infer::get(bytes) {
        return ALLOWED_TYPES
            .iter()
            .copied()
            .find(|t| *t == kind.mime_type());
    }
    // Plain text has no magic number: accept valid UTF-8 without NULs.
    if !bytes.is_empty() && !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() {
        return Some(if filename.to_ascii_lowercase().ends_with(".csv") {
            "text/csv"
        } else {
            "text/plain"
        });
    }
    None
}

/// A file name safe to store and to put in a header.
pub fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\'))
        .take(200)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

async fn store_upload(
    state: &AppState,
    conversation: ConversationId,
    limit: u64,
    filename: &str,
    body: Body,
) -> ApiResult<AttachmentInfo> {
    let limit = limit.min(HARD_LIMIT) as usize;
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("files may be at most {limit} bytes"),
        )
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("empty", "the file is empty"));
    }
    let filename = clean_filename(filename);
    let content_type = sniff(&bytes, &filename).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            format!("allowed types: {}", ALLOWED_TYPES.join(", ")),
        )
    })?;
    let rel = format!("attachments/{}", crate::auth::new_token());
    let path = state.settings.data_dir.join(&rel);
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(ApiError::internal)?;
    }
    // Durable before the row that points at it.
    let write = async {
        let mut f = tokio::fs::File::create(&path).await?;
        tokio::io::AsyncWriteExt::write_all(&mut f, &bytes).await?;
        f.sync_all().await
    };
    write.await.map_err(ApiError::internal)?;
    let a = state
        .store
        .create_attachment(NewAttachment {
            conversation_id: conversation,
            filename,
            content_type: content_type.into(),
            size: bytes.len() as i64,
            path: rel,
            now: state.now(),
        })
        .await;
    match a {
        Ok(a) => Ok(AttachmentInfo::from(&a)),
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            Err(e.into())
        }
    }
}

async fn serve(state: &AppState, a: &Attachment) -> ApiResult<Response> {
    let bytes = tokio::fs::read(state.settings.data_dir.join(&a.path))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApiError::not_found("attachment"),
            _ => ApiError::internal(e),
        })?;
    let inline = INLINE_TYPES.contains(&a.content_type.as_str());
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        percent_encode(&a.filename)
    );
    let mut r = Response::new(Body::from(bytes));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&a.content_type).map_err(ApiError::internal)?,
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(ApiError::internal)?,
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(r)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Uploads a file into the visitor's conversation; send it with a message's `attachment_id`.
#[utoipa::path(post, path = "/api/v1/widget/conversations/{id}/attachments", tag = "visitor",
    params(("id" = i64, Path), UploadQuery), request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = AttachmentInfo), (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody)))]
pub async fn visitor_upload(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Path(id): Path<ConversationId>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<AttachmentInfo>)> {
    service::visitor_conversation(&state, &v, id).await?;
    let a = store_upload(
        &state,
        id,
        v.site.settings.max_attachment_bytes,
        &q.filename,
        body,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

/// Downloads a file of the visitor's own conversation.
#[utoipa::path(get, path = "/api/v1/widget/attachments/{id}", tag = "visitor", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn visitor_download(
    State(state): State<AppState>,
    v: CurrentVisitor,
    Path(id): Path<AttachmentId>,
) -> ApiResult<Response> {
    let a = state.store.attachment(id).await?;
    service::visitor_conversation(&state, &v, a.conversation_id).await?;
    serve(&state, &a).await
}

/// Uploads a file into a conversation the agent may see.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/attachments", tag = "agent",
    params(("id" = i64, Path), UploadQuery), request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = AttachmentInfo), (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody)))]
pub async fn agent_upload(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<ConversationId>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<AttachmentInfo>)> {
    let conv = service::agent_conversation(&state, &me.agent, id).await?;
    let site = state.store.site(conv.site_id).await?;
    let a = store_upload(
        &state,
        id,
        site.settings.max_attachment_bytes,
        &q.filename,
        body,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

/// Downloads a file of a conversation the agent may see.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "agent", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn agent_download(
    State(state): State<AppState>,
    me: CurrentAgent,
    Path(id): Path<AttachmentId>,
) -> ApiResult<impl IntoResponse> {
    let a = state.store.attachment(id).await?;
    service::agent_conversation(&state, &me.agent, a.conversation_id).await?;
    serve(&state, &a).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_judged_by_content() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0];
        assert_eq!(sniff(&png, "photo.txt"), Some("image/png"));
        assert_eq!(sniff(b"hello", "notes.txt"), Some("text/plain"));
        assert_eq!(sniff(b"a,b\n1,2", "x.csv"), Some("text/csv"));
        assert_eq!(
            sniff(b"MZ\x90\x00\x03\x00\x00\x00", "innocent.png"),
            None,
            "an executable is refused"
        );
        assert_eq!(sniff(&[0xff, 0xfe, 0x00, 0x01], "x.txt"), None);
    }

    #[test]
    fn filenames_are_cleaned() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\x\\a\"b.png"), "ab.png");
        assert_eq!(clean_filename("..."), "file");
        assert_eq!(clean_filename("faktura\u{0}.pdf"), "faktura.pdf");
    }
}
