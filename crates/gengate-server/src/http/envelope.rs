//! The last word on error answers: any 4xx/5xx that leaves the router
//! without the JSON envelope (a framework rejection, a bare status, a
//! `DefaultBodyLimit` 413) is rewritten into it here, once, for every route
//! and the fallbacks. Handlers still build their errors as `ApiError`; this
//! only catches what never went through one.

use super::error::ApiError;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use gengate_core::error::ErrorCode;

/// Headers of the original answer that still mean something on the envelope.
const KEPT: [header::HeaderName; 4] = [
    header::ALLOW,
    header::RETRY_AFTER,
    header::CONTENT_RANGE,
    header::CONNECTION,
];

/// A framework's error text is a line or two; more is not a message.
const MAX_MESSAGE_BYTES: usize = 4096;

/// Whether `resp` is an error answer that is not in the envelope.
pub fn needs_envelope(resp: &Response) -> bool {
    let status = resp.status();
    (status.is_client_error() || status.is_server_error()) && !is_json(resp.headers())
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// Rewrites a non-envelope error answer into the envelope (the caller has
/// checked [`needs_envelope`]). Runs inside the request's context, so the
/// envelope's `requestId` is the request's.
pub async fn wrap(resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let code = ErrorCode::for_status(parts.status.as_u16());
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .filter(|t| !t.is_empty());
    let message = text.unwrap_or_else(|| {
        parts
            .status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase()
    });
    let mut out = ApiError::new(code, message).into_response();
    for name in KEPT {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// An empty error answer of `status`, for tests of the rewrite.
#[cfg(test)]
fn bare(status: u16) -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = axum::http::StatusCode::from_u16(status).expect("status");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn json(resp: Response) -> serde_json::Value {
        let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&b).expect("json")
    }

    #[tokio::test]
    async fn plain_text_rejections_become_envelopes() {
        let mut r = (
            axum::http::StatusCode::BAD_REQUEST,
            "Invalid URL: Invalid UTF-8 in task_id",
        )
            .into_response();
        assert!(needs_envelope(&r));
        r = wrap(r).await;
        assert_eq!(r.status(), 400);
        assert!(is_json(r.headers()));
        let v = json(r).await;
        assert_eq!(v["error"]["code"], "validation_failed");
        assert_eq!(
            v["error"]["message"],
            "Invalid URL: Invalid UTF-8 in task_id"
        );
        assert!(
            v["error"]["requestId"]
                .as_str()
                .is_some_and(|s| s.starts_with("req_"))
        );
    }

    #[tokio::test]
    async fn bare_statuses_keep_their_meaningful_headers() {
        let mut r = bare(405);
        r.headers_mut()
            .insert(header::ALLOW, "GET,HEAD".parse().expect("header"));
        let r = wrap(r).await;
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(json(r).await["error"]["code"], "method_not_allowed");
        let r = wrap(bare(415)).await;
        assert_eq!(r.status(), 400, "no code of its own: the class's code");
    }

    #[test]
    fn envelopes_and_successes_are_left_alone() {
        assert!(!needs_envelope(&ApiError::not_found("x").into_response()));
        assert!(!needs_envelope(&Response::new(axum::body::Body::from(
            "ok"
        ))));
    }
}
