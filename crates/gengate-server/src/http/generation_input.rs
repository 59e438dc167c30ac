//! `GET /api/v1/generations/{id}/input`: what a task was asked to make — the
//! prompt, the params and the reference files — for the console's task page.
//! The Generation object itself stays the contract's (API.md §5), the same
//! for create, status, list and webhooks; this is a separate read.

use super::auth::Auth;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::Path;
use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use gengate_core::generation::UrlSigner;
use gengate_core::ids::TaskId;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct GenerationInput {
    /// The task's id.
    pub id: TaskId,
    #[schema(example = "generation_input")]
    pub object: &'static str,
    pub model: String,
    pub prompt: String,
    /// The params as the server normalised them (every default filled in).
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub references: Vec<InputReference>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InputReference {
    pub file_id: String,
    pub kind: String,
    pub mime_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A fresh signed link to the file as the task used it.
    pub url: String,
}

/// What a generation task was asked for: prompt, params, reference files.
#[utoipa::path(get, path = "/api/v1/generations/{task_id}/input", tag = "generations", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    responses((status = 200, body = GenerationInput), (status = 404, body = ErrorEnvelope)))]
pub async fn get_generation_input(
    State(st): State<AppState>,
    auth: Auth,
    Path(task_id): Path<String>,
) -> Result<Json<GenerationInput>, ApiError> {
    let not_found = || ApiError::not_found("generation");
    let id = TaskId::parse(&task_id).ok_or_else(not_found)?;
    let task = st
        .engine
        .get_generation(&auth.account_id, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(GenerationInput {
        id: task.id.clone(),
        object: "generation_input",
        model: task.model.clone(),
        prompt: task.prompt.as_str().to_owned(),
        params: task.params.clone().into_value(),
        references: task
            .references
            .iter()
            .map(|r| InputReference {
                file_id: r.file_id.as_str().to_owned(),
                kind: r.kind.clone(),
                mime_type: r.mime_type.clone(),
                width: r.width,
                height: r.height,
                url: st.engine.links.sign(&r.blob_key).0,
            })
            .collect(),
    }))
}
