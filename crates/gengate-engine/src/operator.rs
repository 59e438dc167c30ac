//! The operator's commands (`gengate accounts | keys | credits … | migrate`):
//! straight on the database, without a running server. Each is one rule of
//! `accounts` applied to a store opened from the same `--database-url` /
//! `--data-dir` as `serve`; the binary only parses flags and prints.

use crate::accounts::{self, IssuedKey};
use crate::admin::{self, Actor};
use crate::config::DatabaseArgs;
use anyhow::{Context, bail};
use gengate_core::clock::{Clock, SystemClock};
use gengate_core::credits::LedgerKind;
use gengate_core::ids::{AccountId, ApiKeyId};
use gengate_core::operator::OperatorRole;
use gengate_core::scope::Scope;
use gengate_core::spend::SpendLimit;
use gengate_core::{Credits, Timestamp};
use gengate_store::operators::{AuditEntry, AuditFilter, OperatorRecord};
use gengate_store::{Account, ApiKeyRecord, DynStore, LedgerEntry, LedgerMismatch, RateOverrides};
use serde_json::json;

/// What `keys create` asks for, parsed.
pub struct NewKey {
    pub account: AccountId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<Timestamp>,
    pub rates: RateOverrides,
    pub spend_limit: Option<SpendLimit>,
}

/// The operator's view of the database.
pub struct Operator {
    store: DynStore,
}

impl Operator {
    /// Opens (creating the data directory and applying migrations).
    pub async fn open(db: &DatabaseArgs) -> anyhow::Result<Self> {
        // SQLite lives in the data directory; on PostgreSQL it need not exist.
        std::fs::create_dir_all(&db.data_dir).ok();
        Ok(Self {
            store: db.open().await?,
        })
    }

    fn now() -> Timestamp {
        SystemClock.now()
    }

    /// The account of that name, or an error naming it.
    pub async fn account_id(&self, name: &str) -> anyhow::Result<AccountId> {
        Ok(self
            .store
            .find_account_by_name(name)
            .await?
            .with_context(|| format!("no account named {name:?}"))?
            .id)
    }

    /// A new account with `credits` granted; a sandbox one runs every task
    /// on the sandbox provider.
    pub async fn create_account(
        &self,
        name: &str,
        credits: i64,
        sandbox: bool,
    ) -> anyhow::Result<Account> {
        Ok(admin::create_account(
            self.store.as_ref(),
            &Actor::cli(),
            name,
            sandbox,
            credits,
            None,
            Self::now(),
        )
        .await?)
    }

    /// Switches sandbox/live and sets the price adjustment (either may be left as is),
    /// audited as the command line.
    pub async fn update_account(
        &self,
        name: &str,
        sandbox: Option<bool>,
        price_adjustment: Option<i32>,
    ) -> anyhow::Result<gengate_store::Account> {
        let acc = self.account_id(name).await?;
        Ok(crate::admin::update_account(
            self.store.as_ref(),
            &crate::admin::Actor::cli(),
            &acc,
            &crate::admin::AccountChange {
                sandbox,
                price_adjustment,
                ..Default::default()
            },
            Self::now(),
        )
        .await?)
    }

    pub async fn list_accounts(&self) -> anyhow::Result<Vec<Account>> {
        Ok(self.store.list_accounts().await?)
    }

    /// Issues a key; its limit is on it before the secret is returned, so
    /// nothing can use the key without it.
    pub async fn create_key(&self, k: NewKey) -> anyhow::Result<IssuedKey> {
        let issued = accounts::issue_key(
            self.store.as_ref(),
            &k.account,
            &k.name,
            k.scopes,
            k.expires_at,
            k.rates,
            Self::now(),
        )
        .await?;
        if k.spend_limit.is_some() {
            accounts::set_spend_limit(self.store.as_ref(), &issued.record.id, k.spend_limit)
                .await?;
        }
        admin::audit_key_created(self.store.as_ref(), &Actor::cli(), &issued, Self::now()).await?;
        Ok(issued)
    }

