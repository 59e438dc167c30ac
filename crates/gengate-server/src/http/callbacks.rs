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
use gengate_engine::CallbackOutcome;
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
fn answer(outcome: CallbackOutcome) -> Response {
    let label = outcome.as_str();
    metrics::counter!("gengate_vendor_callbacks_total", "outcome" => label).increment(1);
    let message = format!("callback refused: {label}");
    match outcome {
        CallbackOutcome::BadToken => {
            ApiError::new(ErrorCode::ApiKeyInvalid, message).into_response()
        }
        CallbackOutcome::UnknownProvider | CallbackOutcome::UnknownTask => {
            ApiError::new(ErrorCode::NotFound, message).into_response()
        }
        CallbackOutcome::StoreUnavailable => ApiError::unavailable(message).into_response(),
        CallbackOutcome::Ignored | CallbackOutcome::Woken | CallbackOutcome::AlreadyEnded => {
            (StatusCode::OK, axum::Json(json!({"outcome": label}))).into_response()
        }
    }
}

async fn callback(
    State(st): State<AppState>,
    Path((provider, task_id)): Path<(String, String)>,
    Query(q): Query<TokenQuery>,
    body: Bytes,
) -> Response {
    answer(
        st.engine
            .vendor_callback(&provider, &task_id, &q.token, &body)
            .await,
    )
}
