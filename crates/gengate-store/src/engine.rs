//! The SQL both engines share, expanded once per engine by `impl_store!` so
//! each keeps its concrete sqlx types (no `Any` driver). What differs — pool
//! layout, migrations, the job-lease query — is passed in.

pub(crate) const TASK_COLS: &str = "id, account_id, model, status, prompt, params, reference_files, reserved_credits, final_credits, client_request_id, result, error, created_at, updated_at, deadline_at";
pub(crate) const KEY_COLS: &str = "id, account_id, name, visible_prefix, key_hash, scopes, rate_create, rate_read, rate_upload, created_at, expires_at, revoked_at, last_used_at";
/// What a key read returns: its columns and its spend limit.
pub(crate) const KEY_READ: &str = "id, account_id, name, visible_prefix, key_hash, scopes, rate_create, rate_read, rate_upload, created_at, expires_at, revoked_at, last_used_at, spend_limit, spend_window_ms, \
     (SELECT suspended FROM accounts WHERE accounts.id = api_keys.account_id) AS account_suspended";
pub(crate) const ACCOUNT_COLS: &str =
    "id, name, balance, created_at, sandbox, suspended, price_adjustment, low_balance_threshold";

/// The point reads: one text for sqlx and for SQLite's point reader
/// (`sqlite_read.rs`), built once rather than on every status read. (SQLite
/// numbers `$n` parameters in order of appearance, as rusqlite binds them.)
pub(crate) static TASK_OF_ACCOUNT_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1 AND account_id = $2")
    });
pub(crate) static ACCOUNT_BY_ID_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1"));
pub(crate) const TASK_STATUS_SQL: &str = "SELECT status, updated_at FROM tasks WHERE id = $1";

pub(crate) const FILE_COLS: &str = "id, account_id, kind, mime_type, name, size_bytes, sha256, blob_key, width, height, duration_seconds, model, client_request_id, created_at, expires_at";

pub(crate) fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> crate::StoreError {
    crate::StoreError::Internal(format!("stored {what} is unreadable: {e}"))
}

/// A task row as stored (`TASK_COLS`, in that order), read by sqlx or by
/// SQLite's point reader (`sqlite_read.rs`) and parsed into a `Task` here,
/// once for both.
#[derive(sqlx::FromRow)]
pub(crate) struct TaskColumns {
    pub id: String,
    pub account_id: String,
    pub model: String,
    pub status: String,
    pub prompt: String,
    pub params: String,
    pub reference_files: String,
    pub reserved_credits: i64,
    pub final_credits: i64,
    pub client_request_id: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deadline_at: i64,
}

impl TaskColumns {
    pub(crate) fn into_task(self) -> crate::StoreResult<gengate_core::generation::Task> {
        use gengate_core::generation::{
            ClientRequestId, Prompt, StoredResult, Task, TaskError, TaskStatus,
        };
        use gengate_core::ids::{AccountId, TaskId};
        use gengate_core::{Credits, Timestamp};
        let credits = |v: i64, what: &str| Credits::new(v).map_err(|e| corrupt(what, e));
        Ok(Task {
            status: TaskStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", &self.status))?,
            id: TaskId::from_trusted(self.id),
            account_id: AccountId::from_trusted(self.account_id),
            model: self.model,
            prompt: Prompt::from_stored(self.prompt),
            params: gengate_core::params::NormalizedParams::from_stored(
                serde_json::from_str(&self.params).map_err(|e| corrupt("params", e))?,
            ),
            references: serde_json::from_str(&self.reference_files)
                .map_err(|e| corrupt("reference_files", e))?,
            reserved_credits: credits(self.reserved_credits, "reserved_credits")?,
            final_credits: credits(self.final_credits, "final_credits")?,
            client_request_id: self.client_request_id.map(ClientRequestId::from_stored),
            result: self
                .result
                .map(|s| serde_json::from_str::<StoredResult>(&s))
                .transpose()
                .map_err(|e| corrupt("result", e))?,
            error: self
                .error
                .map(|s| serde_json::from_str::<TaskError>(&s))
                .transpose()
                .map_err(|e| corrupt("error", e))?,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
            deadline_at: Timestamp::from_millis(self.deadline_at),
        })
    }
}

/// An account row as stored (`ACCOUNT_COLS`, in that order), parsed here
/// for sqlx and for the point reader alike.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountColumns {
    pub id: String,
    pub name: String,
    pub balance: i64,
    pub created_at: i64,
    pub sandbox: bool,
    pub suspended: bool,
    pub price_adjustment: i32,
    pub low_balance_threshold: Option<i64>,
}

impl AccountColumns {
    pub(crate) fn into_account(self) -> crate::StoreResult<crate::Account> {
        Ok(crate::Account {
            id: gengate_core::ids::AccountId::from_trusted(self.id),
            name: self.name,
            balance: gengate_core::Credits::new(self.balance).map_err(|e| corrupt("balance", e))?,
            created_at: gengate_core::Timestamp::from_millis(self.created_at),
            sandbox: self.sandbox,
            suspended: self.suspended,
            price_adjustment: self.price_adjustment,
            low_balance_threshold: self.low_balance_threshold,
        })
    }
}

