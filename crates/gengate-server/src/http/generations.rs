use super::auth::Auth;
use super::body::JsonBody;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{Path, Query};
use super::idempotency::{self, Begun};
use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gengate_core::error::{ErrorCode, FieldIssue, ValidationErrors};
use gengate_core::generation::{Generation, parse_create_request};
use gengate_core::idempotency::canonical_json;
use gengate_core::ids::TaskId;
use gengate_engine::generations::{self as domain, CancelError, GenerationError, WaitUntil};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

impl From<GenerationError> for ApiError {
    fn from(e: GenerationError) -> Self {
        match e {
            GenerationError::Invalid(v) => v.into(),
            GenerationError::Create(c) => c.into(),
            GenerationError::SpendLimit(d) => ApiError::spend_limit(d),
            GenerationError::Store(s) => s.into(),
            GenerationError::ProviderUnavailable {
                model, retry_after, ..
            } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                ApiError {
                    retry_after_secs: Some(secs),
                    ..ApiError::new(
                        ErrorCode::ProviderUnavailable,
                        format!(
                            "{model} cannot take tasks right now: its upstream provider is unavailable; nothing was charged, retry after {secs} s"
                        ),
                    )
                }
            }
        }
    }
}

/// The request body (see `Params.<model id>` for each model's params).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CreateGenerationBody {
    #[schema(example = "kling-3-0")]
    model: String,
    #[schema(example = "A cinematic product reveal with smooth camera movement")]
    prompt: String,
    #[schema(value_type = Option<Object>)]
    params: Option<serde_json::Value>,
    #[schema(max_length = 128)]
    client_request_id: Option<String>,
}

/// Create a generation task. Everything is validated first; then one
/// transaction debits the price (within the key's spend limit), inserts the
/// task and its job, and records the idempotency key. With `Prefer: wait=N`
/// the answer is held until the task ends (`200`) or N seconds pass (`202`).
/// An idempotent replay always returns the first answer as stored with the
/// task (`202`, the task as created) and does not wait.
#[utoipa::path(post, path = "/api/v1/generations", tag = "generations", security(("bearer" = [])),
    request_body(content = CreateGenerationBody, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; replays the first answer"),
           ("Prefer" = Option<String>, Header, description = "RFC 7240; `wait=N` (1..=60): hold the answer until the task ends or N seconds pass. Other preferences are ignored")),
    responses(
        (status = 200, description = "with `Prefer: wait=N`: the task ended in time (succeeded or failed)", body = Generation, headers(("Location" = String), ("Preference-Applied" = String, description = "wait=N"))),
        (status = 202, body = Generation, headers(("Location" = String), ("Preference-Applied" = String, description = "wait=N, when a wait was asked for and applied"))),
        (status = 400, description = "validation_failed", body = ErrorEnvelope),
        (status = 401, description = "api_key_missing | api_key_invalid | api_key_revoked | api_key_expired", body = ErrorEnvelope),
        (status = 402, description = "insufficient_credits | spend_limit_exceeded (the key's spend limit; `spend_limit` in the error says limit, window, spent and when room frees)", body = ErrorEnvelope),
        (status = 403, description = "api_scope_denied", body = ErrorEnvelope),
        (status = 409, description = "idempotency_conflict", body = ErrorEnvelope),
        (status = 413, description = "payload_too_large", body = ErrorEnvelope),
        (status = 429, description = "rate_limited", body = ErrorEnvelope),
        (status = 503, description = "service_unavailable | public_api_disabled | provider_unavailable (the model's upstream provider cannot take tasks now; nothing was charged); Retry-After is set", body = ErrorEnvelope),
    ))]
