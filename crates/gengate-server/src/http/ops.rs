//! Health, readiness, metrics, the OpenAPI document and the JSON 404/405.

use super::error::ApiError;
use crate::app::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use gengate_core::error::ErrorCode;
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the database answers. The providers' health is reported in
/// the body but does not make the node unready: it still serves every read,
/// and an unhealthy provider is the same on every node (taking nodes out of
/// a load balancer would not help).
async fn readyz(State(st): State<AppState>) -> Response {
    match st.engine.readiness().await {
        Ok(body) => Json(body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            ApiError::unavailable("the database is not reachable").into_response()
        }
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    st.engine.status.export_metrics(&st.engine.node);
    let body = st.metrics.render();
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

/// This document: OpenAPI 3.1, generated from the server's own routes and types.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi_json(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json((*doc).clone())
}

pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

/// The route exists with other methods; axum adds the `Allow` header.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on this route"),
    )
}
