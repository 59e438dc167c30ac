//! `/api/v1/keys`: the account's own API keys. Parse, call the keys domain,
//! serialise. Scope `keys:manage`.

use super::auth::Auth;
use super::body::JsonBody;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::Path;
use super::idempotency::{self, IdemStart};
use crate::app::AppState;
use crate::keys::{self, KeyView};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gengate_core::apikey::request::{Caller, parse_create};
use gengate_core::idempotency::canonical_json;
use gengate_core::ids::ApiKeyId;
use gengate_store::StoredResponse;
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
        data: keys::list(st.store.as_ref(), &auth.account_id).await?,
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
    let now = st.clock.now();
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
        IdemStart::Replay(r) => return Ok(r),
        IdemStart::Proceed(h) => h,
    };
    let view = match keys::create(st.store.as_ref(), &auth.account_id, req, now).await {
        Ok(v) => v,
        Err(e) => {
            if let Some(h) = hold {
                h.release(&st).await;
            }
            return Err(e.into());
        }
    };
    let body = serde_json::to_string(&view).map_err(ApiError::internal)?;
    if let Some(h) = hold {
        // The secret is shown once and stored nowhere: the kept answer lacks it.
        let kept = KeyView {
            secret: None,
            ..view
        };
        let kept = serde_json::to_string(&kept).map_err(ApiError::internal)?;
        h.complete(
            &st,
            &StoredResponse {
                status: StatusCode::CREATED.as_u16(),
                headers: vec![],
                body: kept,
            },
        )
        .await?;
    }
    Ok((
        StatusCode::CREATED,
        [("content-type", "application/json")],
        body,
    )
        .into_response())
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
    keys::revoke(
        st.store.as_ref(),
        &st.keys,
        &auth.account_id,
        &id,
        st.clock.now(),
    )
    .await?
    .map(Json)
    .ok_or_else(not_found)
}