macro_rules! impl_store {
    ($store:ty, $db:ty, engine = $engine:expr, lease_sql = $lease_sql:expr) => {
        use $crate::engine::{
            corrupt, json_text, ACCOUNT_BY_ID_SQL, ACCOUNT_COLS, FILE_COLS, KEY_COLS, KEY_READ, TASK_COLS, TASK_OF_ACCOUNT_SQL,
            TASK_STATUS_SQL,
        };
        use gengate_core::spend::SpendLimit;
        use $crate::*;
        use gengate_core::credits::LedgerKind;
        use gengate_core::generation::{StoredResult, Task, TaskError, TaskStatus};
        use gengate_core::ids::{AccountId, ApiKeyId, TaskId};
        use gengate_core::scope::Scope;
        use gengate_core::{Credits, Timestamp};
        use sqlx::{AssertSqlSafe, Row};

        type DbRow = <$db as sqlx::Database>::Row;

        fn ts(ms: i64) -> Timestamp {
            Timestamp::from_millis(ms)
        }

        fn credits(v: i64, what: &str) -> StoreResult<Credits> {
            Credits::new(v).map_err(|e| corrupt(what, e))
        }

        /// The webhook event of a terminal transition, written in the same
        /// transaction so it exists exactly when the transition does.
        async fn outbox_event(
            tx: &mut sqlx::Transaction<'_, $db>,
            account: &str,
            task_id: &TaskId,
            event_type: &str,
            now: Timestamp,
        ) -> StoreResult<()> {
            let id = gengate_core::ids::EventId::generate();
            write_event(tx, &id, account, event_type, Some(task_id.as_str()), None, now).await
        }

        /// One row of the webhook outbox, in the caller's transaction: a task's event
        /// (`task_id`) or an alert that carries its own `data`.
        async fn write_event(
            tx: &mut sqlx::Transaction<'_, $db>,
            id: &gengate_core::ids::EventId,
            account: &str,
            event_type: &str,
            task_id: Option<&str>,
            data: Option<&serde_json::Value>,
            now: Timestamp,
        ) -> StoreResult<()> {
            sqlx::query("INSERT INTO webhook_events (id, account_id, type, task_id, created_at, data) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id.as_str())
                .bind(account)
                .bind(event_type)
                .bind(task_id)
                .bind(now.as_millis())
                .bind(data.map(|d| d.to_string()))
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Marks the create's idempotency key completed with its answer, in
        /// the create's transaction; an error when our hold on the key lapsed
        /// and someone else took it (the caller rolls back rather than answer
        /// twice).
        /// An operator's grant or adjustment inside `tx`: the balance moves (never below
        /// zero) and its ledger row is written; the new balance.
        async fn operator_change(
            conn: &mut <$db as sqlx::Database>::Connection,
            account: &AccountId,
            kind: LedgerKind,
            delta: i64,
            reason: &str,
            now: Timestamp,
        ) -> Result<i64, CreateTaskError> {
            if !matches!(kind, LedgerKind::Grant | LedgerKind::Adjust) || (kind == LedgerKind::Grant && delta <= 0) {
                return Err(StoreError::Internal(format!("{} of {delta} is not an operator change", kind.as_str())).into());
            }
            let row = sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2 AND balance + $1 >= 0 RETURNING balance")
                .bind(delta)
                .bind(account.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::from)?;
            let Some(row) = row else {
                let bal: Option<i64> = sqlx::query_scalar("SELECT balance FROM accounts WHERE id = $1")
                    .bind(account.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
                return match bal {
                    None => Err(StoreError::NotFound(format!("account {account}")).into()),
                    Some(b) => Err(CreateTaskError::InsufficientCredits {
                        balance: credits(b, "balance")?,
                        price: Credits::new(delta.saturating_neg()).unwrap_or_default(),
                    }),
                };
            };
            let balance: i64 = row.try_get("balance").map_err(StoreError::from)?;
            sqlx::query(
                "INSERT INTO ledger_entries (account_id, kind, amount, balance_after, task_id, reason, created_at) VALUES ($1, $2, $3, $4, NULL, $5, $6)",
            )
            .bind(account.as_str())
            .bind(kind.as_str())
            .bind(delta)
            .bind(balance)
            .bind(reason)
            .bind(now.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from)?;
            Ok(balance)
        }

        async fn complete_idem(conn: &mut <$db as sqlx::Database>::Connection, c: &IdemCompletion) -> Result<(), CreateTaskError> {
            let done = sqlx::query(
                "UPDATE idempotency_keys SET state = 'completed', locked_until = NULL, response_status = $5, response_headers = $6, \
                 response_body = $7, expires_at = $8, holder_node = NULL, holder_boot = NULL, hold_token = NULL \
                 WHERE account_id = $1 AND method = $2 AND path = $3 AND idem_key = $4 AND state = 'in_flight' AND hold_token = $9",
            )
            .bind(c.scope.account_id.as_str())
            .bind(&c.scope.method)
            .bind(&c.scope.path)
            .bind(&c.scope.key)
            .bind(i64::from(c.response.status))
            .bind(headers_text(&c.response.headers))
            .bind(&c.response.body)
            .bind(c.expires_at.as_millis())
            .bind(&c.token)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from)?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict("idempotency key was taken over".into()).into());
            }
            Ok(())
        }

        /// The answer to a debit the balance did not cover (it wrote nothing).
        async fn refused_debit(conn: &mut <$db as sqlx::Database>::Connection, t: &NewTask) -> CreateTaskError {
            let bal: Result<Option<i64>, _> = sqlx::query_scalar("SELECT balance FROM accounts WHERE id = $1")
                .bind(t.account_id.as_str())
                .fetch_optional(&mut *conn)
                .await;
            match bal.map_err(StoreError::from).and_then(|b| credits(b.unwrap_or(0), "balance")) {
                Ok(balance) => CreateTaskError::InsufficientCredits { balance, price: t.price },
                Err(e) => e.into(),
            }
        }

        /// The key's spend limit as stored now (in the caller's transaction).
        async fn key_limit(conn: &mut <$db as sqlx::Database>::Connection, key: &ApiKeyId) -> StoreResult<Option<SpendLimit>> {
            let r = sqlx::query("SELECT spend_limit, spend_window_ms FROM api_keys WHERE id = $1")
                .bind(key.as_str())
                .fetch_optional(&mut *conn)
                .await?;
            let Some(r) = r else { return Ok(None) };
            let limit: Option<i64> = r.try_get("spend_limit")?;
            let window: Option<i64> = r.try_get("spend_window_ms")?;
            Ok(limit.and_then(|l| SpendLimit::from_stored(l, window)))
        }

        /// What the key's counted tasks hold now (see `gengate_core::spend`).
        async fn key_spent(conn: &mut <$db as sqlx::Database>::Connection, key: &ApiKeyId, after: Timestamp) -> StoreResult<Credits> {
            let spent: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(reserved_credits), 0) AS BIGINT) FROM tasks \
                 WHERE api_key_id = $1 AND created_at > $2 AND status <> 'failed'",
            )
            .bind(key.as_str())
            .bind(after.as_millis())
            .fetch_one(&mut *conn)
            .await?;
            credits(spent, "key spend")
        }

        /// The new task's values as `$1`..`$11` of an insert into `tasks`
        /// (id, account, model, prompt, params, references, price, client
        /// request id, provider, now, deadline), shared by both engines'
        /// create statements.
        fn bind_new_task<'q>(
            q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            t: &'q NewTask,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            q.bind(t.id.as_str())
                .bind(t.account_id.as_str())
                .bind(&t.model)
                .bind(t.prompt.as_str())
                .bind(json_text(&t.params))
                .bind(json_text(&t.references))
                .bind(t.price.get())
                .bind(t.client_request_id.as_ref().map(|c| c.as_str().to_owned()))
                .bind(&t.provider)
                .bind(t.now.as_millis())
                .bind(t.deadline_at.as_millis())
                .bind(t.price_version.as_deref())
        }

        /// One create in its own transaction.
        async fn create_alone(
            pool: &sqlx::Pool<$db>,
            t: &NewTask,
            key: Option<&ApiKeyId>,
            idem: Option<&IdemCompletion>,
        ) -> Result<Task, CreateTaskError> {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let task = create_rows(&mut *tx, t, key, idem).await?;
            tx.commit().await.map_err(StoreError::from)?;
            Ok(task)
        }

        /// A create through the group-commit queue (`batch.rs`).
        async fn create_batched(
            pool: &sqlx::Pool<$db>,
            queue: &std::sync::Arc<$crate::batch::CreateQueue>,
            t: &NewTask,
            key: Option<&ApiKeyId>,
            idem: Option<&IdemCompletion>,
        ) -> Result<Task, CreateTaskError> {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let start = queue.push($crate::batch::QueuedCreate { task: t.clone(), key: key.cloned(), idem: idem.cloned(), reply });
            if start {
                // A task of its own, so a caller that goes away (a client that
                // hangs up) cannot cancel a batch that holds other callers' work.
                tokio::spawn(drain_creates(pool.clone(), queue.clone()));
            }
            answer
                .await
                .map_err(|_| CreateTaskError::Store(StoreError::Internal("the create batch stopped before answering; the create may have been stored".into())))?
        }

        async fn drain_creates(pool: sqlx::Pool<$db>, queue: std::sync::Arc<$crate::batch::CreateQueue>) {
            let mut drain = $crate::batch::Drain::new(queue);
            while let Some(batch) = drain.next_batch() {
                if batch.len() > 1 {
                    // Each engine's `batch_in_one_tx`: every create of the
                    // batch in one transaction, committed, or an error after
                    // which nothing of the batch was kept.
                    match batch_in_one_tx(&pool, &batch).await {
                        Ok(results) => {
                            for (q, r) in batch.into_iter().zip(results) {
                                let _ = q.reply.send(r);
                            }
                            continue;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, size = batch.len(), "create batch rolled back; running each alone");
                        }
                    }
                }
                for q in batch {
                    let r = create_alone(&pool, &q.task, q.key.as_ref(), q.idem.as_ref()).await;
                    let _ = q.reply.send(r);
                }
            }
        }

        fn account_from_row(r: &DbRow) -> StoreResult<Account> {
            <$crate::engine::AccountColumns as sqlx::FromRow<DbRow>>::from_row(r)?.into_account()
        }

        fn key_from_row(r: &DbRow) -> StoreResult<ApiKeyRecord> {
            let scopes: String = r.try_get("scopes")?;
            let scopes = Scope::parse_list(&scopes).map_err(|e| corrupt("scopes", e))?;
            let rate = |c: &str| -> StoreResult<Option<u32>> {
                Ok(r.try_get::<Option<i64>, _>(c)?.map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
            };
            Ok(ApiKeyRecord {
                id: ApiKeyId::from_trusted(r.try_get("id")?),
                account_id: AccountId::from_trusted(r.try_get("account_id")?),
                name: r.try_get("name")?,
                visible_prefix: r.try_get("visible_prefix")?,
                key_hash: r.try_get("key_hash")?,
                scopes,
                rates: RateOverrides {
                    create_per_min: rate("rate_create")?,
                    read_per_min: rate("rate_read")?,
                    upload_per_min: rate("rate_upload")?,
                },
                created_at: ts(r.try_get("created_at")?),
                expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(ts),
                revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
                spend_limit: match r.try_get::<Option<i64>, _>("spend_limit")? {
                    None => None,
                    Some(l) => Some(
                        SpendLimit::from_stored(l, r.try_get("spend_window_ms")?)
                            .ok_or_else(|| corrupt("spend limit", l))?,
                    ),
                },
                last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(ts),
                account_suspended: r.try_get::<Option<bool>, _>("account_suspended")?.unwrap_or(false),
            })
        }

        fn task_from_row(r: &DbRow) -> StoreResult<Task> {
            <$crate::engine::TaskColumns as sqlx::FromRow<DbRow>>::from_row(r)?.into_task()
        }

        fn ledger_from_row(r: &DbRow) -> StoreResult<LedgerEntry> {
            let kind: String = r.try_get("kind")?;
            Ok(LedgerEntry {
                seq: r.try_get("seq")?,
                account_id: AccountId::from_trusted(r.try_get("account_id")?),
                kind: LedgerKind::parse(&kind).ok_or_else(|| corrupt("ledger kind", &kind))?,
                amount: r.try_get("amount")?,
                balance_after: credits(r.try_get("balance_after")?, "balance_after")?,
                task_id: r.try_get::<Option<String>, _>("task_id")?.map(TaskId::from_trusted),
                reason: r.try_get("reason")?,
                created_at: ts(r.try_get("created_at")?),
            })
        }

        fn file_from_row(r: &DbRow) -> StoreResult<FileRecord> {
            let dim = |c: &str| -> StoreResult<Option<u32>> { Ok(r.try_get::<Option<i64>, _>(c)?.and_then(|v| u32::try_from(v).ok())) };
            Ok(FileRecord {
                id: gengate_core::ids::FileId::from_trusted(r.try_get("id")?),
                account_id: AccountId::from_trusted(r.try_get("account_id")?),
                kind: r.try_get("kind")?,
                mime_type: r.try_get("mime_type")?,
                name: r.try_get("name")?,
                size_bytes: u64::try_from(r.try_get::<i64, _>("size_bytes")?).unwrap_or(0),
                sha256: r.try_get("sha256")?,
                blob_key: r.try_get("blob_key")?,
                width: dim("width")?,
                height: dim("height")?,
                duration_seconds: r.try_get("duration_seconds")?,
                model: r.try_get("model")?,
                client_request_id: r.try_get("client_request_id")?,
                created_at: ts(r.try_get("created_at")?),
                expires_at: ts(r.try_get("expires_at")?),
            })
        }

        fn headers_text(h: &[(String, String)]) -> String {
            json_text(&h.iter().map(|(k, v)| [k.as_str(), v.as_str()]).collect::<Vec<_>>())
        }

        fn headers_parse(s: Option<String>) -> Vec<(String, String)> {
            s.and_then(|s| serde_json::from_str::<Vec<[String; 2]>>(&s).ok())
                .map(|v| v.into_iter().map(|[a, b]| (a, b)).collect())
                .unwrap_or_default()
        }

        fn ms(d: std::time::Duration) -> i64 {
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
        }

        /// The rest of a won failure (a task just moved to `failed`, `row`
        /// holding its account and reservation): the refund, its one ledger
        /// row, the job's removal and the outbox event, in the caller's transaction.
        async fn refund_failed(
            tx: &mut sqlx::Transaction<'_, $db>,
            row: &DbRow,
            task_id: &TaskId,
            error: &TaskError,
            now: Timestamp,
        ) -> StoreResult<()> {
            let account: String = row.try_get("account_id")?;
            let reserved: i64 = row.try_get("reserved_credits")?;
            let balance: i64 = sqlx::query_scalar("UPDATE accounts SET balance = balance + $1 WHERE id = $2 RETURNING balance")
                .bind(reserved)
                .bind(&account)
                .fetch_one(&mut **tx)
                .await?;
            sqlx::query(
                "INSERT INTO ledger_entries (account_id, kind, amount, balance_after, task_id, reason, created_at) VALUES ($1, 'refund', $2, $3, $4, $5, $6)",
            )
            .bind(&account)
            .bind(reserved)
            .bind(balance)
            .bind(task_id.as_str())
            .bind(format!("refund for {task_id}: {:?}", error.code))
            .bind(now.as_millis())
            .execute(&mut **tx)
            .await?;
            sqlx::query("DELETE FROM jobs WHERE task_id = $1").bind(task_id.as_str()).execute(&mut **tx).await?;
            outbox_event(tx, &account, task_id, "generation.failed", now).await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn engine(&self) -> Engine {
                $engine
            }

            async fn migrate(&self) -> StoreResult<()> {
                self.run_migrations().await
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.reader).await?;
                sqlx::query("SELECT 1").execute(&self.writer).await?;
                Ok(())
            }

            async fn create_account(&self, name: &str, now: Timestamp) -> StoreResult<Account> {
                let id = AccountId::generate();
                let sql = format!("INSERT INTO accounts (id, name, balance, created_at) VALUES ($1, $2, 0, $3) RETURNING {ACCOUNT_COLS}");
                let r = sqlx::query(AssertSqlSafe(sql))
                    .bind(id.as_str())
                    .bind(name)
                    .bind(now.as_millis())
                    .fetch_one(&self.writer)
                    .await?;
                account_from_row(&r)
            }

            async fn get_account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
                if let Some(read) = self.point_reader().and_then(|p| p.account(id)) {
                    return read;
                }
                let r = sqlx::query(ACCOUNT_BY_ID_SQL.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&self.reader)
                    .await?;
                r.as_ref().map(account_from_row).transpose()
            }

            async fn find_account_by_name(&self, name: &str) -> StoreResult<Option<Account>> {
                let r = sqlx::query(AssertSqlSafe(format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE name = $1")))
                    .bind(name)
                    .fetch_optional(&self.reader)
                    .await?;
                r.as_ref().map(account_from_row).transpose()
            }

            async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
                let rows = sqlx::query(AssertSqlSafe(format!("SELECT {ACCOUNT_COLS} FROM accounts ORDER BY created_at, id")))
                    .fetch_all(&self.reader)
                    .await?;
                rows.iter().map(account_from_row).collect()
            }

            async fn create_api_key(&self, k: &NewApiKey) -> StoreResult<ApiKeyRecord> {
                let id = ApiKeyId::generate();
                let scopes = k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
                // RETURNING cannot read the account (SQLite allows no subquery there):
                // the record is read back whole below.
                let sql = format!(
                    "INSERT INTO api_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL) RETURNING id"
                );
                let r = sqlx::query(AssertSqlSafe(sql))
                    .bind(id.as_str())
                    .bind(k.account_id.as_str())
                    .bind(&k.name)
                    .bind(&k.visible_prefix)
                    .bind(&k.key_hash)
                    .bind(scopes)
                    .bind(k.rates.create_per_min.map(i64::from))
                    .bind(k.rates.read_per_min.map(i64::from))
                    .bind(k.rates.upload_per_min.map(i64::from))
                    .bind(k.now.as_millis())
                    .bind(k.expires_at.map(Timestamp::as_millis))
                    .fetch_one(&self.writer)
                    .await?;
                let id: String = r.try_get("id")?;
                let r = sqlx::query(AssertSqlSafe(format!("SELECT {KEY_READ} FROM api_keys WHERE id = $1")))
                    .bind(id)
                    .fetch_one(&self.writer)
                    .await?;
                key_from_row(&r)
            }

            async fn find_api_key_by_prefix(&self, visible_prefix: &str) -> StoreResult<Option<ApiKeyRecord>> {
                let sql = format!("SELECT {KEY_READ} FROM api_keys WHERE visible_prefix = $1");
                let r = sqlx::query(AssertSqlSafe(sql)).bind(visible_prefix).fetch_optional(&self.reader).await?;
                r.as_ref().map(key_from_row).transpose()
            }

            async fn list_api_keys(&self, account: Option<&AccountId>) -> StoreResult<Vec<ApiKeyRecord>> {
                let sql = format!(
                    "SELECT {KEY_READ} FROM api_keys WHERE CAST($1 AS TEXT) IS NULL OR account_id = $1 ORDER BY created_at, id"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(account.map(|a| a.as_str().to_owned()))
                    .fetch_all(&self.reader)
                    .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> StoreResult<bool> {
                let mut tx = self.writer.begin().await?;
                let r = sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id.as_str())
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE auth_epoch SET value = value + 1 WHERE id = 1").execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_account_suspended(&self, id: &AccountId, suspended: bool) -> StoreResult<bool> {
                let mut tx = self.writer.begin().await?;
                // Only a real change counts (and moves the epoch): of two racing
                // suspensions, one reports it.
                let r = sqlx::query("UPDATE accounts SET suspended = $2 WHERE id = $1 AND suspended <> $2")
                    .bind(id.as_str())
                    .bind(suspended)
                    .execute(&mut *tx)
                    .await?;
                if r.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query("UPDATE auth_epoch SET value = value + 1 WHERE id = 1").execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(r.rows_affected() == 1)
            }

            fn usage<'a>(&'a self, q: &'a $crate::usage::UsageQuery) -> $crate::usage::UsageStream<'a> {
                use futures_util::StreamExt;
                let bucketed = q.group_by.bucket_ms().is_some();
                let rows = sqlx::query(AssertSqlSafe($crate::usage::usage_sql(q.group_by)))
                    .bind(q.from.as_millis())
                    .bind(q.to.as_millis())
                    .bind(q.include_sandbox)
                    .bind(q.account.as_ref().map(|a| a.as_str().to_owned()))
                    .fetch(&self.reader);
                Box::pin(rows.map(move |r| {
                    let r = r?;
                    let group = if bucketed {
                        let ms: Option<i64> = r.try_get("grp")?;
                        Timestamp::from_millis(ms.unwrap_or_default()).rfc3339()
                    } else {
                        r.try_get::<Option<String>, _>("grp")?.unwrap_or_default()
                    };
                    Ok($crate::usage::UsageRow {
                        group,
                        tasks: r.try_get("tasks")?,
                        succeeded: r.try_get("succeeded")?,
                        failed: r.try_get("failed")?,
                        credits_charged: r.try_get("charged")?,
                        credits_refunded: r.try_get("refunded")?,
                    })
                }))
            }

            async fn bump_auth_epoch(&self) -> StoreResult<()> {
                sqlx::query("UPDATE auth_epoch SET value = value + 1 WHERE id = 1").execute(&self.writer).await?;
                Ok(())
            }

            async fn auth_epoch(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT value FROM auth_epoch WHERE id = 1").fetch_one(&self.reader).await?)
            }

            async fn set_account_sandbox(&self, id: &AccountId, sandbox: bool) -> StoreResult<bool> {
                let r = sqlx::query("UPDATE accounts SET sandbox = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(sandbox)
                    .execute(&self.writer)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_low_balance_threshold(&self, id: &AccountId, threshold: Option<i64>) -> StoreResult<bool> {
                let r = sqlx::query("UPDATE accounts SET low_balance_threshold = $2, low_balance_alerted = FALSE WHERE id = $1")
                    .bind(id.as_str())
                    .bind(threshold)
                    .execute(&self.writer)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn low_balance_alert(
                &self,
                id: &AccountId,
                event: &gengate_core::ids::EventId,
                now: Timestamp,
            ) -> StoreResult<Option<(i64, i64)>> {
                let mut tx = self.writer.begin().await?;
                let hit = sqlx::query(
                    "UPDATE accounts SET low_balance_alerted = TRUE WHERE id = $1 AND low_balance_threshold IS NOT NULL \
                     AND balance < low_balance_threshold AND low_balance_alerted = FALSE \
                     RETURNING balance, low_balance_threshold",
                )
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = hit else {
                    sqlx::query(
                        "UPDATE accounts SET low_balance_alerted = FALSE WHERE id = $1 AND low_balance_alerted = TRUE \
                         AND (low_balance_threshold IS NULL OR balance >= low_balance_threshold)",
                    )
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(None);
                };
                let balance: i64 = row.try_get("balance")?;
                let threshold: i64 = row.try_get("low_balance_threshold")?;
                let data = serde_json::json!({
                    "object": "credits_low", "account_id": id.as_str(),
                    "balance": balance, "low_balance_threshold": threshold,
                });
                write_event(&mut tx, event, id.as_str(), "credits.low", None, Some(&data), now).await?;
                tx.commit().await?;
                Ok(Some((balance, threshold)))
            }

            async fn low_balance_due(&self, limit: u32) -> StoreResult<Vec<AccountId>> {
                let rows: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM accounts WHERE (low_balance_threshold IS NOT NULL \
                       AND ((low_balance_alerted = FALSE AND balance < low_balance_threshold) \
                         OR (low_balance_alerted = TRUE AND balance >= low_balance_threshold))) \
                       OR (low_balance_threshold IS NULL AND low_balance_alerted = TRUE) \
                     LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?;
                Ok(rows.into_iter().map(AccountId::from_trusted).collect())
            }

            async fn spend_limit_alert(
                &self,
                key: &ApiKeyId,
                event: &gengate_core::ids::EventId,
                now: Timestamp,
            ) -> StoreResult<bool> {
                // Called on every create the limit refuses: a key hammering past its
                // limit must not take the writer each time, so a reader answers first.
                const DUE: &str = "spend_limit IS NOT NULL \
                     AND (spend_alerted_at IS NULL OR (spend_window_ms IS NOT NULL AND spend_alerted_at <= $2 - spend_window_ms))";
                let due: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!("SELECT id FROM api_keys WHERE id = $1 AND {DUE}")))
                    .bind(key.as_str())
                    .bind(now.as_millis())
                    .fetch_optional(&self.reader)
                    .await?;
                if due.is_none() {
                    return Ok(false);
                }
                let mut tx = self.writer.begin().await?;
                // The same condition again, as a compare-and-set: of two racing nodes one writes.
                let hit = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE api_keys SET spend_alerted_at = $2 WHERE id = $1 AND {DUE} RETURNING account_id, spend_limit, spend_window_ms"
                )))
                .bind(key.as_str())
                .bind(now.as_millis())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = hit else {
                    return Ok(false);
                };
                let account: String = row.try_get("account_id")?;
                let window: Option<i64> = row.try_get("spend_window_ms")?;
                let data = serde_json::json!({
                    "object": "spend_limit", "key_id": key.as_str(),
                    "spend_limit": row.try_get::<i64, _>("spend_limit")?,
                    "window_seconds": window.map(|w| w / 1000),
                });
                write_event(&mut tx, event, &account, "key.spend_limit_reached", None, Some(&data), now).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn set_price_adjustment(&self, id: &AccountId, percent: i32) -> StoreResult<bool> {
                let r = sqlx::query("UPDATE accounts SET price_adjustment = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(percent)
                    .execute(&self.writer)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_spend_limit(&self, id: &ApiKeyId, limit: Option<SpendLimit>) -> StoreResult<bool> {
                let r = sqlx::query("UPDATE api_keys SET spend_limit = $2, spend_window_ms = $3, spend_alerted_at = NULL WHERE id = $1")
                    .bind(id.as_str())
                    .bind(limit.map(|l| l.limit.get()))
                    .bind(limit.and_then(|l| l.window_ms()))
                    .execute(&self.writer)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn key_spend(&self, id: &ApiKeyId, after: Timestamp) -> StoreResult<Vec<(Timestamp, Credits)>> {
                let rows = sqlx::query(
                    "SELECT created_at, reserved_credits FROM tasks WHERE api_key_id = $1 AND created_at > $2 AND status <> 'failed' \
                     ORDER BY created_at, seq",
                )
                .bind(id.as_str())
                .bind(after.as_millis())
                .fetch_all(&self.reader)
                .await?;
                rows.iter()
                    .map(|r| Ok((ts(r.try_get("created_at")?), credits(r.try_get("reserved_credits")?, "reserved_credits")?)))
                    .collect()
            }

            async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> StoreResult<()> {
                // Never moves backwards when two nodes touch the same key.
                sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
                    .bind(id.as_str())
                    .bind(now.as_millis())
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn change_credits_audited(
                &self,
                account: &AccountId,
                kind: LedgerKind,
                delta: i64,
                reason: &str,
                now: Timestamp,
                audit: &$crate::operators::NewAudit,
                idem: Option<$crate::CreditsIdem<'_>>,
            ) -> Result<Credits, CreateTaskError> {
                let mut tx = self.writer.begin().await.map_err(StoreError::from)?;
                let balance = operator_change(&mut tx, account, kind, delta, reason, now).await?;
                sqlx::query(
                    "INSERT INTO audit_log (id, at, actor, action, target, account_id, before_json, after_json, request_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(gengate_core::ids::AuditId::generate().as_str())
                .bind(audit.at.as_millis())
                .bind(&audit.actor)
                .bind(&audit.action)
                .bind(&audit.target)
                .bind(audit.account_id.as_ref().map(|a| a.as_str().to_owned()))
                .bind(json_text(&serde_json::json!({"balance": balance - delta})))
                .bind(json_text(&serde_json::json!({"balance": balance, "amount": delta, "reason": reason})))
                .bind(audit.request_id.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
                let balance = credits(balance, "balance")?;
                if let Some(i) = idem {
                    complete_idem(
                        &mut tx,
                        &IdemCompletion {
                            scope: i.scope.clone(),
                            token: i.token.to_owned(),
                            response: (i.response)(balance),
                            expires_at: i.expires_at,
                        },
                    )
                    .await?;
                }
                tx.commit().await.map_err(StoreError::from)?;
                Ok(balance)
            }

            async fn change_credits(
                &self,
                account: &AccountId,
                kind: LedgerKind,
                delta: i64,
                reason: &str,
                now: Timestamp,
            ) -> Result<Credits, CreateTaskError> {
                let mut tx = self.writer.begin().await.map_err(StoreError::from)?;
                let balance = operator_change(&mut tx, account, kind, delta, reason, now).await?;
                tx.commit().await.map_err(StoreError::from)?;
                Ok(credits(balance, "balance")?)
            }

            async fn balance(&self, account: &AccountId) -> StoreResult<Credits> {
                let b: Option<i64> = sqlx::query_scalar("SELECT balance FROM accounts WHERE id = $1")
                    .bind(account.as_str())
                    .fetch_optional(&self.reader)
                    .await?;
                credits(b.ok_or_else(|| StoreError::NotFound(format!("account {account}")))?, "balance")
            }

            async fn ledger(&self, account: &AccountId) -> StoreResult<Vec<LedgerEntry>> {
                let rows = sqlx::query(
                    "SELECT seq, account_id, kind, amount, balance_after, task_id, reason, created_at FROM ledger_entries WHERE account_id = $1 ORDER BY seq",
                )
                .bind(account.as_str())
                .fetch_all(&self.reader)
                .await?;
                rows.iter().map(ledger_from_row).collect()
            }

            async fn ledger_page(&self, account: &AccountId, before_seq: Option<i64>, limit: u32) -> StoreResult<(Vec<LedgerEntry>, bool)> {
                let rows = sqlx::query(
                    "SELECT seq, account_id, kind, amount, balance_after, task_id, reason, created_at FROM ledger_entries \
                     WHERE account_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3",
                )
                .bind(account.as_str())
                .bind(before_seq)
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.reader)
                .await?;
                let has_more = rows.len() > limit as usize;
                let entries = rows.iter().take(limit as usize).map(ledger_from_row).collect::<StoreResult<Vec<_>>>()?;
                Ok((entries, has_more))
            }

            async fn ledger_mismatches(&self) -> StoreResult<Vec<LedgerMismatch>> {
                let rows = sqlx::query(
                    "SELECT a.id, a.balance, CAST(COALESCE((SELECT SUM(l.amount) FROM ledger_entries l WHERE l.account_id = a.id), 0) AS BIGINT) AS ledger_sum FROM accounts a",
                )
                .fetch_all(&self.writer)
                .await?;
                let mut out = Vec::new();
                for r in rows {
                    let balance: i64 = r.try_get("balance")?;
                    let ledger_sum: i64 = r.try_get("ledger_sum")?;
                    if balance != ledger_sum {
                        out.push(LedgerMismatch { account_id: AccountId::from_trusted(r.try_get("id")?), balance, ledger_sum });
                    }
                }
                Ok(out)
            }

            async fn idempotency_begin(
                &self,
                scope: &IdemScope,
                fingerprint: &str,
                holder: &IdemHolder,
                now: Timestamp,
                lease: std::time::Duration,
                keep_for: std::time::Duration,
            ) -> StoreResult<IdemBegin> {
                let locked_until = now.as_millis() + ms(lease);
                let expires_at = now.as_millis() + ms(keep_for);
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_keys (account_id, method, path, idem_key, fingerprint, state, locked_until, created_at, expires_at, \
                     holder_node, holder_boot, hold_token) \
                     VALUES ($1, $2, $3, $4, $5, 'in_flight', $6, $7, $8, $9, $10, $11) ON CONFLICT (account_id, method, path, idem_key) DO NOTHING",
                )
                .bind(scope.account_id.as_str())
                .bind(&scope.method)
                .bind(&scope.path)
                .bind(&scope.key)
                .bind(fingerprint)
                .bind(locked_until)
                .bind(now.as_millis())
                .bind(expires_at)
                .bind(&holder.node)
                .bind(&holder.boot)
                .bind(&holder.token)
                .execute(&self.writer)
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(IdemBegin::Started);
                }
                // Take over a record that expired, or an in-flight one whose
                // holder stopped renewing its lease, for the same request. The
                // conditions are re-checked by the UPDATE itself, so of two
                // requests racing for a lapsed hold exactly one wins.
                let taken = sqlx::query(
                    "UPDATE idempotency_keys SET fingerprint = $5, state = 'in_flight', locked_until = $6, response_status = NULL, \
                     response_headers = NULL, response_body = NULL, created_at = $7, expires_at = $8, \
                     holder_node = $9, holder_boot = $10, hold_token = $11 \
                     WHERE account_id = $1 AND method = $2 AND path = $3 AND idem_key = $4 \
                       AND (expires_at < $7 OR (state = 'in_flight' AND locked_until < $7 AND fingerprint = $5))",
                )
                .bind(scope.account_id.as_str())
                .bind(&scope.method)
                .bind(&scope.path)
                .bind(&scope.key)
                .bind(fingerprint)
                .bind(locked_until)
                .bind(now.as_millis())
                .bind(expires_at)
                .bind(&holder.node)
                .bind(&holder.boot)
                .bind(&holder.token)
                .execute(&self.writer)
                .await?;
                if taken.rows_affected() == 1 {
                    return Ok(IdemBegin::Started);
                }
                let r = sqlx::query(
                    "SELECT fingerprint, state, response_status, response_headers, response_body FROM idempotency_keys \
                     WHERE account_id = $1 AND method = $2 AND path = $3 AND idem_key = $4",
                )
                .bind(scope.account_id.as_str())
                .bind(&scope.method)
                .bind(&scope.path)
                .bind(&scope.key)
                .fetch_optional(&self.writer)
                .await?;
                let Some(r) = r else {
                    // Released between our insert and read: the caller may retry.
                    return Ok(IdemBegin::InFlight);
                };
                let fp: String = r.try_get("fingerprint")?;
                let state: String = r.try_get("state")?;
                if fp != fingerprint {
                    return Ok(IdemBegin::Mismatch);
                }
                if state != "completed" {
                    return Ok(IdemBegin::InFlight);
                }
                let status: Option<i64> = r.try_get("response_status")?;
                Ok(IdemBegin::Replay(StoredResponse {
                    status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
                    headers: headers_parse(r.try_get("response_headers")?),
                    body: r.try_get::<Option<String>, _>("response_body")?.unwrap_or_default(),
                }))
            }

            async fn idempotency_extend(&self, scope: &IdemScope, token: &str, until: Timestamp) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE idempotency_keys SET locked_until = $6 \
                     WHERE account_id = $1 AND method = $2 AND path = $3 AND idem_key = $4 AND state = 'in_flight' AND hold_token = $5",
                )
                .bind(scope.account_id.as_str())
                .bind(&scope.method)
                .bind(&scope.path)
                .bind(&scope.key)
                .bind(token)
                .bind(until.as_millis())
                .execute(&self.writer)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn idempotency_complete(&self, scope: &IdemScope, token: &str, response: &StoredResponse, expires_at: Timestamp) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE idempotency_keys SET state = 'completed', locked_until = NULL, response_status = $5, response_headers = $6, \
                     response_body = $7, expires_at = $8, holder_node = NULL, holder_boot = NULL, hold_token = NULL \
                     WHERE account_id = $1 AND method = $2 AND path = $3 AND idem_key = $4 AND state = 'in_flight' AND hold_token = $9",
                )
                .bind(scope.account_id.as_str())
                .bind(&scope.method)
                .bind(&scope.path)
                .bind(&scope.key)
                .bind(i64::from(response.status))
                .bind(headers_text(&response.headers))
                .bind(&response.body)
                .bind(expires_at.as_millis())
                .bind(token)
                .execute(&self.writer)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn idempotency_release(&self, scope: &IdemScope, token: &str) -> StoreResult<()> {
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE account_id = $1 AND method = $2 AND path = $3 AND idem_key = $4 \
                     AND state = 'in_flight' AND hold_token = $5",
                )
                .bind(scope.account_id.as_str())
                .bind(&scope.method)
                .bind(&scope.path)
                .bind(&scope.key)
                .bind(token)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn release_idempotency_holds_of_node(&self, node: &str, current_boot: &str) -> StoreResult<u64> {
                let r = sqlx::query(
                    "DELETE FROM idempotency_keys WHERE state = 'in_flight' AND holder_node = $1 AND holder_boot <> $2",
                )
                .bind(node)
                .bind(current_boot)
                .execute(&self.writer)
                .await?;
                Ok(r.rows_affected())
            }

            async fn purge_expired_idempotency(&self, now: Timestamp) -> StoreResult<u64> {
                let r = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < $1 AND state = 'completed'")
                    .bind(now.as_millis())
                    .execute(&self.writer)
                    .await?;
                Ok(r.rows_affected())
            }

            async fn create_task_for_key(&self, t: &NewTask, key: Option<&ApiKeyId>, idem: Option<&IdemCompletion>) -> Result<Task, CreateTaskError> {
                // Group-committed (`batch.rs`): a transaction's fixed cost —
                // BEGIN/COMMIT and the WAL writes of SQLite's one writer, the
                // WAL flush PostgreSQL holds an account's row lock through —
                // is paid once per batch.
                create_batched(&self.writer, &self.creates, t, key, idem).await
            }

            async fn get_task(&self, account: &AccountId, id: &TaskId) -> StoreResult<Option<Task>> {
                if let Some(read) = self.point_reader().and_then(|p| p.task(account, id)) {
                    return read;
                }
                let r = sqlx::query(TASK_OF_ACCOUNT_SQL.as_str())
                    .bind(id.as_str())
                    .bind(account.as_str())
                    .fetch_optional(&self.reader)
                    .await?;
                r.as_ref().map(task_from_row).transpose()
            }

            async fn get_task_unscoped(&self, id: &TaskId) -> StoreResult<Option<Task>> {
                let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1");
                let r = sqlx::query(AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(&self.reader).await?;
                r.as_ref().map(task_from_row).transpose()
            }

            async fn task_control(&self, account: &AccountId, id: &TaskId) -> StoreResult<Option<TaskControl>> {
                let sql = format!("SELECT {TASK_COLS}, provider, upstream FROM tasks WHERE id = $1 AND account_id = $2");
                // The writer: the cancel that follows compares against what is current.
                let r = sqlx::query(AssertSqlSafe(sql))
                    .bind(id.as_str())
                    .bind(account.as_str())
                    .fetch_optional(&self.writer)
                    .await?;
                let Some(r) = r else { return Ok(None) };
                Ok(Some(TaskControl { task: task_from_row(&r)?, provider: r.try_get("provider")?, upstream: r.try_get("upstream")? }))
            }

            async fn cancel_task(
                &self,
                account: &AccountId,
                id: &TaskId,
                expected_upstream: Option<&str>,
                error: &TaskError,
                now: Timestamp,
            ) -> StoreResult<Transition> {
                let mut tx = self.writer.begin().await?;
                // `COALESCE(…, '')`: the same test on both engines for "still
                // exactly the state judged cancelable", NULL included.
                let row = sqlx::query(
                    "UPDATE tasks SET status = 'failed', error = $2, final_credits = 0, updated_at = $3 \
                     WHERE id = $1 AND account_id = $4 AND status IN ('queued', 'processing') \
                       AND COALESCE(upstream, '') = COALESCE(CAST($5 AS TEXT), '') RETURNING account_id, reserved_credits",
                )
                .bind(id.as_str())
                .bind(json_text(error))
                .bind(now.as_millis())
                .bind(account.as_str())
                .bind(expected_upstream.map(str::to_owned))
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(Transition::Lost);
                };
                refund_failed(&mut tx, &row, id, error, now).await?;
                tx.commit().await?;
                Ok(Transition::Won)
            }

            async fn list_tasks(&self, account: &AccountId, f: &TaskFilter) -> StoreResult<(Vec<Task>, bool)> {
                let before: Option<i64> = match &f.starting_after {
                    None => None,
                    Some(id) => Some(
                        sqlx::query_scalar("SELECT seq FROM tasks WHERE id = $1 AND account_id = $2")
                            .bind(id.as_str())
                            .bind(account.as_str())
                            .fetch_optional(&self.reader)
                            .await?
                            .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?,
                    ),
                };
                let sql = format!(
                    "SELECT {TASK_COLS} FROM tasks WHERE account_id = $1 \
                     AND (CAST($2 AS BIGINT) IS NULL OR seq < $2) \
                     AND (CAST($3 AS TEXT) IS NULL OR status = $3) \
                     AND (CAST($4 AS TEXT) IS NULL OR client_request_id = $4) \
                     ORDER BY seq DESC LIMIT $5"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(account.as_str())
                    .bind(before)
                    .bind(f.status.map(|s| s.as_str().to_owned()))
                    .bind(f.client_request_id.clone())
                    .bind(i64::from(f.limit) + 1)
                    .fetch_all(&self.reader)
                    .await?;
                let has_more = rows.len() > f.limit as usize;
                let tasks = rows.iter().take(f.limit as usize).map(task_from_row).collect::<StoreResult<Vec<_>>>()?;
                Ok((tasks, has_more))
            }

            async fn lease_jobs(
                &self,
                worker: &str,
                providers: &[String],
                now: Timestamp,
                lease_for: std::time::Duration,
                limit: u32,
            ) -> StoreResult<Vec<LeasedJob>> {
                let rows = sqlx::query($lease_sql)
                    .bind(worker)
                    .bind(now.as_millis() + ms(lease_for))
                    .bind(now.as_millis())
                    .bind(i64::from(limit))
                    .bind(providers.join(","))
                    .fetch_all(&self.writer)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(LeasedJob {
                            task_id: TaskId::from_trusted(r.try_get("task_id")?),
                            provider: r.try_get("provider")?,
                            attempts: r.try_get("attempts")?,
                            lease_until: ts(r.try_get("lease_until")?),
                        })
                    })
                    .collect()
            }

            async fn renew_lease(&self, task_id: &TaskId, worker: &str, until: Timestamp) -> StoreResult<bool> {
                let r = sqlx::query("UPDATE jobs SET lease_until = $3 WHERE task_id = $1 AND lease_owner = $2")
                    .bind(task_id.as_str())
                    .bind(worker)
                    .bind(until.as_millis())
                    .execute(&self.writer)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn release_job(&self, task_id: &TaskId, worker: &str, run_at: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE jobs SET lease_owner = NULL, lease_until = NULL, run_at = $3 WHERE task_id = $1 AND lease_owner = $2")
                    .bind(task_id.as_str())
                    .bind(worker)
                    .bind(run_at.as_millis())
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn mark_processing(&self, task_id: &TaskId, now: Timestamp) -> StoreResult<Transition> {
                let r = sqlx::query("UPDATE tasks SET status = 'processing', updated_at = $2 WHERE id = $1 AND status = 'queued'")
                    .bind(task_id.as_str())
                    .bind(now.as_millis())
                    .execute(&self.writer)
                    .await?;
                Ok(if r.rows_affected() == 1 { Transition::Won } else { Transition::Lost })
            }

            async fn save_upstream(&self, task_id: &TaskId, upstream: &serde_json::Value, now: Timestamp) -> StoreResult<()> {
                let _ = now;
                let r = sqlx::query("UPDATE tasks SET upstream = $2 WHERE id = $1 AND status IN ('queued', 'processing')")
                    .bind(task_id.as_str())
                    .bind(upstream.to_string())
                    .execute(&self.writer)
                    .await?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("task {task_id} has ended (or does not exist); its upstream state is not saved")));
                }
                Ok(())
            }

            async fn load_upstream(&self, task_id: &TaskId) -> StoreResult<Option<serde_json::Value>> {
                let s: Option<Option<String>> = sqlx::query_scalar("SELECT upstream FROM tasks WHERE id = $1")
                    .bind(task_id.as_str())
                    .fetch_optional(&self.writer)
                    .await?;
                s.flatten().map(|s| serde_json::from_str(&s).map_err(|e| corrupt("upstream", e))).transpose()
            }

            async fn succeed_task(&self, task_id: &TaskId, result: &StoredResult, now: Timestamp) -> StoreResult<Transition> {
                let mut tx = self.writer.begin().await?;
                let account: Option<String> = sqlx::query_scalar(
                    "UPDATE tasks SET status = 'succeeded', result = $2, final_credits = reserved_credits, updated_at = $3 \
                     WHERE id = $1 AND status = 'processing' RETURNING account_id",
                )
                .bind(task_id.as_str())
                .bind(json_text(result))
                .bind(now.as_millis())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(account) = account else {
                    return Ok(Transition::Lost);
                };
                sqlx::query("DELETE FROM jobs WHERE task_id = $1").bind(task_id.as_str()).execute(&mut *tx).await?;
                outbox_event(&mut tx, &account, task_id, "generation.succeeded", now).await?;
                tx.commit().await?;
                Ok(Transition::Won)
            }

            async fn fail_task(&self, task_id: &TaskId, error: &TaskError, now: Timestamp) -> StoreResult<Transition> {
                let mut tx = self.writer.begin().await?;
                let row = sqlx::query(
                    "UPDATE tasks SET status = 'failed', error = $2, final_credits = 0, updated_at = $3 \
                     WHERE id = $1 AND status IN ('queued', 'processing') RETURNING account_id, reserved_credits",
                )
                .bind(task_id.as_str())
                .bind(json_text(error))
                .bind(now.as_millis())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(Transition::Lost);
                };
                refund_failed(&mut tx, &row, task_id, error, now).await?;
                tx.commit().await?;
                Ok(Transition::Won)
            }

            async fn overdue_tasks(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<TaskId>> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM tasks WHERE status IN ('queued', 'processing') AND deadline_at < $1 ORDER BY deadline_at LIMIT $2",
                )
                .bind(now.as_millis())
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?;
                Ok(ids.into_iter().map(TaskId::from_trusted).collect())
            }

            async fn task_updated_at(&self, task_id: &TaskId) -> StoreResult<Option<(TaskStatus, Timestamp)>> {
                let read = match self.point_reader().and_then(|p| p.task_status(task_id)) {
                    Some(read) => read,
                    None => {
                        let r = sqlx::query(TASK_STATUS_SQL)
                            .bind(task_id.as_str())
                            .fetch_optional(&self.reader)
                            .await?;
                        match r {
                            Some(r) => Some((r.try_get::<String, _>("status")?, r.try_get::<i64, _>("updated_at")?)),
                            None => None,
                        }
                    }
                };
                let Some((status, updated_at)) = read else { return Ok(None) };
                Ok(Some((TaskStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?, ts(updated_at))))
            }

            async fn insert_file(&self, f: &FileRecord) -> StoreResult<()> {
                let sql = format!("INSERT INTO files ({FILE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)");
                sqlx::query(AssertSqlSafe(sql))
                    .bind(f.id.as_str())
                    .bind(f.account_id.as_str())
                    .bind(&f.kind)
                    .bind(&f.mime_type)
                    .bind(f.name.clone())
                    .bind(i64::try_from(f.size_bytes).unwrap_or(i64::MAX))
                    .bind(&f.sha256)
                    .bind(&f.blob_key)
                    .bind(f.width.map(i64::from))
                    .bind(f.height.map(i64::from))
                    .bind(f.duration_seconds)
                    .bind(f.model.clone())
                    .bind(f.client_request_id.clone())
                    .bind(f.created_at.as_millis())
                    .bind(f.expires_at.as_millis())
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn get_file(&self, account: &AccountId, id: &gengate_core::ids::FileId, now: Timestamp) -> StoreResult<Option<FileRecord>> {
                let sql = format!("SELECT {FILE_COLS} FROM files WHERE id = $1 AND account_id = $2 AND expires_at > $3");
                let r = sqlx::query(AssertSqlSafe(sql))
                    .bind(id.as_str())
                    .bind(account.as_str())
                    .bind(now.as_millis())
                    .fetch_optional(&self.reader)
                    .await?;
                r.as_ref().map(file_from_row).transpose()
            }

            async fn find_file_by_blob(&self, account: &AccountId, blob_key: &str, now: Timestamp) -> StoreResult<Option<FileRecord>> {
                let sql = format!(
                    "SELECT {FILE_COLS} FROM files WHERE account_id = $1 AND blob_key = $2 AND expires_at > $3 ORDER BY created_at DESC LIMIT 1"
                );
                let r = sqlx::query(AssertSqlSafe(sql))
                    .bind(account.as_str())
                    .bind(blob_key)
                    .bind(now.as_millis())
                    .fetch_optional(&self.reader)
                    .await?;
                r.as_ref().map(file_from_row).transpose()
            }

            async fn expire_files(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<String>> {
                let mut tx = self.writer.begin().await?;
                let keys: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM files WHERE id IN (SELECT id FROM files WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2) RETURNING blob_key",
                )
                .bind(now.as_millis())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut orphans = Vec::new();
                for k in keys {
                    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE blob_key = $1").bind(&k).fetch_one(&mut *tx).await?;
                    if left == 0 && !orphans.contains(&k) {
                        orphans.push(k);
                    }
                }
                tx.commit().await?;
                Ok(orphans)
            }

            async fn wake_job(&self, task_id: &TaskId, now: Timestamp) -> StoreResult<bool> {
                // `run_at > now` only: waking a job that is already due must not push it back.
                let r = sqlx::query("UPDATE jobs SET run_at = $2 WHERE task_id = $1 AND run_at > $2")
                    .bind(task_id.as_str())
                    .bind(now.as_millis())
                    .execute(&self.writer)
                    .await?;
                if r.rows_affected() == 1 {
                    return Ok(true);
                }
                let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE task_id = $1")
                    .bind(task_id.as_str())
                    .fetch_one(&self.writer)
                    .await?;
                Ok(jobs > 0)
            }

            async fn tasks_changed_since(&self, since: Timestamp, limit: u32) -> StoreResult<Vec<(TaskId, Timestamp)>> {
                let rows = sqlx::query("SELECT id, updated_at FROM tasks WHERE updated_at >= $1 ORDER BY updated_at LIMIT $2")
                    .bind(since.as_millis())
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?;
                rows.iter()
                    .map(|r| Ok((TaskId::from_trusted(r.try_get("id")?), ts(r.try_get("updated_at")?))))
                    .collect()
            }
        }
    };
}

pub(crate) use impl_store;
