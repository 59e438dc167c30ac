//! The `Store` trait speaks the domain's language (`create_task`,
//! `refund_and_fail`), not SQL's. Each engine implements it with its own
//! tools: SQLite with one writer connection and WAL readers, PostgreSQL with
//! a pool and `FOR UPDATE SKIP LOCKED`. The SQL text is shared where it is
//! identical (`engine.rs`); one conformance suite runs against both.

mod batch;
mod engine;
mod operator_engine;
pub mod operators;
pub mod postgres;
pub mod sqlite;
mod sqlite_read;
pub mod usage;
mod webhook_engine;
pub mod webhooks;

pub use operators::OperatorStore;
pub use webhooks::WebhookStore;

use async_trait::async_trait;
use gengate_core::credits::LedgerKind;
use gengate_core::generation::{ClientRequestId, Prompt, TaskStatus};
use gengate_core::generation::{StoredResult, Task, TaskError, TaskReference};
use gengate_core::ids::{AccountId, ApiKeyId, TaskId};
use gengate_core::params::NormalizedParams;
use gengate_core::scope::Scope;
use gengate_core::spend::SpendLimit;
use gengate_core::{Credits, Timestamp};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded: answered 503 with
    /// Retry-After; nothing was half-done.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(d.message().to_owned())
            }
            sqlx::Error::Database(d) if is_unavailable_code(d.code().as_deref()) => {
                StoreError::Unavailable(d.message().to_owned())
            }
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

/// SQLite busy/locked, PostgreSQL admin shutdown / cannot connect / too many connections.
fn is_unavailable_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "5" | "6" | "517" | "57P01" | "57P02" | "57P03" | "53300" | "08006" | "08001" | "08004"
        )
    )
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub balance: Credits,
    pub created_at: Timestamp,
    /// Every task of a sandbox account runs on the sandbox provider.
    pub sandbox: bool,
    /// Its keys are refused on every call; its running tasks finish and settle.
    pub suspended: bool,
    /// Its prices are the list prices scaled by this many percent (-99 .. 1000).
    pub price_adjustment: i32,
    /// A `credits.low` event goes out when the balance falls below this (none: never).
    pub low_balance_threshold: Option<i64>,
}

/// Per-key request budgets in requests per minute; `None` uses the server default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateOverrides {
    pub create_per_min: Option<u32>,
    pub read_per_min: Option<u32>,
    pub upload_per_min: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub account_id: AccountId,
    pub name: String,
    pub visible_prefix: String,
    pub key_hash: String,
    pub scopes: Vec<Scope>,
    pub rates: RateOverrides,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// Checked by the store inside each create's debit transaction.
    pub spend_limit: Option<SpendLimit>,
    /// When the key last authenticated a request, to within a minute; `None` if never.
    pub last_used_at: Option<Timestamp>,
    /// Whether the key's account was suspended when this record was read.
    pub account_suspended: bool,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub account_id: AccountId,
    pub name: String,
    pub visible_prefix: String,
    pub key_hash: String,
    pub scopes: Vec<Scope>,
    pub rates: RateOverrides,
    pub expires_at: Option<Timestamp>,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub seq: i64,
    pub account_id: AccountId,
    pub kind: LedgerKind,
    pub amount: i64,
    pub balance_after: Credits,
    pub task_id: Option<TaskId>,
    pub reason: String,
    pub created_at: Timestamp,
}

/// An account whose balance differs from the sum of its ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerMismatch {
    pub account_id: AccountId,
    pub balance: i64,
    pub ledger_sum: i64,
}

/// Where an idempotency key applies: account + method + path + key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemScope {
    pub account_id: AccountId,
    pub method: String,
    pub path: String,
    pub key: String,
}

/// Who holds an in-flight idempotency key: the node (persistent across
/// restarts), the boot of that node (random per process start) and a token
/// of the one request. A restarted node releases the holds of its earlier
/// boots; every later write on a hold (heartbeat, completion, release) is a
/// compare-and-set on the token, so a request whose hold was taken over can
/// never complete or release someone else's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemHolder {
    pub node: String,
    pub boot: String,
    pub token: String,
}

/// The first answer, kept to be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// Headers worth replaying (e.g. Location), as name/value pairs.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemBegin {
    /// The key is now held by this request.
    Started,
    /// Same key, same request, already answered.
    Replay(StoredResponse),
    /// Same key, different request.
    Mismatch,
    /// Same key, the first request is still running.
    InFlight,
}