    /// Keys (of one account, or all), revoked ones included.
    pub async fn list_keys(
        &self,
        account: Option<&AccountId>,
    ) -> anyhow::Result<Vec<ApiKeyRecord>> {
        Ok(self.store.list_api_keys(account).await?)
    }

    /// What the key's tasks hold against its spend limit now (zero without one).
    pub async fn key_spent(&self, key: &ApiKeyRecord) -> anyhow::Result<Credits> {
        Ok(accounts::key_spent(self.store.as_ref(), key, Self::now()).await?)
    }

    pub async fn set_key_limit(
        &self,
        id: &ApiKeyId,
        limit: Option<SpendLimit>,
    ) -> anyhow::Result<()> {
        accounts::set_spend_limit(self.store.as_ref(), id, limit).await?;
        let after = limit.map(|l| json!({"limit": l.limit.get(), "window_ms": l.window_ms()}));
        self.audit_change(
            "key.limit",
            id.as_str(),
            None,
            serde_json::Value::Null,
            after.unwrap_or_default(),
        )
        .await
    }

    /// Revokes an active key; running servers refuse it within `--key-cache-ms`.
    pub async fn revoke_key(&self, id: &ApiKeyId) -> anyhow::Result<()> {
        if !self.store.revoke_api_key(id, Self::now()).await? {
            bail!("no active key {id}");
        }
        self.audit_change(
            "key.revoke",
            id.as_str(),
            None,
            json!({"revoked": false}),
            json!({"revoked": true}),
        )
        .await
    }

    /// A grant or an adjustment (never below zero); the new balance.
    pub async fn change_credits(
        &self,
        account: &str,
        kind: LedgerKind,
        amount: i64,
        reason: &str,
    ) -> anyhow::Result<Credits> {
        let acc = self.account_id(account).await?;
        Ok(admin::change_credits(
            self.store.as_ref(),
            &Actor::cli(),
            &acc,
            kind,
            amount,
            reason,
            Self::now(),
            None,
        )
        .await?)
    }

    /// The account's balance and ledger.
    pub async fn statement(&self, account: &str) -> anyhow::Result<(Credits, Vec<LedgerEntry>)> {
        let acc = self.account_id(account).await?;
        Ok((
            self.store.balance(&acc).await?,
            self.store.ledger(&acc).await?,
        ))
    }

    /// A new operator and its key (the secret: print it once).
    pub async fn create_operator(
        &self,
        name: &str,
        role: OperatorRole,
        expires_at: Option<Timestamp>,
    ) -> anyhow::Result<(OperatorRecord, String)> {
        Ok(admin::create_operator(
            self.store.as_ref(),
            &Actor::cli(),
            name,
            role,
            expires_at,
            Self::now(),
        )
        .await?)
    }

    pub async fn list_operators(&self) -> anyhow::Result<Vec<OperatorRecord>> {
        Ok(self.store.list_operators().await?)
    }

    pub async fn revoke_operator(&self, name: &str) -> anyhow::Result<()> {
        Ok(admin::revoke_operator(self.store.as_ref(), &Actor::cli(), name, Self::now()).await?)
    }

    /// The audit log, newest first.
    pub async fn audit_log(&self, filter: &AuditFilter) -> anyhow::Result<Vec<AuditEntry>> {
        Ok(admin::audit_page(self.store.as_ref(), filter).await?.0)
    }

    async fn audit_change(
        &self,
        action: &str,
        target: &str,
        account: Option<&AccountId>,
        before: serde_json::Value,
        after: serde_json::Value,
    ) -> anyhow::Result<()> {
        admin::record(
            self.store.as_ref(),
            &Actor::cli(),
            action,
            target,
            account,
            Some(before),
            Some(after),
            Self::now(),
        )
        .await?;
        Ok(())
    }

    /// Accounts whose balance differs from the sum of their ledger (none, always).
    pub async fn audit(&self) -> anyhow::Result<Vec<LedgerMismatch>> {
        Ok(self.store.ledger_mismatches().await?)
    }
}
