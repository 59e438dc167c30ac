//! `/api/v1/keys`: the account's own API keys. Parse, call the keys domain,
//! serialise. Scope `keys:manage`.

use super::auth::Auth;
use super::body::JsonBody;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::Path;
use super::idempotency::{self, Begun};
use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gengate_core::apikey::request::{Caller, parse_create};
use gengate_core::error::{FieldIssue, ValidationErrors};
use gengate_core::idempotency::canonical_json;
use gengate_core::ids::ApiKeyId;
use gengate_engine::accounts::keys::{self, KeyView};
use serde::Serialize;

/// The body of `POST /api/v1/keys` (documentation only; the parser is
/// `gengate_core::apikey::request`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KeyBody {
    /// 1..=100 characters, one line.
    name: String,
    /// A subset of the calling key's scopes; left out, all of them.
    #[schema(example = json!(["generations:create", "generations:read"]))]
    scopes: Option<Vec<String>>,
    /// RFC 3339, in the future, not after the calling key's own expiry;
    /// left out, the calling key's expiry (none if it never expires).
    expires_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<KeyView>,
    /// Always false: every key of the account is in `data`.
    pub has_more: bool,
}

/// The account's API keys, newest first, revoked ones included. Never a secret.
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", security(("bearer" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_keys(State(st): State<AppState>, auth: Auth) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        object: "list",
        data: st.engine.list_keys(&auth.account_id).await?,
        has_more: false,
    }))
}

/// Create a key for this account. The full key (`secret`) is in this answer
/// only; an `Idempotency-Key` replay answers the same key without it. A key
/// cannot grant a scope it lacks (`validation_failed` naming `scopes[i]`) or
/// outlive itself.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", security(("bearer" = [])),
    request_body(content = KeyBody, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; replays the first answer, without the secret")),
    responses((status = 201, body = KeyView), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn create_key(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let idem = idempotency::parse_key(&headers)?;
    let now = st.engine.clock.now();
    let req = parse_create(
        &body,
        &Caller {
            scopes: &auth.key.scopes,
            expires_at: auth.key.expires_at,
        },
        now,
    )?;
    let hold = match idempotency::begin(
        &st,
        &auth,
        idem,
        "POST",
        "/api/v1/keys",
        canonical_json(&body).as_bytes(),
    )
    .await?
    {
        Begun::Replay(r) => return Ok(r),
        Begun::Proceed(h) => h,
    };
    let view = st
        .engine
        .create_key(&auth.account_id, req, now, hold)
        .await?;
    let body = serde_json::to_string(&view).map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        [("content-type", "application/json")],
        body,
    )
        .into_response())
}

/// The body of `PATCH /api/v1/keys/{key_id}` (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KeyPatch {
    /// The new limit, or null to remove it.
    spend_limit: Option<SpendLimitInput>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SpendLimitInput {
    /// Credits the key's tasks may hold in the window, ≥ 1.
    #[schema(minimum = 1, example = 900)]
    limit: i64,
    /// `24h`, `30m`, `7d`, `90s` (up to 366d), or `total` / left out for a fixed total.
    #[schema(example = "24h")]
    window: Option<String>,
}

/// `{"spend_limit": {"limit": N, "window": "24h"} | null}`, every problem named.
pub fn parse_patch(
    body: &serde_json::Value,
) -> Result<Option<gengate_core::spend::SpendLimit>, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let Some(obj) = body.as_object() else {
        return Err(ValidationErrors::single(
            "body",
            FieldIssue::InvalidType,
            "the body must be a JSON object",
        ));
    };
    for k in obj.keys().filter(|k| k.as_str() != "spend_limit") {
        errs.push(k, FieldIssue::UnknownField, format!("unknown field {k}"));
    }
    let limit = match obj.get("spend_limit") {
        None => {
            errs.push(
                "spend_limit",
                FieldIssue::Required,
                "spend_limit is required (null removes the limit)",
            );
            None
        }
        Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Object(l)) => {
            for k in l
                .keys()
                .filter(|k| !matches!(k.as_str(), "limit" | "window"))
            {
                errs.push(
                    format!("spend_limit.{k}"),
                    FieldIssue::UnknownField,
                    format!("unknown field spend_limit.{k}"),
                );
            }
            let amount = match l.get("limit").and_then(serde_json::Value::as_i64) {
                Some(n) if n >= 1 => Some(n),
                _ => {
                    errs.push(
                        "spend_limit.limit",
                        FieldIssue::OutOfRange,
                        "spend_limit.limit must be an integer of at least 1 credit",
                    );
                    None
                }
            };
            let window = match l.get("window") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(w)) => Some(w.as_str()),
                Some(_) => {
                    errs.push(
                        "spend_limit.window",
                        FieldIssue::InvalidType,
                        "spend_limit.window must be a string such as 24h, or total",
                    );
                    None
                }
            };
            match amount.map(|a| gengate_core::spend::SpendLimit::parse(a, window)) {
                Some(Ok(l)) => Some(l),
                Some(Err(m)) => {
                    errs.push("spend_limit.window", FieldIssue::InvalidFormat, m);
                    None
                }
                None => None,
            }
        }
        Some(_) => {
            errs.push(
                "spend_limit",
                FieldIssue::InvalidType,
                "spend_limit must be an object or null",
            );
            None
        }
    };
    errs.into_result().map(|_| limit)
}

/// Set or remove the spend limit of one of the account's keys (not the
/// calling key's own). The answer shows the limit and what the key's tasks
/// hold now; the next create by that key is checked against it.
#[utoipa::path(patch, path = "/api/v1/keys/{key_id}", tag = "keys", security(("bearer" = [])),
    params(("key_id" = String, Path)),
    request_body(content = KeyPatch, content_type = "application/json"),
    responses((status = 200, body = KeyView), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update_key(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<KeyView>, ApiError> {
    let not_found = || ApiError::not_found("API key");
    let limit = parse_patch(&body)?;
    let id = ApiKeyId::parse(&id).ok_or_else(not_found)?;
    match st
        .engine
        .set_key_spend_limit(&auth.account_id, &auth.key_id, &id, limit)
        .await
    {
        Ok(Some(v)) => Ok(Json(v)),
        Ok(None) => Err(not_found()),
        Err(keys::KeyLimitError::OwnLimit) => Err(ValidationErrors::single(
            "spend_limit",
            FieldIssue::NotAllowed,
            "a key cannot change its own spend limit; use another key with keys:manage",
        )
        .into()),
        Err(keys::KeyLimitError::Store(e)) => Err(e.into()),
    }
}

/// Revoke one of the account's keys: it authenticates nothing from now on
/// (on other server nodes within their key cache time, 2 s by default).
/// Revoking a revoked key answers it unchanged. A key may revoke itself.
#[utoipa::path(delete, path = "/api/v1/keys/{key_id}", tag = "keys", security(("bearer" = [])),
    params(("key_id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_key(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    let not_found = || ApiError::not_found("API key");
    let id = ApiKeyId::parse(&id).ok_or_else(not_found)?;
    st.engine
        .revoke_key(&auth.account_id, &id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}
