//! `Idempotency-Key` on POSTs: scope account + method + path, fingerprint of
//! the canonical body. The store decides Started / Replay / Mismatch /
//! InFlight atomically; this module turns that into HTTP.

use super::auth::Auth;
use super::error::ApiError;
use crate::app::AppState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gengate_core::error::{ErrorCode, FieldIssue, ValidationErrors};
use gengate_core::idempotency::{IdempotencyKey, fingerprint};
use gengate_store::{IdemBegin, IdemHolder, IdemScope, StoredResponse};

/// A request's hold on its idempotency key, if it sent one. While it exists
/// a heartbeat extends the hold's lease; dropped (the request ended or was
/// cancelled), the heartbeat stops and the lease runs out on its own.
pub struct IdemHold {
    pub scope: IdemScope,
    /// This request's token: every write on the hold is a compare-and-set on it.
    pub token: String,
    _heartbeat: Heartbeat,
}

/// Aborts the heartbeat task when the hold goes away.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Heartbeat {
    fn start(st: &AppState, scope: IdemScope, token: String) -> Self {
        let store = st.store.clone();
        let clock = st.clock.clone();
        let lease = st.config.idempotency_lease;
        Self(tokio::spawn(async move {
            loop {
                // Three beats per lease: one lost beat never lets the hold lapse.
                tokio::time::sleep(lease / 3).await;
                match store
                    .idempotency_extend(&scope, &token, clock.now().plus(lease))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(key = %scope.key, "idempotency hold lost while its request runs (lease ran out and was taken over)");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(key = %scope.key, error = %e, "idempotency heartbeat failed; trying again");
                    }
                }
            }
        }))
    }
}

pub enum IdemStart {
    /// Go ahead; complete or release the hold (if any) when done.
    Proceed(Option<IdemHold>),
    /// Answer with this stored response.
    Replay(Response),
}

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

pub async fn begin(
    st: &AppState,
    auth: &Auth,
    key: Option<IdempotencyKey>,
    method: &str,
    path: &str,
    canonical_body: &[u8],
) -> Result<IdemStart, ApiError> {
    let Some(key) = key else {
        return Ok(IdemStart::Proceed(None));
    };
    let scope = IdemScope {
        account_id: auth.account_id.clone(),
        method: method.to_owned(),
        path: path.to_owned(),
        key: key.as_str().to_owned(),
    };
    let fp = fingerprint(method, path, canonical_body);
    let now = st.clock.now();
    let holder = IdemHolder {
        node: st.node.node.clone(),
        boot: st.node.boot.clone(),
        token: gengate_core::ids::random_token(20),
    };
    match st
        .store
        .idempotency_begin(
            &scope,
            &fp,
            &holder,
            now,
            st.config.idempotency_lease,
            st.config.idempotency_keep,
        )
        .await?
    {
        IdemBegin::Started => Ok(IdemStart::Proceed(Some(IdemHold {
            _heartbeat: Heartbeat::start(st, scope.clone(), holder.token.clone()),
            scope,
            token: holder.token,
        }))),
        IdemBegin::Replay(stored) => Ok(IdemStart::Replay(replay(stored))),
        IdemBegin::Mismatch => Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "this Idempotency-Key was already used with a different request",
        )),
        IdemBegin::InFlight => Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "a request with this Idempotency-Key is still running; retry shortly",
        )),
    }
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

impl IdemHold {
    /// Store the answer for replays.
    pub async fn complete(self, st: &AppState, response: &StoredResponse) -> Result<(), ApiError> {
        let expires = st.clock.now().plus(st.config.idempotency_keep);
        let stored = st
            .store
            .idempotency_complete(&self.scope, &self.token, response, expires)
            .await?;
        if !stored {
            // Our lease ran out (the heartbeat could not reach the database)
            // and another request took the key: the work is done and
            // answered here, but this answer is not the one kept for replays.
            tracing::warn!(key = %self.scope.key, "idempotency hold was taken over before the answer was stored");
        }
        Ok(())
    }

    /// Forget the key: the request failed and stored nothing, so a retry runs afresh.
    pub async fn release(self, st: &AppState) {
        if let Err(e) = st.store.idempotency_release(&self.scope, &self.token).await {
            tracing::warn!(error = %e, "could not release idempotency key; it frees itself when its lock lapses");
        }
    }
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
        IdemStart::Replay(r) => return Ok(r),
        IdemStart::Proceed(h) => h,
    };
    match work.await {
        Ok(body) => {
            if let Some(h) = hold {
                h.complete(
                    st,
                    &StoredResponse {
                        status: status.as_u16(),
                        headers: vec![],
                        body: body.clone(),
                    },
                )
                .await?;
            }
            Ok((status, [("content-type", "application/json")], body).into_response())
        }
        Err(e) => {
            if let Some(h) = hold {
                h.release(st).await;
            }
            Err(e)
        }
    }
}