#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: TaskId,
    pub account_id: AccountId,
    pub model: String,
    pub prompt: Prompt,
    pub params: NormalizedParams,
    pub references: Vec<TaskReference>,
    pub price: Credits,
    /// The version of the model's price the task was priced with (`pricing::price_version`).
    pub price_version: Option<String>,
    pub client_request_id: Option<ClientRequestId>,
    pub provider: String,
    pub now: Timestamp,
    pub deadline_at: Timestamp,
}

impl NewTask {
    /// The task as `create_task` stores it: queued, nothing charged yet
    /// beyond the reservation, no result. What the store returns for a create
    /// equals this (the conformance suite checks it), so it can be shown
    /// before the commit, e.g. as the idempotent answer stored with it.
    pub fn as_queued(&self) -> Task {
        Task {
            id: self.id.clone(),
            account_id: self.account_id.clone(),
            model: self.model.clone(),
            status: TaskStatus::Queued,
            prompt: self.prompt.clone(),
            params: self.params.clone(),
            references: self.references.clone(),
            reserved_credits: self.price,
            final_credits: Credits::ZERO,
            client_request_id: self.client_request_id.clone(),
            result: None,
            error: None,
            created_at: self.now,
            updated_at: self.now,
            deadline_at: self.deadline_at,
        }
    }
}

/// The idempotency record completed in the same transaction as the task.
#[derive(Debug, Clone)]
pub struct IdemCompletion {
    pub scope: IdemScope,
    /// The hold being completed; the completion fails if it is not ours any more.
    pub token: String,
    pub response: StoredResponse,
    pub expires_at: Timestamp,
}

/// The idempotency key of an operator's credit change, completed with the answer
/// `response` builds from the new balance.
#[derive(Clone, Copy)]
pub struct CreditsIdem<'a> {
    pub scope: &'a IdemScope,
    pub token: &'a str,
    pub expires_at: Timestamp,
    pub response: &'a (dyn Fn(Credits) -> StoredResponse + Send + Sync),
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTaskError {
    #[error("insufficient credits: balance {balance}, price {price}")]
    InsufficientCredits { balance: Credits, price: Credits },
    /// The key's spend limit has no room for `price` next to `spent`;
    /// nothing was written.
    #[error("spend limit exceeded: {spent} of {} spent, price {price}", limit.limit)]
    SpendLimitExceeded {
        limit: SpendLimit,
        spent: Credits,
        price: Credits,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub limit: u32,
    /// Only tasks older than this one (cursor); `None` starts at the newest.
    pub starting_after: Option<TaskId>,
    pub status: Option<TaskStatus>,
    pub client_request_id: Option<String>,
}

/// A job leased by a worker until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedJob {
    pub task_id: TaskId,
    pub provider: String,
    pub attempts: i64,
    pub lease_until: Timestamp,
}

/// A task with what decides whether it can still be canceled: the provider
/// it runs on and that provider's saved upstream state, exactly as stored
/// (the cancel's compare-and-set compares against this text).
#[derive(Debug, Clone)]
pub struct TaskControl {
    pub task: Task,
    pub provider: String,
    pub upstream: Option<String>,
}

/// Why a terminal transition did or did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// This caller won the compare-and-set and settled the money.
    Won,
    /// The task was already past that point; nothing changed.
    Lost,
}

