//! `Idempotency-Key` on POSTs: scope account + method + path, fingerprint of
//! the canonical body. The store decides Started / Replay / Mismatch /
//! InFlight atomically and the engine holds the key
//! (`gengate_engine::generations::idempotency`); this module reads the
//! header and turns the outcome into HTTP.

use super::auth::Auth;
use super::error::ApiError;
use crate::app::AppState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gengate_core::error::{ErrorCode, FieldIssue, ValidationErrors};
use gengate_core::idempotency::IdempotencyKey;
use gengate_engine::generations::idempotency::{self as idem, IdemHold, IdemStart};
use gengate_store::StoredResponse;

pub fn parse_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| {
        ApiError::from(ValidationErrors::single(
            "Idempotency-Key",
            FieldIssue::InvalidFormat,
            "Idempotency-Key must be printable ASCII",
        ))
    })?;
    IdempotencyKey::parse(s).map(Some).map_err(|m| {
        ValidationErrors::single("Idempotency-Key", FieldIssue::InvalidFormat, m).into()
    })
}

/// Takes the request's key (if it sent one): go ahead with the hold, or
/// answer the stored response, or refuse.
pub async fn begin(
    st: &AppState,
    auth: &Auth,
    key: Option<IdempotencyKey>,
    method: &str,
    path: &str,
    canonical_body: &[u8],
) -> Result<Begun, ApiError> {
    begin_for(st, &auth.account_id, key, method, path, canonical_body).await
}

/// [`begin`] for keys owned by `owner`: an account, or an operator on the admin API
/// (its id, which cannot equal an account's).
pub async fn begin_for(
    st: &AppState,
    owner: &gengate_core::ids::AccountId,
    key: Option<IdempotencyKey>,
    method: &str,
    path: &str,
    canonical_body: &[u8],
) -> Result<Begun, ApiError> {
    match idem::begin(&st.engine, owner, key, method, path, canonical_body).await? {
        IdemStart::Proceed(hold) => Ok(Begun::Proceed(hold)),
        IdemStart::Replay(stored) => Ok(Begun::Replay(replay(stored))),
        IdemStart::Mismatch => Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "this Idempotency-Key was already used with a different request",
        )),
        IdemStart::InFlight => Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "a request with this Idempotency-Key is still running; retry shortly",
        )),
    }
}

/// A POST that may run: with its hold on the key, or a replayed answer.
pub enum Begun {
    /// Go ahead; complete or release the hold (if any) when done.
    Proceed(Option<IdemHold>),
    /// Answer with this stored response.
    Replay(Response),
}

pub fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, stored.body).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in stored.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::from_str(&v)) {
            h.insert(k, v);
        }
    }
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// Runs a POST whose answer is a JSON body under its `Idempotency-Key`:
/// replays a stored answer, or runs `work` and stores what it answered
/// (errors store nothing, so a retry runs afresh).
pub async fn respond<F>(
    st: &AppState,
    auth: &Auth,
    key: Option<IdempotencyKey>,
    path: &str,
    canonical_body: &[u8],
    status: StatusCode,
    work: F,
) -> Result<Response, ApiError>
where
    F: std::future::Future<Output = Result<String, ApiError>>,
{
    let hold = match begin(st, auth, key, "POST", path, canonical_body).await? {
        Begun::Replay(r) => return Ok(r),
        Begun::Proceed(h) => h,
    };
    let body = idem::settle(&st.engine, hold, work.await, |body| {
        Ok(StoredResponse {
            status: status.as_u16(),
            headers: vec![],
            body: body.clone(),
        })
    })
    .await?;
    Ok((status, [("content-type", "application/json")], body).into_response())
}
