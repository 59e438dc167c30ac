//! `/api/v1/webhooks…` and `/api/v1/webhook-events`: parse, call the
//! webhooks domain, serialise. Scope `webhooks:manage`.

use super::auth::Auth;
use super::body::JsonBody;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{Path, Query};
use super::idempotency;
use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gengate_core::error::{ErrorCode, FieldIssue, FieldProblem, ValidationErrors};
use gengate_core::idempotency::canonical_json;
use gengate_core::ids::{EventId, WebhookEndpointId};
use gengate_core::webhook::{EventType, parse_create_endpoint, parse_update_endpoint};
use gengate_engine::webhooks::{
    AttemptView, EndpointView, EventView, WebhookError, parse_attempt_cursor,
};
use serde::Serialize;
use std::collections::HashMap;

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid(v) => v.into(),
            WebhookError::UrlRejected(r) => {
                let message = format!("webhook URL rejected: {r}");
                ApiError {
                    details: vec![FieldProblem {
                        field: "url".into(),
                        issue: FieldIssue::NotAllowed,
                        message: r.to_string(),
                    }],
                    ..ApiError::new(ErrorCode::WebhookUrlRejected, message)
                }
            }
            WebhookError::NotFound => ApiError::not_found("webhook endpoint"),
            WebhookError::Store(s) => s.into(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<EndpointView>,
    pub has_more: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<AttemptView>,
    pub has_more: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<EventView>,
    pub has_more: bool,
}

/// The request body of create (and, all fields optional, of update).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EndpointBody {
    #[schema(example = "production")]
    name: String,
    #[schema(example = "https://example.com/hooks/gengate")]
    url: String,
    /// Default: every subscribable type.
    #[schema(example = json!(["generation.succeeded", "generation.failed", "credits.low", "key.spend_limit_reached"]))]
    event_types: Option<Vec<String>>,
    /// Update only: `active` or `disabled`.
    status: Option<String>,
}

fn endpoint_id(s: &str) -> Result<WebhookEndpointId, ApiError> {
    WebhookEndpointId::parse(s).ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

/// `limit` (1..=100, default 20) and the raw `starting_after`.
fn page(q: &HashMap<String, String>, errs: &mut ValidationErrors) -> u32 {
    gengate_core::paging::limit(q.get("limit").map(String::as_str), errs)
}

fn bad_cursor(errs: &mut ValidationErrors) {
    errs.push(
        "starting_after",
        FieldIssue::NotFound,
        "starting_after must be the id of an item of this list",
    );
}

/// Create an endpoint. The signing secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body(content = EndpointBody, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; replays the first answer")),
    responses((status = 201, body = EndpointView),
              (status = 400, description = "validation_failed | webhook_url_rejected", body = ErrorEnvelope)))]
pub async fn create_endpoint(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let key = idempotency::parse_key(&headers)?;
    let req = parse_create_endpoint(&body)?;
    idempotency::respond(
        &st,
        &auth,
        key,
        "/api/v1/webhooks",
        canonical_json(&body).as_bytes(),
        StatusCode::CREATED,
        async { json_text(&st.engine.webhooks.create(&auth.account_id, req).await?) },
    )
    .await
}

/// The account's endpoints, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"), ("starting_after" = Option<String>, Query)),
    responses((status = 200, body = EndpointList), (status = 400, body = ErrorEnvelope)))]
pub async fn list_endpoints(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<EndpointList>, ApiError> {
    let mut errs = ValidationErrors::new();
    let limit = page(&q, &mut errs);
    let after = match q.get("starting_after") {
        None => None,
        Some(s) => {
            let id = WebhookEndpointId::parse(s);
            if id.is_none() {
                bad_cursor(&mut errs);
            }
            id
        }
    };
    errs.into_result()?;
    let (data, has_more) = st
        .engine
        .webhooks
        .list(&auth.account_id, after.as_ref(), limit)
        .await?;
    Ok(Json(EndpointList {
        object: "list",
        data,
        has_more,
    }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{endpoint_id}", tag = "webhooks", security(("bearer" = [])),
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorEnvelope)))]
pub async fn get_endpoint(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let id = endpoint_id(&id)?;
    Ok(Json(st.engine.webhooks.get(&auth.account_id, &id).await?))
}