#[async_trait]
pub trait Store: WebhookStore + OperatorStore + Send + Sync + 'static {
    fn engine(&self) -> Engine;
    async fn migrate(&self) -> StoreResult<()>;
    async fn ping(&self) -> StoreResult<()>;

    // Accounts and keys.
    async fn create_account(&self, name: &str, now: Timestamp) -> StoreResult<Account>;
    async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>>;
    async fn find_account_by_name(&self, name: &str) -> StoreResult<Option<Account>>;
    async fn list_accounts(&self) -> StoreResult<Vec<Account>>;
    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<ApiKeyRecord>;
    async fn find_api_key_by_prefix(
        &self,
        visible_prefix: &str,
    ) -> StoreResult<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self, account: Option<&AccountId>) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Returns false when the key does not exist or was already revoked.
    async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> StoreResult<bool>;
    /// Switches an account between sandbox and live; false when it does not exist.
    async fn set_account_sandbox(&self, id: &AccountId, sandbox: bool) -> StoreResult<bool>;
    /// Sets the account's price adjustment (percent, -99 ..= 1000); false when no such account.
    async fn set_price_adjustment(&self, id: &AccountId, percent: i32) -> StoreResult<bool>;
    /// Sets (or clears) the low-balance threshold and re-arms its alert; false when no
    /// such account.
    async fn set_low_balance_threshold(
        &self,
        id: &AccountId,
        threshold: Option<i64>,
    ) -> StoreResult<bool>;
    /// One transaction: when the balance is below the threshold and no `credits.low`
    /// has gone out for this dip, marks it sent and writes the event (`event`, with its
    /// data: balance and threshold); when the balance is back at or above it, re-arms.
    /// Answers the event written, if one was. Safe to race: one caller wins a dip.
    async fn low_balance_alert(
        &self,
        id: &AccountId,
        event: &gengate_core::ids::EventId,
        now: Timestamp,
    ) -> StoreResult<Option<(i64, i64)>>;
    /// Accounts whose low-balance state is out of step with their balance (an alert
    /// due, or a re-arm due): what the sweeper visits.
    async fn low_balance_due(&self, limit: u32) -> StoreResult<Vec<AccountId>>;
    /// One transaction: unless the key's `key.spend_limit_reached` already went out in
    /// its current window (ever, for a limit without a window), records it and writes
    /// the event (data: key, limit, window). True when this call wrote it.
    async fn spend_limit_alert(
        &self,
        key: &ApiKeyId,
        event: &gengate_core::ids::EventId,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Suspends or resumes; bumps the auth epoch in the same transaction. False when
    /// the account does not exist or already was so.
    async fn set_account_suspended(&self, id: &AccountId, suspended: bool) -> StoreResult<bool>;
    /// Tells every node's key cache that a cached record may be wrong now.
    async fn bump_auth_epoch(&self) -> StoreResult<()>;
    async fn auth_epoch(&self) -> StoreResult<i64>;
    /// Usage rows in group order, streamed from the database (`usage.rs` has the rule).
    fn usage<'a>(&'a self, q: &'a usage::UsageQuery) -> usage::UsageStream<'a>;
    /// Sets or clears (`None`) a key's spend limit; false when the key does not exist.
    async fn set_spend_limit(&self, id: &ApiKeyId, limit: Option<SpendLimit>) -> StoreResult<bool>;
    /// What the key's tasks created after `after` hold (failed ones are
    /// refunded and do not count), oldest first: `(created_at, credits)`.
    async fn key_spend(
        &self,
        id: &ApiKeyId,
        after: Timestamp,
    ) -> StoreResult<Vec<(Timestamp, Credits)>>;
    /// Records that the key authenticated a request at `now` (never moves the time back).
    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> StoreResult<()>;

    // Credits. Grants and adjustments are ledger rows; a change that would
    // take the balance below zero is refused by the database.
    async fn change_credits(
        &self,
        account: &AccountId,
        kind: LedgerKind,
        delta: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<Credits, CreateTaskError>;
    /// `change_credits` with its audit line and (when the request has one) the
    /// completion of its idempotency key, all in the one transaction: a crash cannot
    /// leave a change without its line, or a change a retry would apply again. The store
    /// fills the line's `before`/`after` (`{"balance": …}`, plus amount and reason) and
    /// builds the stored answer from the new balance.
    #[allow(clippy::too_many_arguments)]
    async fn change_credits_audited(
        &self,
        account: &AccountId,
        kind: LedgerKind,
        delta: i64,
        reason: &str,
        now: Timestamp,
        audit: &operators::NewAudit,
        idem: Option<CreditsIdem<'_>>,
    ) -> Result<Credits, CreateTaskError>;
    async fn balance(&self, account: &AccountId) -> StoreResult<Credits>;
    async fn ledger(&self, account: &AccountId) -> StoreResult<Vec<LedgerEntry>>;
    /// One page of the ledger, newest first: entries with `seq < before_seq`
    /// (all when `None`), at most `limit`; the bool says whether more follow.
    async fn ledger_page(
        &self,
        account: &AccountId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<LedgerEntry>, bool)>;
    /// Every account whose balance is not the sum of its ledger (empty when all is well).
    async fn ledger_mismatches(&self) -> StoreResult<Vec<LedgerMismatch>>;

    // Idempotency.
    /// Takes the key for `holder` with a lease of `lease`, or says why not.
    /// A hold whose lease ran out (its holder died or lost the database) is
    /// taken over by the same request.
    async fn idempotency_begin(
        &self,
        scope: &IdemScope,
        fingerprint: &str,
        holder: &IdemHolder,
        now: Timestamp,
        lease: Duration,
        keep_for: Duration,
    ) -> StoreResult<IdemBegin>;
    /// The heartbeat of a running request: extends its lease to `until`.
    /// False when the hold is not ours any more (completed, released, taken over).
    async fn idempotency_extend(
        &self,
        scope: &IdemScope,
        token: &str,
        until: Timestamp,
    ) -> StoreResult<bool>;
    /// Stores the answer for replays. False when the hold is not ours any more.
    async fn idempotency_complete(
        &self,
        scope: &IdemScope,
        token: &str,
        response: &StoredResponse,
        expires_at: Timestamp,
    ) -> StoreResult<bool>;
    /// Forget our in-flight key whose request failed, so a retry can run.
    async fn idempotency_release(&self, scope: &IdemScope, token: &str) -> StoreResult<()>;
    /// At start: releases the holds of `node`'s earlier boots (every boot but
    /// `current_boot`), whose requests died with their process. Returns how many.
    async fn release_idempotency_holds_of_node(
        &self,
        node: &str,
        current_boot: &str,
    ) -> StoreResult<u64>;
    async fn purge_expired_idempotency(&self, now: Timestamp) -> StoreResult<u64>;

    // Tasks.
    /// One transaction: debit (never below zero), task row, reserve ledger
    /// row, idempotency record, job row.
    async fn create_task(
        &self,
        task: &NewTask,
        idem: Option<&IdemCompletion>,
    ) -> Result<Task, CreateTaskError> {
        self.create_task_for_key(task, None, idem).await
    }
    /// `create_task` by an API key: the task counts against the key's spend
    /// limit, which is checked in the same transaction as the debit
    /// (`CreateTaskError::SpendLimitExceeded`, nothing written).
    async fn create_task_for_key(
        &self,
        task: &NewTask,
        key: Option<&ApiKeyId>,
        idem: Option<&IdemCompletion>,
    ) -> Result<Task, CreateTaskError>;
    async fn get_task(&self, account: &AccountId, id: &TaskId) -> StoreResult<Option<Task>>;
    async fn get_task_unscoped(&self, id: &TaskId) -> StoreResult<Option<Task>>;
    /// The account's task with its provider and saved upstream state.
    async fn task_control(
        &self,
        account: &AccountId,
        id: &TaskId,
    ) -> StoreResult<Option<TaskControl>>;
    /// Cancel: queued|processing → failed with `error`, refunding exactly
    /// once like `fail_task`, but only while the task's upstream state is
    /// still `expected_upstream` (the state the caller judged cancelable).
    /// `Lost` when the task ended or its upstream state moved on meanwhile.
    async fn cancel_task(
        &self,
        account: &AccountId,
        id: &TaskId,
        expected_upstream: Option<&str>,
        error: &TaskError,
        now: Timestamp,
    ) -> StoreResult<Transition>;
    /// Newest first; the bool says whether more follow.
    async fn list_tasks(
        &self,
        account: &AccountId,
        filter: &TaskFilter,
    ) -> StoreResult<(Vec<Task>, bool)>;

    // The runner.
    async fn lease_jobs(
        &self,
        worker: &str,
        providers: &[String],
        now: Timestamp,
        lease_for: Duration,
        limit: u32,
    ) -> StoreResult<Vec<LeasedJob>>;
    /// Extends the lease if the worker still holds it.
    async fn renew_lease(
        &self,
        task_id: &TaskId,
        worker: &str,
        until: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives the job back to run again at `run_at` (polling, back-off).
    async fn release_job(
        &self,
        task_id: &TaskId,
        worker: &str,
        run_at: Timestamp,
    ) -> StoreResult<()>;
    /// Compare-and-set queued → processing.
    async fn mark_processing(&self, task_id: &TaskId, now: Timestamp) -> StoreResult<Transition>;
    /// Provider bookkeeping (upstream ids, submit state), kept as JSON.
    /// Only while the task is open: on an ended (e.g. canceled) task it
    /// writes nothing and answers `StoreError::Conflict`, so a provider
    /// that saves its state before calling a vendor never calls it for a
    /// task that is already over.
    async fn save_upstream(
        &self,
        task_id: &TaskId,
        upstream: &serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn load_upstream(&self, task_id: &TaskId) -> StoreResult<Option<serde_json::Value>>;
    /// processing → succeeded; settles `final_credits = reserved_credits` and removes the job.
    async fn succeed_task(
        &self,
        task_id: &TaskId,
        result: &StoredResult,
        now: Timestamp,
    ) -> StoreResult<Transition>;
    /// queued|processing → failed; refunds the reservation exactly once and removes the job.
    async fn fail_task(
        &self,
        task_id: &TaskId,
        error: &TaskError,
        now: Timestamp,
    ) -> StoreResult<Transition>;
    /// Open tasks whose deadline has passed.
    async fn overdue_tasks(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<TaskId>>;
    /// `updated_at` of a task, for change detection by long polls.
    async fn task_updated_at(
        &self,
        task_id: &TaskId,
    ) -> StoreResult<Option<(TaskStatus, Timestamp)>>;

    // Files.
    async fn insert_file(&self, file: &FileRecord) -> StoreResult<()>;
    async fn get_file(
        &self,
        account: &AccountId,
        id: &gengate_core::ids::FileId,
        now: Timestamp,
    ) -> StoreResult<Option<FileRecord>>;
    /// The newest live file of `account` stored under `blob_key`.
    async fn find_file_by_blob(
        &self,
        account: &AccountId,
        blob_key: &str,
        now: Timestamp,
    ) -> StoreResult<Option<FileRecord>>;
    /// Deletes expired file rows; returns the blob keys no row uses any more.
    async fn expire_files(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<String>>;

    // Vendor callbacks.
    /// Makes a task's job due at `now` (a vendor callback said something changed), unless it
    /// is already due sooner. A job leased right now keeps its lease: the worker's own
    /// `release_job` decides the next run, so the caller also tells the runner in process.
    /// False when the task has no job (it already ended).
    async fn wake_job(&self, task_id: &TaskId, now: Timestamp) -> StoreResult<bool>;

    /// Tasks changed at or after `since`, oldest change first, with the
    /// time of their change (the long-poll change feed).
    async fn tasks_changed_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(TaskId, Timestamp)>>;
}

pub type DynStore = Arc<dyn Store>;

/// A file uploaded through the Files API.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub id: gengate_core::ids::FileId,
    pub account_id: AccountId,
    pub kind: String,
    pub mime_type: String,
    pub name: Option<String>,
    pub size_bytes: u64,
    pub sha256: String,
    pub blob_key: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<f64>,
    pub model: Option<String>,
    pub client_request_id: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Opens the store named by a URL: `sqlite://path` (created if missing) or
/// `postgres://…`.
pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url, options).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, options).await?))
    } else {
        Err(StoreError::Internal(format!(
            "unsupported database URL {url:?}: use sqlite://… or postgres://…"
        )))
    }
}

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// SQLite: fsync on every commit (FULL) rather than at checkpoints (NORMAL).
    /// Either way a committed transaction survives a process crash.
    pub sqlite_synchronous_full: bool,
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            sqlite_synchronous_full: false,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Fresh databases for tests: a temporary SQLite file, or a new PostgreSQL
/// database on the server named by `GENGATE_TEST_POSTGRES_URL` (default
/// `postgres://postgres@127.0.0.1:5432/postgres`). PostgreSQL being
/// unreachable is an error, never a skip.
pub mod testing {

