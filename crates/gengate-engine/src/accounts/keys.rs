//! An account's own API keys, as the public API shows and changes them
//! (`/api/v1/keys`, scope `keys:manage`). The operator's side (CLI, bootstrap)
//! is `accounts`; both issue keys through `accounts::issue_key`, so key
//! material is made in one place.
//!
//! `KeyView` is the one JSON shape of a key everywhere in the API: list,
//! create (with its secret, once) and revoke answer it.

use crate::accounts;
use crate::accounts::keycache::KeyCache;
use gengate_core::Timestamp;
use gengate_core::apikey::request::CreateKey;
use gengate_core::ids::{AccountId, ApiKeyId};
use gengate_core::scope::Scope;
use gengate_store::{ApiKeyRecord, RateOverrides, Store, StoreError};
use serde::Serialize;

/// A key as its account sees it: never its hash, and its secret only in the
/// answer that created it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyView {
    #[cfg_attr(feature = "openapi", schema(example = "key_3k9x…"))]
    pub id: ApiKeyId,
    #[cfg_attr(feature = "openapi", schema(example = "api_key"))]
    pub object: &'static str,
    pub name: String,
    /// The first characters of the key (`gg_live_` and 8 more): enough to
    /// recognise it, useless to authenticate with.
    #[cfg_attr(feature = "openapi", schema(example = "gg_live_3k9xq2ab"))]
    pub prefix: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["generations:create", "generations:read"])))]
    pub scopes: Vec<Scope>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: Timestamp,
    /// To within a minute; null if the key never authenticated a request.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_used_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub expires_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub revoked_at: Option<Timestamp>,
    /// The full key. Only in the `201` answer of `POST /api/v1/keys`: it is
    /// stored nowhere (not even for an idempotent replay, which omits it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The key's spend limit and what its tasks hold now; null without one.
    pub spend_limit: Option<crate::accounts::SpendLimitState>,
}

impl KeyView {
    /// The key as a replay of its create answers it: the secret is shown
    /// once and stored nowhere, not even for an idempotent replay.
    pub fn without_secret(&self) -> Self {
        Self {
            secret: None,
            ..self.clone()
        }
    }

    pub fn of(r: &ApiKeyRecord) -> Self {
        Self {
            id: r.id.clone(),
            object: "api_key",
            name: r.name.clone(),
            prefix: r.visible_prefix.clone(),
            scopes: r.scopes.clone(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            secret: None,
            spend_limit: r
                .spend_limit
                .map(|l| crate::accounts::SpendLimitState::new(&l, gengate_core::Credits::ZERO)),
        }
    }
}

/// The account's keys, newest first, revoked ones included (with `revoked_at`).
pub async fn list(
    store: &dyn Store,
    account: &AccountId,
    now: Timestamp,
) -> Result<Vec<KeyView>, StoreError> {
    let mut keys = store.list_api_keys(Some(account)).await?;
    keys.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    let mut out = Vec::with_capacity(keys.len());
    for k in &keys {
        out.push(view(store, k, now).await?);
    }
    Ok(out)
}

/// A key's view with its current spend.
async fn view(store: &dyn Store, k: &ApiKeyRecord, now: Timestamp) -> Result<KeyView, StoreError> {
    let mut v = KeyView::of(k);
    if let (Some(state), Some(_)) = (v.spend_limit.as_mut(), k.spend_limit) {
        state.spent = accounts::key_spent(store, k, now).await?.get();
    }
    Ok(v)
}

/// One of the account's keys; a foreign or unknown id is `None`, as missing.
async fn key_of(
    store: &dyn Store,
    account: &AccountId,
    id: &ApiKeyId,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    Ok(store
        .list_api_keys(Some(account))
        .await?
        .into_iter()
        .find(|k| &k.id == id))
}

/// The key as it is now, after a change to it.
async fn reread(
    store: &dyn Store,
    key: &ApiKeyRecord,
    now: Timestamp,
) -> Result<KeyView, StoreError> {
    let after = store
        .find_api_key_by_prefix(&key.visible_prefix)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("key {}", key.id)))?;
    view(store, &after, now).await
}

/// Sets or clears the spend limit of one of the account's keys (`None` when
/// it is not one of them). A key may not change its own limit: a limit an
/// operator or another key put on it would otherwise be one PATCH away from gone.
pub async fn set_spend_limit(
    store: &dyn Store,
    account: &AccountId,
    caller: &ApiKeyId,
    id: &ApiKeyId,
    limit: Option<gengate_core::spend::SpendLimit>,
    now: Timestamp,
) -> Result<Option<KeyView>, KeyLimitError> {
    let Some(key) = key_of(store, account, id).await? else {
        return Ok(None);
    };
    if caller == id {
        return Err(KeyLimitError::OwnLimit);
    }
    accounts::set_spend_limit(store, id, limit).await?;
    Ok(Some(reread(store, &key, now).await?))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyLimitError {
    #[error("a key cannot change its own spend limit")]
    OwnLimit,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Issues a key for `account` with the checked request. Rate overrides are
/// the operator's to set and are not inherited.
pub async fn create(
    store: &dyn Store,
    account: &AccountId,
    req: CreateKey,
    now: Timestamp,
) -> Result<KeyView, StoreError> {
    let issued = accounts::issue_key(
        store,
        account,
        &req.name,
        req.scopes,
        req.expires_at,
        RateOverrides::default(),
        now,
    )
    .await?;
    let mut view = KeyView::of(&issued.record);
    view.secret = Some(issued.secret);
    Ok(view)
}

/// Revokes one of the account's keys (a foreign or unknown id is `None`, as
/// missing). Revoking a revoked key answers it as it is. This node forgets
/// its cached record at once; other nodes refuse the key within their cache TTL.
pub async fn revoke(
    store: &dyn Store,
    cache: &KeyCache,
    account: &AccountId,
    id: &ApiKeyId,
    now: Timestamp,
) -> Result<Option<KeyView>, StoreError> {
    let Some(key) = key_of(store, account, id).await? else {
        return Ok(None);
    };
    if key.revoked_at.is_none() {
        store.revoke_api_key(id, now).await?;
    }
    cache.forget(&key.visible_prefix);
    Ok(Some(reread(store, &key, now).await?))
}
