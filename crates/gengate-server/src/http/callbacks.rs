//! `POST /internal/callbacks/{provider}/{task_id}?token=…`: where vendors report status
//! changes. Not part of the public API (no API key, not in the OpenAPI document).
//!
//! A callback is only a hint: with a valid token it makes the task's job due now and wakes
//! the runner, and the provider re-queries the vendor before trusting anything. Repeating
//! one is harmless (settling is compare-and-set), and a forged one is refused before any
//! database read.

use super::error::ApiError;
use super::extract::{Path, Query};
use crate::app::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gengate_core::error::ErrorCode;
use gengate_core::ids::TaskId;
use serde::Deserialize;
use serde_json::json;

/// Kling's task objects are a few KB; anything much larger is not a callback.
const MAX_CALLBACK_BYTES: usize = 256 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/internal/callbacks/{provider}/{task_id}", post(callback))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_CALLBACK_BYTES))
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// Accepted callbacks answer `{"outcome": …}`; refused ones answer the
/// public error envelope like every other route, with the outcome in the
/// message (a bad token is the callback's `api_key_invalid`).
fn answer(status: StatusCode, outcome: &'static str) -> Response {
    metrics::counter!("gengate_vendor_callbacks_total", "outcome" => outcome).increment(1);
    let refused = |code: ErrorCode| {
        let message = format!("callback refused: {outcome}");
        match code {
            ErrorCode::ServiceUnavailable => ApiError::unavailable(message),
            _ => ApiError::new(code, message),
        }
        .into_response()
    };
    match status {
        StatusCode::UNAUTHORIZED => refused(ErrorCode::ApiKeyInvalid),
        StatusCode::NOT_FOUND => refused(ErrorCode::NotFound),
        StatusCode::SERVICE_UNAVAILABLE => refused(ErrorCode::ServiceUnavailable),
        _ => (status, axum::Json(json!({"outcome": outcome}))).into_response(),
    }
}

async fn callback(
    State(st): State<AppState>,
    Path((provider, task_id)): Path<(String, String)>,
    Query(q): Query<TokenQuery>,
    body: Bytes,
) -> Response {
    // The token binds provider and task id: checked first, so strangers learn nothing
    // (not even whether a task exists) and cause no reads.
    if !crate::callbacks::verify(&st.links.key, &provider, &task_id, &q.token) {
        tracing::warn!(%provider, task = %task_id, "vendor callback with a bad token refused");
        return answer(StatusCode::UNAUTHORIZED, "bad_token");
    }
    let Some(p) = st.providers.get(&provider) else {
        return answer(StatusCode::NOT_FOUND, "unknown_provider");
    };
    let Some(id) = TaskId::parse(&task_id) else {
        return answer(StatusCode::NOT_FOUND, "unknown_task");
    };
    let upstream = match st.store.load_upstream(&id).await {
        Ok(u) => u,
        // Answering 5xx invites the vendor to retry, which is what we want here.
        Err(e) => {
            tracing::warn!(task = %id, error = %e, "vendor callback: store unavailable");
            return answer(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
        }
    };
    if !p.callback(&id, upstream.as_ref(), &q.token, &body).await {
        // Accepted and ignored (a non-terminal status, or a body we cannot use): a 2xx so
        // the vendor does not retry something that will not change.
        return answer(StatusCode::OK, "ignored");
    }
    match st.store.wake_job(&id, st.clock.now()).await {
        Ok(true) => {
            st.nudges.nudge(&id);
            st.runner_wakeup.notify_one();
            answer(StatusCode::OK, "woken")
        }
        // The task already ended (an earlier callback or a poll settled it).
        Ok(false) => answer(StatusCode::OK, "already_ended"),
        Err(e) => {
            tracing::warn!(task = %id, error = %e, "vendor callback: could not wake the job");
            answer(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        }
    }
}
