//! Bearer keys, scopes and request budgets, applied per route group. The
//! guard puts an `Auth` in the request's extensions and stamps the
//! `RateLimit-*` headers on whatever the handler answers.

use super::error::ApiError;
use crate::app::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gengate_core::error::ErrorCode;
use gengate_core::ids::{AccountId, ApiKeyId};
use gengate_core::scope::{RequestClass, Scope};
use gengate_engine::infra::limits::Decision;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Auth {
    pub account_id: AccountId,
    pub key_id: ApiKeyId,
    /// The calling key as authenticated (its scopes and expiry bound what it may grant).
    pub key: std::sync::Arc<gengate_store::ApiKeyRecord>,
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Auth>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route is missing its auth guard"))
    }
}

#[derive(Clone)]
pub struct Guard {
    pub state: AppState,
    pub scope: Scope,
    pub class: RequestClass,
}

pub async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let st = &g.state;
    if st.http.public_api_disabled {
        return ApiError::new(
            ErrorCode::PublicApiDisabled,
            "the public API is switched off by the operator",
        )
        .into_response();
    }
    let record = match authenticate(st, req.headers()).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if !record.scopes.contains(&g.scope) {
        return ApiError::new(
            ErrorCode::ApiScopeDenied,
            format!("this API key lacks the {} scope", g.scope.as_str()),
        )
        .into_response();
    }
    let decision = st.engine.admit(&record, g.class).await;
    if !decision.allowed {
        let mut e = ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "over this key's {} budget of {} requests a minute",
                g.class.as_str(),
                decision.limit
            ),
        );
        e.retry_after_secs = decision.retry_after_secs;
        let mut resp = e.into_response();
        stamp(resp.headers_mut(), &decision);
        return resp;
    }
    st.engine.touch_key(&record);
    req.extensions_mut().insert(Auth {
        account_id: record.account_id.clone(),
        key_id: record.id.clone(),
        key: record,
    });
    let mut resp = next.run(req).await;
    stamp(resp.headers_mut(), &decision);
    resp
}

async fn authenticate(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<gengate_store::ApiKeyRecord>, ApiError> {
    let Some(raw) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            ErrorCode::ApiKeyMissing,
            "send the API key as Authorization: Bearer <key>",
        ));
    };
    let invalid = || ApiError::new(ErrorCode::ApiKeyInvalid, "the API key is not valid");
    let raw = raw.to_str().map_err(|_| invalid())?;
    let Some((scheme, key)) = raw.split_once(' ') else {
        return Err(invalid());
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid());
    }
    Ok(st.engine.authenticate(key.trim()).await?)
}

fn stamp(h: &mut HeaderMap, d: &Decision) {
    for (name, v) in [
        ("ratelimit-limit", u64::from(d.limit)),
        ("ratelimit-remaining", u64::from(d.remaining)),
        ("ratelimit-reset", d.reset_secs),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            h.insert(name, v);
        }
    }
}