pub async fn create_generation(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let key = idempotency::parse_key(&headers);
    let prefer = super::prefer::wait(&headers);
    let parsed = match (
        parse_create_request(&st.engine.catalog.current(), &body),
        prefer,
    ) {
        (Ok(r), Ok(w)) => Ok((r, w)),
        (Err(v), Ok(_)) | (Ok(_), Err(v)) => Err(v),
        (Err(mut v), Err(p)) => {
            v.extend(p);
            Err(v)
        }
    };
    // Report header and body problems together.
    let (key, (req, wait)) = match (key, parsed) {
        (Ok(k), Ok(r)) => (k, r),
        (Err(e), Ok(_)) => return Err(e),
        (Ok(_), Err(v)) => return Err(v.into()),
        (Err(mut e), Err(v)) => {
            e.details.extend(v.into_problems());
            e.message = format!("{} (and more problems in the body)", e.message);
            return Err(e);
        }
    };
    let references = st
        .engine
        .resolve_references(&auth.account_id, &req.model, &req.references)
        .await?;
    let path = "/api/v1/generations";
    let hold = match idempotency::begin(
        &st,
        &auth,
        key,
        "POST",
        path,
        canonical_json(&body).as_bytes(),
    )
    .await?
    {
        Begun::Replay(resp) => return Ok(resp),
        Begun::Proceed(h) => h,
    };
    // The hold ends in the engine: completed with the task, or freed for a
    // retry when the create is refused; nothing holds it during a wait.
    let (task, view) = st
        .engine
        .create_generation(&auth.account_id, &auth.key_id, req, references, hold)
        .await?;
    let (status, view) = match wait {
        None => (StatusCode::ACCEPTED, view),
        Some(d) => {
            let task = st
                .engine
                .wait_for_change(&auth.account_id, task.clone(), d, WaitUntil::Terminal)
                .await?;
            let status = if task.status.is_terminal() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            (status, st.engine.view(&task))
        }
    };
    let mut resp = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&domain::location(&task.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(d) = wait
        && let Ok(v) = HeaderValue::from_str(&format!("wait={}", d.as_secs()))
    {
        resp.headers_mut().insert("preference-applied", v);
    }
    Ok(resp)
}

/// A generation task. With `?wait=N` (1..=60) the answer is held until the
/// status changes or N seconds pass; with `&until=terminal`, until the task
/// ends or N seconds pass.
#[utoipa::path(get, path = "/api/v1/generations/{task_id}", tag = "generations", security(("bearer" = [])),
    params(("task_id" = String, Path), ("wait" = Option<u32>, Query, minimum = 1, maximum = 60, description = "long poll: seconds to wait for a status change, 1..=60"),
           ("until" = Option<String>, Query, pattern = "^(change|terminal)$", description = "what `wait` waits for: `change` (default, the next status change) or `terminal` (the end of the task)")),
    responses((status = 200, body = Generation), (status = 404, body = ErrorEnvelope), (status = 400, body = ErrorEnvelope)))]
pub async fn get_generation(
    State(st): State<AppState>,
    auth: Auth,
    Path(task_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Generation>, ApiError> {
    let mut errs = ValidationErrors::new();
    let wait = match q.get("wait") {
        None => None,
        Some(w) => match w.parse::<u64>() {
            Ok(n) if (1..=60).contains(&n) => Some(Duration::from_secs(n)),
            _ => {
                errs.push(
                    "wait",
                    FieldIssue::OutOfRange,
                    "wait must be an integer from 1 to 60",
                );
                None
            }
        },
    };
    let until = match q.get("until").map(String::as_str) {
        None | Some("change") => WaitUntil::Change,
        Some("terminal") => WaitUntil::Terminal,
        Some(_) => {
            errs.push(
                "until",
                FieldIssue::NotAllowed,
                "until must be change or terminal",
            );
            WaitUntil::Change
        }
    };
    errs.into_result()?;
    let id = TaskId::parse(&task_id).ok_or_else(|| ApiError::not_found("generation"))?;
    let task = st
        .engine
        .get_generation(&auth.account_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))?;
    let task = match wait {
        // A task still open came from the store, so this Arc is the only one
        // and unwrapping it copies nothing.
        Some(d) if !task.status.is_terminal() => Arc::new(
            st.engine
                .wait_for_change(&auth.account_id, Arc::unwrap_or_clone(task), d, until)
                .await?,
        ),
        _ => task,
    };
    Ok(Json(st.engine.view(&task)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GenerationList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<Generation>,
    pub has_more: bool,
}

/// The account's generations, newest first.
#[utoipa::path(get, path = "/api/v1/generations", tag = "generations", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"),
           ("starting_after" = Option<String>, Query, description = "a task id: list the ones older than it"),
           ("status" = Option<String>, Query), ("client_request_id" = Option<String>, Query, min_length = 1, max_length = 128)),
    responses((status = 200, body = GenerationList), (status = 400, body = ErrorEnvelope)))]
