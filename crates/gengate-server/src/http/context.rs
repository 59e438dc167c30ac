//! Per-request context: the request id (`req_…`), available to error
//! responses and logs through a task-local, per-route metrics, and the
//! envelope rule for every error answer (`envelope.rs`).

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use gengate_core::ids::RequestId;
use std::time::Instant;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|r| r.as_str().to_owned())
        .unwrap_or_else(|_| RequestId::generate().as_str().to_owned())
}

pub async fn request_context(req: Request, next: Next) -> Response {
    let id = RequestId::generate();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut resp = REQUEST_ID
        .scope(id.clone(), async {
            let resp = next.run(req).instrument(span.clone()).await;
            // Every error leaves in the envelope, whoever produced it.
            if super::envelope::needs_envelope(&resp) {
                super::envelope::wrap(resp).await
            } else {
                resp
            }
        })
        .await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let labels = [
        ("route", route),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("gengate_http_requests_total", &labels).increment(1);
    metrics::histogram!("gengate_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    if status >= 500 {
        span.in_scope(|| {
            tracing::warn!(
                status,
                elapsed_ms = elapsed.as_millis() as u64,
                "request failed"
            )
        });
    } else {
        span.in_scope(|| {
            tracing::debug!(status, elapsed_ms = elapsed.as_millis() as u64, "request")
        });
    }
    resp
}