    use sqlx::{AssertSqlSafe, Connection};

    pub fn postgres_admin_url() -> String {
        std::env::var("GENGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_postgres_url() -> String {
        let admin = postgres_admin_url();
        let name = format!("gengate_test_{}", gengate_core::ids::random_token(12));
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => panic!(
                "PostgreSQL is required for these tests and is not reachable at {admin}: {e}"
            ),
        };
        if let Err(e) = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
        {
            panic!("cannot create test database {name}: {e}");
        }
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{name}")
    }

    pub fn fresh_sqlite_url(dir: &std::path::Path) -> String {
        format!(
            "sqlite://{}",
            dir.join(format!("t{}.db", gengate_core::ids::random_token(8)))
                .display()
        )
    }

    /// Counts rows with raw SQL (`SELECT COUNT(*) …`), bypassing the trait.
    pub async fn raw_count(url: &str, sql: &str) -> Result<i64, String> {
        if url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_owned()))
                .fetch_one(&mut c)
                .await
                .map_err(|e| e.to_string())
        } else {
            let mut c = sqlx::SqliteConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_owned()))
                .fetch_one(&mut c)
                .await
                .map_err(|e| e.to_string())
        }
    }

    /// Runs raw SQL against the store's database, bypassing the trait: for
    /// tests that prove the database itself refuses bad writes.
    pub async fn raw_execute(url: &str, sql: &str) -> Result<u64, String> {
        if url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(AssertSqlSafe(sql.to_owned()))
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| e.to_string())
        } else {
            let mut c = sqlx::SqliteConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(AssertSqlSafe(sql.to_owned()))
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| e.to_string())
        }
    }
}