pub async fn list_generations(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<GenerationList>, ApiError> {
    let query = domain::parse_list_query(&q)?;
    let (tasks, has_more) = st.engine.list_generations(&auth.account_id, &query).await?;
    Ok(Json(GenerationList {
        object: "list",
        data: tasks.iter().map(|t| st.engine.view(t)).collect(),
        has_more,
    }))
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::NotFound => ApiError::not_found("generation"),
            CancelError::NotCancelable { status } => ApiError::new(
                ErrorCode::NotCancelable,
                format!(
                    "this task is already {} at its upstream provider, which cannot cancel it; it will finish and be charged (or refunded if it fails)",
                    status.as_str()
                ),
            ),
            CancelError::Store(s) => s.into(),
        }
    }
}

/// Cancel a task. One still queued (or running on the sandbox) ends at once
/// as `failed` with `error.code = "canceled"`, its reserved credits refunded
/// in full, and `generation.failed` is sent. One its upstream already runs
/// and cannot stop is `409 not_cancelable`, unchanged. One already ended is
/// returned as it is.
#[utoipa::path(post, path = "/api/v1/generations/{task_id}/cancel", tag = "generations", security(("bearer" = [])),
    params(("task_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; replays the first answer")),
    responses(
        (status = 200, description = "the task, canceled now or already ended", body = Generation),
        (status = 401, description = "api_key_missing | api_key_invalid | api_key_revoked | api_key_expired", body = ErrorEnvelope),
        (status = 403, description = "api_scope_denied", body = ErrorEnvelope),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 409, description = "not_cancelable (already with an upstream that cannot cancel; it will finish and be charged) | idempotency_conflict", body = ErrorEnvelope),
        (status = 429, description = "rate_limited", body = ErrorEnvelope),
        (status = 503, description = "service_unavailable", body = ErrorEnvelope),
    ))]
pub async fn cancel_generation(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(task_id): Path<String>,
) -> Result<Response, ApiError> {
    let key = idempotency::parse_key(&headers)?;
    let id = TaskId::parse(&task_id).ok_or_else(|| ApiError::not_found("generation"))?;
    let path = format!("/api/v1/generations/{id}/cancel");
    let work = async {
        let task = st.engine.cancel_generation(&auth.account_id, &id).await?;
        serde_json::to_string(&st.engine.view(&task)).map_err(ApiError::internal)
    };
    idempotency::respond(&st, &auth, key, &path, b"", StatusCode::OK, work).await
}

/// What a create with this body would cost.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct QuoteAnswer {
    #[schema(example = "kling-3-0")]
    pub model: String,
    /// The price for this account, in whole credits: what a create reserves now.
    pub credits: i64,
    /// The lines the price is made of; they sum to `credits`.
    pub breakdown: Vec<gengate_core::pricing::QuoteItem>,
    /// `FIXED` or `RULES`.
    #[schema(example = "FIXED")]
    pub billing_type: String,
    /// The balance after such a create; negative means it would be refused (`402 insufficient_credits`).
    pub balance_after: i64,
    /// The version of the model's price this quote used (a task records the version it was created with).
    pub price_version: String,
}

/// The price of a generation, without creating it: the same body and the same
/// validation as a create (`400 validation_failed` naming every bad field), never charges,
/// never holds an `Idempotency-Key`. The price includes the account's price adjustment.
#[utoipa::path(post, path = "/api/v1/generations/quote", tag = "generations", security(("bearer" = [])),
    request_body(content = CreateGenerationBody, content_type = "application/json"),
    responses(
        (status = 200, body = QuoteAnswer),
        (status = 400, description = "validation_failed", body = ErrorEnvelope),
        (status = 401, description = "api_key_missing | api_key_invalid | api_key_revoked | api_key_expired", body = ErrorEnvelope),
        (status = 403, description = "api_scope_denied (needs generations:create)", body = ErrorEnvelope),
        (status = 429, description = "rate_limited", body = ErrorEnvelope),
    ))]
pub async fn quote_generation(
    State(st): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> Result<Json<QuoteAnswer>, ApiError> {
    let req = parse_create_request(&st.engine.catalog.current(), &body)?;
    // References are checked as a create checks them, so a quote never accepts what a
    // create would refuse.
    st.engine
        .resolve_references(&auth.account_id, &req.model, &req.references)
        .await?;
    let (q, balance_after) =
        gengate_engine::generations::quote(&st.engine, &auth.account_id, &req).await?;
    Ok(Json(QuoteAnswer {
        model: req.model.id.clone(),
        credits: q.credits,
        breakdown: q.breakdown,
        billing_type: req.model.billing_type.clone(),
        balance_after,
        price_version: q.price_version,
    }))
}