/// Change name, url, event types or status (`active` re-enables and forgets
/// the failure streak). Only the fields sent change.
#[utoipa::path(patch, path = "/api/v1/webhooks/{endpoint_id}", tag = "webhooks", security(("bearer" = [])),
    params(("endpoint_id" = String, Path)),
    request_body(content = EndpointBody, content_type = "application/json"),
    responses((status = 200, body = EndpointView), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update_endpoint(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<EndpointView>, ApiError> {
    let id = endpoint_id(&id)?;
    let req = parse_update_endpoint(&body)?;
    Ok(Json(
        st.engine
            .webhooks
            .update(&auth.account_id, &id, req)
            .await?,
    ))
}

/// Delete an endpoint: nothing more is sent to it and its pending
/// deliveries are canceled. Answers the endpoint with `revoked_at` set.
#[utoipa::path(delete, path = "/api/v1/webhooks/{endpoint_id}", tag = "webhooks", security(("bearer" = [])),
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_endpoint(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let id = endpoint_id(&id)?;
    Ok(Json(
        st.engine.webhooks.delete(&auth.account_id, &id).await?,
    ))
}

/// A new signing secret (in this answer only); the old one keeps signing
/// alongside it for 24 hours.
#[utoipa::path(post, path = "/api/v1/webhooks/{endpoint_id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("endpoint_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; replays the first answer")),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorEnvelope)))]
pub async fn rotate_secret(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (hooks, account) = (st.engine.webhooks.clone(), auth.account_id.clone());
    endpoint_action(
        &st,
        &auth,
        &headers,
        &id,
        "rotate-secret",
        StatusCode::OK,
        move |id| async move { json_text(&hooks.rotate(&account, &id).await?) },
    )
    .await
}

/// Queue a `webhook.test` event for this endpoint (delivered like any other).
#[utoipa::path(post, path = "/api/v1/webhooks/{endpoint_id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("endpoint_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; replays the first answer")),
    responses((status = 202, body = EventView), (status = 404, body = ErrorEnvelope)))]
pub async fn send_test(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (hooks, account) = (st.engine.webhooks.clone(), auth.account_id.clone());
    endpoint_action(
        &st,
        &auth,
        &headers,
        &id,
        "test",
        StatusCode::ACCEPTED,
        move |id| async move { json_text(&hooks.send_test(&account, &id).await?) },
    )
    .await
}

/// A body-less POST on one endpoint, under its `Idempotency-Key`.
async fn endpoint_action<F, Fut>(
    st: &AppState,
    auth: &Auth,
    headers: &HeaderMap,
    id: &str,
    action: &str,
    status: StatusCode,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(WebhookEndpointId) -> Fut,
    Fut: std::future::Future<Output = Result<String, ApiError>>,
{
    let key = idempotency::parse_key(headers)?;
    let id = endpoint_id(id)?;
    let path = format!("/api/v1/webhooks/{id}/{action}");
    idempotency::respond(st, auth, key, &path, b"", status, work(id)).await
}

fn json_text<T: Serialize>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v).map_err(ApiError::internal)
}

/// Every delivery attempt to this endpoint, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{endpoint_id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("endpoint_id" = String, Path), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"), ("starting_after" = Option<String>, Query)),
    responses((status = 200, body = AttemptList), (status = 404, body = ErrorEnvelope)))]
pub async fn list_deliveries(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AttemptList>, ApiError> {
    let id = endpoint_id(&id)?;
    let mut errs = ValidationErrors::new();
    let limit = page(&q, &mut errs);
    let after = match q.get("starting_after") {
        None => None,
        Some(s) => {
            let c = parse_attempt_cursor(s);
            if c.is_none() {
                bad_cursor(&mut errs);
            }
            c
        }
    };
    errs.into_result()?;
    let (data, has_more) = st
        .engine
        .webhooks
        .attempts(&auth.account_id, &id, after, limit)
        .await?;
    Ok(Json(AttemptList {
        object: "list",
        data,
        has_more,
    }))
}

/// The account's events, newest first, as they are delivered.
#[utoipa::path(get, path = "/api/v1/webhook-events", tag = "webhooks", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"), ("starting_after" = Option<String>, Query),
           ("type" = Option<String>, Query, description = "generation.succeeded | generation.failed | credits.low | key.spend_limit_reached | webhook.test")),
    responses((status = 200, body = EventList), (status = 400, body = ErrorEnvelope)))]
pub async fn list_events(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<EventList>, ApiError> {
    let mut errs = ValidationErrors::new();
    let limit = page(&q, &mut errs);
    let after = match q.get("starting_after") {
        None => None,
        Some(s) => {
            let id = EventId::parse(s);
            if id.is_none() {
                bad_cursor(&mut errs);
            }
            id
        }
    };
    let event_type = match q.get("type") {
        None => None,
        Some(t) => {
            let parsed = EventType::parse(t);
            if parsed.is_none() {
                errs.push(
                    "type",
                    FieldIssue::NotAllowed,
                    "type must be generation.succeeded, generation.failed, credits.low, key.spend_limit_reached or webhook.test",
                );
            }
            parsed
        }
    };
    errs.into_result()?;
    let (data, has_more) = st
        .engine
        .webhooks
        .events(&auth.account_id, after.as_ref(), event_type, limit)
        .await?;
    Ok(Json(EventList {
        object: "list",
        data,
        has_more,
    }))
}
