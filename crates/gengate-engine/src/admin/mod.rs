//! The operator's side (issue 22): operators with keys and roles, the audit log, and
//! the cross-account operations the admin API and the operator commands share, each
//! writing what it changed to the audit log under the actor who did it.
//!
//! Works on a bare store (the operator commands open one without an `Engine`); uses
//! `accounts` for the account rules; must not import `generations`, `runner` or
//! `webhooks`.

pub mod cluster;
pub mod overview;

use crate::accounts::{self, IssuedKey};
use gengate_core::credits::LedgerKind;
use gengate_core::error::{FieldIssue, ValidationErrors};
use gengate_core::ids::AccountId;
use gengate_core::operator::{self, OperatorRole};
use gengate_core::{Credits, Timestamp, apikey};
use gengate_store::operators::{AuditEntry, AuditFilter, NewAudit, NewOperator, OperatorRecord};
use gengate_store::{Account, CreateTaskError, Store, StoreError};
use serde_json::json;

/// Who made a change: an operator through the admin API, or the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: OperatorRole,
    /// The request the change came with (the admin API's `X-Request-Id`).
    pub request_id: Option<String>,
    /// The operator's id (none on the command line): the owner of its idempotency keys.
    pub operator: Option<gengate_core::ids::OperatorId>,
}

impl Actor {
    /// The operator commands, run by whoever can open the database.
    pub fn cli() -> Self {
        Self {
            name: "cli".into(),
            role: OperatorRole::Admin,
            request_id: None,
            operator: None,
        }
    }

