//! The operator's commands (`gengate accounts | keys | credits … | migrate`):
//! straight on the database, without a running server. Each is one rule of
//! `accounts` applied to a store opened from the same `--database-url` /
//! `--data-dir` as `serve`; the binary only parses flags and prints.

use crate::accounts::{self, IssuedKey};
use crate::config::DatabaseArgs;
use anyhow::{Context, bail};
use gengate_core::clock::{Clock, SystemClock};
use gengate_core::credits::LedgerKind;
use gengate_core::ids::{AccountId, ApiKeyId};
use gengate_core::scope::Scope;
use gengate_core::spend::SpendLimit;
use gengate_core::{Credits, Timestamp};
use gengate_store::{Account, ApiKeyRecord, DynStore, LedgerEntry, LedgerMismatch, RateOverrides};

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
        let a = accounts::create_account(self.store.as_ref(), name, credits, Self::now()).await?;
        if sandbox {
            accounts::set_sandbox(self.store.as_ref(), &a.id, true).await?;
        }
        Ok(a)
    }

    pub async fn set_sandbox(&self, name: &str, sandbox: bool) -> anyhow::Result<()> {
        let acc = self.account_id(name).await?;
        accounts::set_sandbox(self.store.as_ref(), &acc, sandbox).await?;
        Ok(())
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
        Ok(())
    }

    /// Revokes an active key; running servers refuse it within `--key-cache-ms`.
    pub async fn revoke_key(&self, id: &ApiKeyId) -> anyhow::Result<()> {
        if !self.store.revoke_api_key(id, Self::now()).await? {
            bail!("no active key {id}");
        }
        Ok(())
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
        Ok(
            accounts::change_credits(self.store.as_ref(), &acc, kind, amount, reason, Self::now())
                .await?,
        )
    }

    /// The account's balance and ledger.
    pub async fn statement(&self, account: &str) -> anyhow::Result<(Credits, Vec<LedgerEntry>)> {
        let acc = self.account_id(account).await?;
        Ok((
            self.store.balance(&acc).await?,
            self.store.ledger(&acc).await?,
        ))
    }

    /// Accounts whose balance differs from the sum of their ledger (none, always).
    pub async fn audit(&self) -> anyhow::Result<Vec<LedgerMismatch>> {
        Ok(self.store.ledger_mismatches().await?)
    }
}
