//! Per-request context: the request id (`req_…`), available to error
//! responses and logs through a task-local, per-route metrics, and the
//! envelope rule for every error answer (`envelope.rs`).

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use gengate_core::ids::RequestId;
use std::sync::Arc;
use std::time::Instant;

/// What a log line written while a request runs says about it
/// (`telemetry::RequestFields` adds it to the line).
pub struct RequestInfo {
    pub id: RequestId,
    pub method: axum::http::Method,
    pub route: Arc<str>,
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

pub fn current_request_id() -> String {
    REQUEST
        .try_with(|r| r.id.as_str().to_owned())
        .unwrap_or_else(|_| RequestId::generate().as_str().to_owned())
}

/// Runs `fut` as the serving of the request `info` describes.
pub async fn in_request<F: std::future::Future>(info: RequestInfo, fut: F) -> F::Output {
    REQUEST.scope(info, fut).await
}

/// Runs `f` with the request the calling task serves, if any.
pub fn with_current_request<T>(f: impl FnOnce(&RequestInfo) -> T) -> Option<T> {
    REQUEST.try_with(f).ok()
}

pub async fn request_context(req: Request, next: Next) -> Response {
    let id = RequestId::generate();
    let route: Arc<str> = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| Arc::from("unmatched"), |p| Arc::from(p.as_str()));
    let method = req.method().clone();
    // Not a tracing span: the JSON log layer formats a span's fields when the
    // span is created, which cost a tenth of a status read whether or not
    // anything was logged. The task-local is read only when a line is written.
    let info = RequestInfo {
        id: id.clone(),
        method: method.clone(),
        route: route.clone(),
    };
    let started = Instant::now();
    let mut resp = in_request(info, async {
        let resp = next.run(req).await;
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
    let labels: [(&str, metrics::SharedString); 3] = [
        ("route", route.clone().into()),
        ("method", method.to_string().into()),
        ("status", status.to_string().into()),
    ];
    metrics::counter!("gengate_http_requests_total", &labels).increment(1);
    metrics::histogram!("gengate_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    let (method, route, request_id) = (method.as_str(), &*route, id.as_str());
    if status >= 500 {
        tracing::warn!(
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            request_id,
            method,
            route,
            "request failed"
        );
    } else {
        tracing::debug!(
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            request_id,
            method,
            route,
            "request"
        );
    }
    resp
}