    fn may_write(&self) -> Result<(), AdminError> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(AdminError::RoleDenied)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{}", .0.summary())]
    Invalid(ValidationErrors),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the operator's role does not allow changes")]
    RoleDenied,
    /// A downward adjustment larger than the balance: nothing was written.
    #[error("the balance is {balance}; an adjustment of {amount} would take it below zero")]
    InsufficientCredits { balance: Credits, amount: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &str, issue: FieldIssue, message: impl Into<String>) -> AdminError {
    let mut v = ValidationErrors::default();
    v.push(field, issue, message);
    AdminError::Invalid(v)
}

impl From<CreateTaskError> for AdminError {
    fn from(e: CreateTaskError) -> Self {
        match e {
            CreateTaskError::InsufficientCredits { balance, price } => {
                AdminError::InsufficientCredits {
                    balance,
                    amount: -price.get(),
                }
            }
            CreateTaskError::Store(s) => AdminError::Store(s),
            other => AdminError::Store(StoreError::Internal(other.to_string())),
        }
    }
}

// --- Operators ---

/// Why a presented operator key does not authenticate.
#[derive(Debug, thiserror::Error)]
pub enum OperatorAuthError {
    /// Not an operator key of ours (an account API key included).
    #[error("the operator key is not valid")]
    Invalid,
    #[error("the operator key was revoked")]
    Revoked,
    #[error("the operator key has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operator behind a presented key. Read from the store on every call (no cache):
/// admin calls are few, and a revoked operator is refused at once on every node.
pub async fn authenticate(
    store: &dyn Store,
    key: &str,
    now: Timestamp,
) -> Result<OperatorRecord, OperatorAuthError> {
    let prefix = operator::visible_prefix(key).ok_or(OperatorAuthError::Invalid)?;
    let op = store
        .find_operator_by_prefix(prefix)
        .await?
        .ok_or(OperatorAuthError::Invalid)?;
    if !apikey::hashes_equal(&apikey::hash(key), &op.key_hash) {
        return Err(OperatorAuthError::Invalid);
    }
    if op.revoked_at.is_some() {
        return Err(OperatorAuthError::Revoked);
    }
    if op.expires_at.is_some_and(|e| e <= now) {
        return Err(OperatorAuthError::Expired);
    }
    // "Last used" to within a minute: no write per request.
    if op
        .last_used_at
        .is_none_or(|t| now.as_millis() - t.as_millis() >= 60_000)
    {
        store.touch_operator(&op.id, now).await?;
    }
    Ok(op)
}

/// A new operator and its key (the secret, shown once).
pub async fn create_operator(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    role: OperatorRole,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<(OperatorRecord, String), AdminError> {
    actor.may_write()?;
    if !operator::valid_name(name) {
        return Err(invalid(
            "name",
            FieldIssue::NotAllowed,
            "1–64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit; 'cli' is reserved",
        ));
    }
    if expires_at.is_some_and(|e| e <= now) {
        return Err(invalid(
            "expires_at",
            FieldIssue::NotAllowed,
            "must be in the future",
        ));
    }
    let key = operator::generate_key();
    let op = match store
        .create_operator(&NewOperator {
            name: name.to_owned(),
            role,
            visible_prefix: key.visible_prefix,
            key_hash: key.hash,
            created_at: now,
            expires_at,
        })
        .await
    {
        Err(StoreError::Conflict(_)) => {
            return Err(invalid(
                "name",
                FieldIssue::NotAllowed,
                format!("an operator named {name:?} exists (revoked operators keep their name)"),
            ));
        }
        other => other?,
    };
    record(
        store,
        actor,
        "operator.create",
        &op.id.to_string(),
        None,
        None,
        Some(json!({"name": op.name, "role": op.role.as_str(), "expires_at": op.expires_at.map(|t| t.rfc3339())})),
        now,
    )
    .await?;
    Ok((op, key.secret))
}

pub async fn revoke_operator(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    now: Timestamp,
) -> Result<(), AdminError> {
    actor.may_write()?;
    if !store.revoke_operator(name, now).await? {
        return Err(AdminError::NotFound("active operator"));
    }
    record(
        store,
        actor,
        "operator.revoke",
        name,
        None,
        Some(json!({"revoked": false})),
        Some(json!({"revoked": true})),
        now,
    )
    .await?;
    Ok(())
}

/// On a database without operators: operator `admin` and its key, returned once.
pub async fn bootstrap_operator(
    store: &dyn Store,
    now: Timestamp,
) -> Result<Option<String>, AdminError> {
    if !store.list_operators().await?.is_empty() {
        return Ok(None);
    }
    match create_operator(
        store,
        &Actor::cli(),
        "admin",
        OperatorRole::Admin,
        None,
        now,
    )
    .await
    {
        Ok((_, secret)) => Ok(Some(secret)),
        // Nodes starting together on a fresh database: another one made it first.
        Err(AdminError::Invalid(_)) if store.find_operator_by_name("admin").await?.is_some() => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

// --- The audit log ---

/// Writes one audit line. Called after the change it records, so a change that failed
/// leaves no line; a database that fails between the two leaves the change unrecorded
/// (and the caller an error).
#[allow(clippy::too_many_arguments)]
pub async fn record(
    store: &dyn Store,
    actor: &Actor,
    action: &str,
    target: &str,
    account: Option<&AccountId>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    now: Timestamp,
) -> Result<AuditEntry, StoreError> {
    store
        .append_audit(&NewAudit {
            at: now,
            actor: actor.name.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            account_id: account.cloned(),
            before,
            after,
            request_id: actor.request_id.clone(),
        })
        .await
}

pub async fn audit_page(
    store: &dyn Store,
    filter: &AuditFilter,
) -> Result<(Vec<AuditEntry>, bool), StoreError> {
    store.audit_page(filter).await
}

// --- Accounts and credits ---

/// A new account; `credits` above zero arrive as a `grant` row with `reason`.
pub async fn create_account(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    sandbox: bool,
    credits: i64,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<Account, AdminError> {
    actor.may_write()?;
    let mut v = ValidationErrors::default();
    if name.trim().is_empty() {
        v.push("name", FieldIssue::Required, "an account needs a name");
    } else if let Err(e) =
        gengate_core::text::require("name", name, gengate_core::text::TextRule::Line)
    {
        v.extend(e);
    }
    if credits < 0 {
        v.push(
            "credits",
            FieldIssue::NotAllowed,
            "initial credits cannot be negative",
        );
    }
    let reason = reason.unwrap_or("initial grant");
    if let Err(e) =
        gengate_core::text::require("reason", reason, gengate_core::text::TextRule::Line)
    {
        v.extend(e);
    }
    if !v.is_empty() {
        return Err(AdminError::Invalid(v));
    }
    if store.find_account_by_name(name).await?.is_some() {
        return Err(invalid(
            "name",
            FieldIssue::NotAllowed,
            format!("an account named {name:?} exists"),
        ));
    }
    let mut account = store.create_account(name, now).await?;
    if sandbox {
        accounts::set_sandbox(store, &account.id, true).await?;
        account.sandbox = true;
    }
    if credits > 0 {
        account.balance =
            accounts::change_credits(store, &account.id, LedgerKind::Grant, credits, reason, now)
                .await?;
    }
    record(
        store,
        actor,
        "account.create",
        account.id.as_str(),
        Some(&account.id),
        None,
        Some(json!({"name": account.name, "sandbox": account.sandbox, "credits": credits, "reason": reason})),
        now,
    )
    .await?;
    Ok(account)
}

/// A grant (positive) or an adjustment (either sign) with its reason; the new balance.
/// A downward adjustment never takes the balance below zero: refused, nothing written.
#[allow(clippy::too_many_arguments)]
pub async fn change_credits(
    store: &dyn Store,
    actor: &Actor,
    account: &AccountId,
    kind: LedgerKind,
    amount: i64,
    reason: &str,
    now: Timestamp,
    idem: Option<gengate_store::CreditsIdem<'_>>,
) -> Result<Credits, AdminError> {
    actor.may_write()?;
    let mut v = ValidationErrors::default();
    match kind {
        LedgerKind::Grant if amount <= 0 => v.push(
            "amount",
            FieldIssue::NotAllowed,
            "a grant is a positive amount",
        ),
        LedgerKind::Adjust if amount == 0 => v.push(
            "amount",
            FieldIssue::NotAllowed,
            "an adjustment cannot be zero",
        ),
        LedgerKind::Grant | LedgerKind::Adjust => {}
        _ => v.push("kind", FieldIssue::NotAllowed, "grant or adjustment"),
    }
    if reason.trim().is_empty() {
        v.push(
            "reason",
            FieldIssue::Required,
            "say why the balance changes",
        );
    } else if let Err(e) =
        gengate_core::text::require("reason", reason, gengate_core::text::TextRule::Line)
    {
        v.extend(e);
    }
    if !v.is_empty() {
        return Err(AdminError::Invalid(v));
    }
    if store.get_account(account).await?.is_none() {
        return Err(AdminError::NotFound("account"));
    }
    let action = if kind == LedgerKind::Grant {
        "credits.grant"
    } else {
        "credits.adjust"
    };
    // The change, its audit line and the idempotency answer commit together.
    let line = NewAudit {
        at: now,
        actor: actor.name.clone(),
        action: action.to_owned(),
        target: account.as_str().to_owned(),
        account_id: Some(account.clone()),
        before: None,
        after: None,
        request_id: actor.request_id.clone(),
    };
    match store
        .change_credits_audited(account, kind, amount, reason, now, &line, idem)
        .await
    {
        Err(CreateTaskError::InsufficientCredits { balance, .. }) => {
            Err(AdminError::InsufficientCredits { balance, amount })
        }
        other => Ok(other?),
    }
}

/// A key for the account, made by an operator (the secret, shown once).
pub async fn audit_key_created(
    store: &dyn Store,
    actor: &Actor,
    issued: &IssuedKey,
    now: Timestamp,
) -> Result<(), StoreError> {
    record(
        store,
        actor,
        "key.create",
        issued.record.id.as_str(),
        Some(&issued.record.account_id),
        None,
        Some(json!({"name": issued.record.name, "prefix": issued.record.visible_prefix})),
        now,
    )
    .await
    .map(|_| ())
}

/// Suspends or resumes an account and/or switches it between sandbox and live. A
/// suspended account's keys are refused on every call (every node's key cache is told
/// through the auth epoch); its running tasks finish and settle normally.
/// What an operator changes on an account; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    pub suspended: Option<bool>,
    pub sandbox: Option<bool>,
    pub price_adjustment: Option<i32>,
    /// `Some(None)` turns the low-balance alert off.
    pub low_balance_threshold: Option<Option<i64>>,
}

pub async fn update_account(
    store: &dyn Store,
    actor: &Actor,
    account: &AccountId,
    change: &AccountChange,
    now: Timestamp,
) -> Result<Account, AdminError> {
    let AccountChange {
        suspended,
        sandbox,
        price_adjustment,
        low_balance_threshold,
    } = change.clone();
    actor.may_write()?;
    if let Some(p) = price_adjustment
        && !(gengate_core::pricing::MIN_ADJUSTMENT..=gengate_core::pricing::MAX_ADJUSTMENT)
            .contains(&p)
    {
        return Err(AdminError::Invalid(ValidationErrors::single(
            "price_adjustment",
            FieldIssue::OutOfRange,
            format!(
                "price_adjustment is a whole percent from {} to {}",
                gengate_core::pricing::MIN_ADJUSTMENT,
                gengate_core::pricing::MAX_ADJUSTMENT
            ),
        )));
    }
    let before = store
        .get_account(account)
        .await?
        .ok_or(AdminError::NotFound("account"))?;
    let mut changed = false;
    if let Some(s) = suspended.filter(|s| *s != before.suspended) {
        // False when a racing call made the same change first: it audits it.
        changed |= store.set_account_suspended(account, s).await?;
    }
    if let Some(s) = sandbox.filter(|s| *s != before.sandbox) {
        accounts::set_sandbox(store, account, s).await?;
        changed = true;
    }
    if let Some(p) = price_adjustment.filter(|p| *p != before.price_adjustment) {
        changed |= store.set_price_adjustment(account, p).await?;
    }
    if let Some(t) = low_balance_threshold.filter(|t| *t != before.low_balance_threshold) {
        changed |= store.set_low_balance_threshold(account, t).await?;
    }
    let after = store
        .get_account(account)
        .await?
        .ok_or(AdminError::NotFound("account"))?;
    if changed {
        let state = |a: &Account| {
            json!({"status": if a.suspended { "suspended" } else { "active" }, "sandbox": a.sandbox,
                   "price_adjustment": a.price_adjustment, "low_balance_threshold": a.low_balance_threshold})
        };
        record(
            store,
            actor,
            "account.update",
            account.as_str(),
            Some(account),
            Some(state(&before)),
            Some(state(&after)),
            now,
        )
        .await?;
    }
    Ok(after)
}

/// A key for the account, made by an operator: any scopes, any expiry.
pub async fn create_key(
    store: &dyn Store,
    actor: &Actor,
    account: &AccountId,
    req: gengate_core::apikey::request::CreateKey,
    now: Timestamp,
) -> Result<IssuedKey, AdminError> {
    actor.may_write()?;
    if store.get_account(account).await?.is_none() {
        return Err(AdminError::NotFound("account"));
    }
    let issued = accounts::issue_key(
        store,
        account,
        &req.name,
        req.scopes,
        req.expires_at,
        gengate_store::RateOverrides::default(),
        now,
    )
    .await?;
    audit_key_created(store, actor, &issued, now).await?;
    Ok(issued)
}

/// Revokes any key (revoking a revoked key answers it as it is, and writes nothing).
pub async fn revoke_key(
    store: &dyn Store,
    actor: &Actor,
    key: &gengate_core::ids::ApiKeyId,
    now: Timestamp,
) -> Result<gengate_store::ApiKeyRecord, AdminError> {
    actor.may_write()?;
    let found = store
        .get_api_key(key)
        .await?
        .ok_or(AdminError::NotFound("key"))?;
    // Audited only when this call revoked it: of two racing revocations, one line.
    if found.revoked_at.is_some() || !store.revoke_api_key(key, now).await? {
        return store
            .get_api_key(key)
            .await?
            .ok_or(AdminError::NotFound("key"));
    }
    record(
        store,
        actor,
        "key.revoke",
        key.as_str(),
        Some(&found.account_id),
        Some(json!({"revoked": false})),
        Some(json!({"revoked": true})),
        now,
    )
    .await?;
    store
        .find_api_key_by_prefix(&found.visible_prefix)
        .await?
        .ok_or(AdminError::NotFound("key"))
}

/// Sets (or with `None` clears) any key's spend limit; it applies from the next create.
pub async fn set_key_limit(
    store: &dyn Store,
    actor: &Actor,
    key: &gengate_core::ids::ApiKeyId,
    limit: Option<gengate_core::spend::SpendLimit>,
    now: Timestamp,
) -> Result<gengate_store::ApiKeyRecord, AdminError> {
    actor.may_write()?;
    let before = store
        .get_api_key(key)
        .await?
        .ok_or(AdminError::NotFound("key"))?;
    accounts::set_spend_limit(store, key, limit).await?;
    let state = |l: Option<gengate_core::spend::SpendLimit>| {
        l.map_or(
            serde_json::Value::Null,
            |l| json!({"limit": l.limit.get(), "window_ms": l.window_ms()}),
        )
    };
    if before.spend_limit != limit {
        record(
            store,
            actor,
            "key.limit",
            key.as_str(),
            Some(&before.account_id),
            Some(json!({"spend_limit": state(before.spend_limit)})),
            Some(json!({"spend_limit": state(limit)})),
            now,
        )
        .await?;
    }
    store
        .get_api_key(key)
        .await?
        .ok_or(AdminError::NotFound("key"))
}
