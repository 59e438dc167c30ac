//! JSON request bodies: the content type must be JSON, the size is capped
//! while reading, and malformed JSON is `validation_failed`, all in the
//! public envelope (axum's own rejections are plain text).

use super::error::ApiError;
use crate::app::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use gengate_core::error::{ErrorCode, FieldIssue, ValidationErrors};
use serde_json::Value;

pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" {
            return Err(ValidationErrors::single(
                "Content-Type",
                FieldIssue::UnsupportedMediaType,
                format!(
                    "Content-Type must be application/json (got {:?})",
                    if ct.is_empty() { "nothing" } else { ct }
                ),
            )
            .into());
        }
        let limit = state.http.max_json_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| read_error(&e, limit))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::from(ValidationErrors::single(
                "body",
                FieldIssue::InvalidJson,
                format!("the body is not valid JSON: {e}"),
            ))
        })?;
        Ok(Self(value))
    }
}

/// Whether a body read failed because the client stopped sending.
pub fn stalled(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<crate::server::BodyStalled>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Why reading a request body failed, as the caller should hear it: over the
/// cap (413), stalled past the body timeout (408), or cut off / malformed
/// framing (400).
pub fn read_error(e: &(dyn std::error::Error + 'static), limit: usize) -> ApiError {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is larger than {limit} bytes"),
            );
        }
        cause = c.source();
    }
    if stalled(e) {
        return ApiError::new(
            ErrorCode::RequestTimeout,
            "the request body stopped arriving; send it without pausing",
        );
    }
    ValidationErrors::single(
        "body",
        FieldIssue::InvalidFormat,
        format!("the request body could not be read: {e}"),
    )
    .into()
}
