//! Who is calling: an API key presented with a request, checked against
//! its stored hash (through the in-process key cache), its revocation and
//! its expiry; then the key's request budget for the class of request; then
//! its last use, recorded at most once a minute and never on the request's
//! path.

use crate::Engine;
use crate::infra::limits::Decision;
use gengate_core::apikey;
use gengate_core::scope::RequestClass;
use gengate_store::{ApiKeyRecord, StoreError};
use std::sync::Arc;

/// Why a presented key does not authenticate. Each is its own public code.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a key of ours (malformed, unknown, or the wrong secret).
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key was revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
    /// The key's account is suspended by the operator.
    #[error("the account of this API key is suspended")]
    AccountSuspended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key record behind `key` (the bearer token as sent, trimmed).
pub async fn authenticate(st: &Engine, key: &str) -> Result<Arc<ApiKeyRecord>, AuthError> {
    let prefix = apikey::visible_prefix(key).ok_or(AuthError::Invalid)?;
    let record = st
        .keys
        .get_or_load(prefix, std::time::Instant::now(), || {
            st.store.find_api_key_by_prefix(prefix)
        })
        .await?
        .ok_or(AuthError::Invalid)?;
    if !apikey::hashes_equal(&apikey::hash(key), &record.key_hash) {
        return Err(AuthError::Invalid);
    }
    if record.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if record.expires_at.is_some_and(|e| e <= st.clock.now()) {
        return Err(AuthError::Expired);
    }
    if record.account_suspended {
        return Err(AuthError::AccountSuspended);
    }
    Ok(record)
}

/// Takes one request of `class` from the key's budget (its own override,
/// else the node's default).
pub async fn admit(st: &Engine, record: &ApiKeyRecord, class: RequestClass) -> Decision {
    let per_minute = match class {
        RequestClass::Create => record
            .rates
            .create_per_min
            .unwrap_or(st.config.rate_create_per_min),
        RequestClass::Read => record
            .rates
            .read_per_min
            .unwrap_or(st.config.rate_read_per_min),
        RequestClass::Upload => record
            .rates
            .upload_per_min
            .unwrap_or(st.config.rate_upload_per_min),
    };
    st.limiter
        .check(record.id.as_str(), class, per_minute)
        .await
}

/// Records the key's last use in the background, at most once a minute per
/// key and node: `last_used_at` is "to within a minute", and a write per
/// request would cost more than the request.
pub fn touch(st: &Engine, record: &ApiKeyRecord) {
    if !st.keys.due_for_touch(&record.id, std::time::Instant::now()) {
        return;
    }
    let store = st.store.clone();
    let (id, now) = (record.id.clone(), st.clock.now());
    tokio::spawn(async move {
        if let Err(e) = store.touch_api_key(&id, now).await {
            tracing::debug!(error = %e, key = %id, "could not record the key's last use");
        }
    });
}
