//! Accounts and API keys: the operator's side. A key's secret is returned
//! once, here, and never stored.
//!
//! Owns accounts, API keys (issuing, the account's own key management,
//! authenticating a request's key through the key cache), credit changes by
//! the operator and spend limits. Besides the `Engine` handle (store, clock,
//! key cache), imports `infra` only; never `generations`, `runner`,
//! `providers` or `webhooks`.

pub mod auth;
pub mod keycache;
pub mod keys;
pub mod spend;

pub use spend::SpendLimitState;

use gengate_core::Timestamp;
use gengate_core::apikey;
use gengate_core::credits::LedgerKind;
use gengate_core::ids::AccountId;
use gengate_core::scope::Scope;
use gengate_core::text::{self, TextRule};
use gengate_store::{
    Account, ApiKeyRecord, CreateTaskError, NewApiKey, RateOverrides, Store, StoreError,
};

pub struct IssuedKey {
    pub record: ApiKeyRecord,
    /// The full key: show it once.
    pub secret: String,
}

/// Operator-given names and reasons follow the API's text rule for
/// single-line values (`gengate_core::text`): they are listed one per line.
fn operator_line(field: &str, s: &str) -> Result<(), StoreError> {
    text::require(field, s, TextRule::Line).map_err(|e| StoreError::Conflict(e.summary()))
}

pub async fn create_account(
    store: &dyn Store,
    name: &str,
    credits: i64,
    now: Timestamp,
) -> Result<Account, CreateTaskError> {
    if name.trim().is_empty() {
        return Err(StoreError::Conflict("an account needs a name".into()).into());
    }
    operator_line("account name", name)?;
    if store.find_account_by_name(name).await?.is_some() {
        return Err(StoreError::Conflict(format!("an account named {name:?} exists")).into());
    }
    let mut account = store.create_account(name, now).await?;
    if credits > 0 {
        account.balance = store
            .change_credits(
                &account.id,
                LedgerKind::Grant,
                credits,
                "initial grant",
                now,
            )
            .await?;
    }
    Ok(account)
}

pub async fn issue_key(
    store: &dyn Store,
    account: &AccountId,
    name: &str,
    scopes: Vec<Scope>,
    expires_at: Option<Timestamp>,
    rates: RateOverrides,
    now: Timestamp,
) -> Result<IssuedKey, StoreError> {
    operator_line("key name", name)?;
    let Some(owner) = store.get_account(account).await? else {
        return Err(StoreError::NotFound(format!("account {account}")));
    };
    // `gg_test_…` for a sandbox account, `gg_live_…` otherwise.
    let material = apikey::generate_for(owner.sandbox);
    let record = store
        .create_api_key(&NewApiKey {
            account_id: account.clone(),
            name: name.to_owned(),
            visible_prefix: material.visible_prefix,
            key_hash: material.hash,
            scopes: if scopes.is_empty() {
                Scope::ALL.to_vec()
            } else {
                scopes
            },
            rates,
            expires_at,
            now,
        })
        .await?;
    Ok(IssuedKey {
        record,
        secret: material.secret,
    })
}

/// Switches an account between sandbox (every task on the sandbox
/// provider) and live. Its existing keys keep working and keep their
/// prefix; keys made afterwards get the new one.
pub async fn set_sandbox(
    store: &dyn Store,
    account: &AccountId,
    sandbox: bool,
) -> Result<(), StoreError> {
    if !store.set_account_sandbox(account, sandbox).await? {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    Ok(())
}

/// Sets (or with `None` clears) a key's spend limit. It applies from the
/// next create on, counting the key's tasks already in the window.
pub async fn set_spend_limit(
    store: &dyn Store,
    key: &gengate_core::ids::ApiKeyId,
    limit: Option<gengate_core::spend::SpendLimit>,
) -> Result<(), StoreError> {
    if !store.set_spend_limit(key, limit).await? {
        return Err(StoreError::NotFound(format!("key {key}")));
    }
    Ok(())
}

/// What a key's tasks hold now against its limit (zero without one).
pub async fn key_spent(
    store: &dyn Store,
    key: &ApiKeyRecord,
    now: Timestamp,
) -> Result<gengate_core::Credits, StoreError> {
    let Some(limit) = key.spend_limit else {
        return Ok(gengate_core::Credits::ZERO);
    };
    let held = store.key_spend(&key.id, limit.counts_after(now)).await?;
    gengate_core::Credits::new(held.iter().map(|(_, c)| c.get()).sum())
        .map_err(|e| StoreError::Internal(e.to_string()))
}

/// Grants or adjusts credits by hand, with the operator's reason.
pub async fn change_credits(
    store: &dyn Store,
    account: &AccountId,
    kind: LedgerKind,
    amount: i64,
    reason: &str,
    now: Timestamp,
) -> Result<gengate_core::Credits, CreateTaskError> {
    operator_line("reason", reason)?;
    store
        .change_credits(account, kind, amount, reason, now)
        .await
}

/// On an empty database: the `default` account with `credits` and a key
/// with every scope. Returns the key to print, once.
pub async fn bootstrap(
    store: &dyn Store,
    credits: i64,
    now: Timestamp,
) -> Result<Option<(Account, IssuedKey)>, CreateTaskError> {
    if !store.list_accounts().await?.is_empty() {
        return Ok(None);
    }
    let account = create_account(store, "default", credits, now).await?;
    let key = issue_key(
        store,
        &account.id,
        "default",
        Scope::ALL.to_vec(),
        None,
        RateOverrides::default(),
        now,
    )
    .await?;
    Ok(Some((account, key)))
}
