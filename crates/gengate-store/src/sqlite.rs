//! SQLite: one writer connection (SQLite admits one writer at a time; a
//! single connection queues writers in the pool instead of failing them with
//! SQLITE_BUSY) and a pool of WAL readers that never block on it.

use crate::{ConnectOptions, StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};
use std::str::FromStr;
use std::sync::Arc;

pub struct SqliteStore {
    pub(crate) writer: Pool<Sqlite>,
    pub(crate) reader: Pool<Sqlite>,
    creates: Arc<crate::batch::CreateQueue>,
    /// Status reads on the caller's thread (`sqlite_read.rs`); none for an
    /// in-memory database.
    pub(crate) point: Option<crate::sqlite_read::PointReader>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite has no SKIP LOCKED; with one writer the sub-select and the update
/// are already atomic.
const LEASE_SQL: &str = "UPDATE jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
     WHERE task_id IN (SELECT task_id FROM jobs WHERE run_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
       AND (',' || $5 || ',') LIKE ('%,' || provider || ',%') ORDER BY run_at LIMIT $4) \
     RETURNING task_id, provider, attempts, lease_until";

impl SqliteStore {
    pub async fn connect(url: &str, o: &ConnectOptions) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if o.sqlite_synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(o.acquire_timeout.max(std::time::Duration::from_secs(30)))
            .connect_with(base.clone())
            .await
            .map_err(StoreError::from)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(o.max_connections.clamp(1, 8))
            .acquire_timeout(o.acquire_timeout)
            .connect_with(base.clone().read_only(true))
            .await
            .map_err(StoreError::from)?;
        // After the writer, which created the file if it was missing.
        let point = crate::sqlite_read::PointReader::for_file(base.get_filename());
        Ok(Self {
            writer,
            reader,
            creates: Arc::default(),
            point,
        })
    }

    fn point_reader(&self) -> Option<&crate::sqlite_read::PointReader> {
        self.point.as_ref()
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }
}

crate::engine::impl_store!(
    SqliteStore,
    Sqlite,
    engine = Engine::Sqlite,
    lease_sql = LEASE_SQL
);

/// Due webhook deliveries, taken for one dispatcher until the lease lapses.
const DELIVERY_LEASE_SQL: &str = "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
     WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
       AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_attempt_at LIMIT $4) \
     RETURNING id, event_id, endpoint_id, attempts";

crate::webhook_engine::impl_webhook_store!(
    SqliteStore,
    Sqlite,
    delivery_lease_sql = DELIVERY_LEASE_SQL
);

/// Takes the task's price from its account, or reports the balance (or the
/// key's spend limit) that was too low; the new balance on success. A key
/// without a limit costs nothing extra: the debit itself checks that the key
/// has none, and only a limited key takes the second path, where the limit
/// is read and compared first. SQLite has one writer, so nothing can change
/// between that comparison and the debit.
async fn debit(
    conn: &mut sqlx::SqliteConnection,
    t: &NewTask,
    key: Option<&ApiKeyId>,
) -> Result<i64, CreateTaskError> {
    let price = t.price.get();
    let mut limit_checked = false;
    loop {
        let debited = sqlx::query(
            "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 \
             AND ($4 OR NOT EXISTS (SELECT 1 FROM api_keys WHERE id = $3 AND spend_limit IS NOT NULL)) RETURNING balance",
        )
        .bind(price)
        .bind(t.account_id.as_str())
        .bind(key.map(|k| k.as_str().to_owned()))
        .bind(limit_checked)
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        if let Some(debited) = debited {
            return Ok(debited.try_get("balance").map_err(StoreError::from)?);
        }
        if !limit_checked
            && let Some(k) = key
            && let Some(limit) = key_limit(&mut *conn, k).await?
        {
            let spent = key_spent(&mut *conn, k, limit.counts_after(t.now)).await?;
            if !limit.admits(spent, t.price) {
                return Err(CreateTaskError::SpendLimitExceeded {
                    limit,
                    spent,
                    price: t.price,
                });
            }
            limit_checked = true;
            continue;
        }
        return Err(refused_debit(&mut *conn, t).await);
    }
}

/// SQLite: the writes of one create inside the caller's transaction: the
/// debit, the task, its job, the idempotency record when a key was
/// sent, and the ledger row. The debit goes first, so a refused debit
/// has written nothing (a batch of creates in one transaction relies
/// on it); any other error leaves the caller to roll back.
async fn create_rows(
    conn: &mut sqlx::SqliteConnection,
    t: &NewTask,
    key: Option<&ApiKeyId>,
    idem: Option<&IdemCompletion>,
) -> Result<Task, CreateTaskError> {
    let price = t.price.get();
    let balance_after = debit(&mut *conn, t, key).await?;
    let sql = format!(
        "INSERT INTO tasks (id, account_id, model, status, prompt, params, reference_files, reserved_credits, final_credits, \
         client_request_id, result, error, provider, upstream, created_at, updated_at, deadline_at, price_version, api_key_id) \
         VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, 0, $8, NULL, NULL, $9, NULL, $10, $10, $11, $12, $13) RETURNING {TASK_COLS}"
    );
    let row = bind_new_task(sqlx::query(AssertSqlSafe(sql)), t)
        .bind(key.map(|k| k.as_str().to_owned()))
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::from)?;
    let task = task_from_row(&row)?;
    sqlx::query("INSERT INTO jobs (task_id, provider, run_at, lease_owner, lease_until, attempts, created_at) VALUES ($1, $2, $3, NULL, NULL, 0, $3)")
        .bind(t.id.as_str())
        .bind(&t.provider)
        .bind(t.now.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from)?;
    if let Some(c) = idem {
        complete_idem(&mut *conn, c).await?;
    }
    sqlx::query(
        "INSERT INTO ledger_entries (account_id, kind, amount, balance_after, task_id, reason, created_at) VALUES ($1, 'reserve', $2, $3, $4, $5, $6)",
    )
    .bind(t.account_id.as_str())
    .bind(-price)
    .bind(balance_after)
    .bind(t.id.as_str())
    .bind(format!("reserve for {} ({})", t.id, t.model))
    .bind(t.now.as_millis())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    Ok(task)
}

/// SQLite: a whole batch in a handful of statements instead of four per
/// create, because on SQLite every statement is a hand-off to the writer's
/// thread and those hand-offs are what bounds creates. The writer is the
/// only one, so the balances read at the start of the transaction cannot
/// change under it: which creates the balances cover is decided here, in
/// arrival order, exactly as one debit after another would decide it, and
/// then each account is debited once by the sum. The debit's `RETURNING`
/// must match the computed balance, and `CHECK (balance >= 0)` still
/// guards the row; any surprise fails the batch, which is then run one
/// create at a time.
async fn batch_in_one_tx(
    pool: &Pool<Sqlite>,
    batch: &[crate::batch::QueuedCreate],
) -> Result<Vec<Result<Task, CreateTaskError>>, CreateTaskError> {
    use std::collections::HashMap;
    let mut tx = pool.begin().await.map_err(StoreError::from)?;

    let mut balances: HashMap<&str, i64> = HashMap::new();
    {
        let mut q =
            sqlx::QueryBuilder::<Sqlite>::new("SELECT id, balance FROM accounts WHERE id IN (");
        let mut ids = q.separated(", ");
        let mut seen = std::collections::HashSet::new();
        for c in batch {
            if seen.insert(c.task.account_id.as_str()) {
                ids.push_bind(c.task.account_id.as_str());
            }
        }
        q.push(")");
        for row in q
            .build()
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from)?
        {
            let id: String = row.try_get("id").map_err(StoreError::from)?;
            let balance: i64 = row.try_get("balance").map_err(StoreError::from)?;
            if let Some(k) = seen.get(id.as_str()) {
                balances.insert(k, balance);
            }
        }
    }

    // The spend limits of the batch's keys that have one, with what each
    // key's tasks hold now (one writer: nothing changes them meanwhile).
    let mut limits: HashMap<&str, (gengate_core::spend::SpendLimit, Credits)> = HashMap::new();
    for c in batch {
        let Some(k) = &c.key else { continue };
        if limits.contains_key(k.as_str()) {
            continue;
        }
        if let Some(limit) = key_limit(&mut tx, k).await? {
            let spent = key_spent(&mut tx, k, limit.counts_after(c.task.now)).await?;
            limits.insert(k.as_str(), (limit, spent));
        }
    }

    // Who is covered, and each covered create's balance after its debit.
    let start = balances.clone();
    let mut outcome: Vec<Option<i64>> = Vec::with_capacity(batch.len());
    let mut results: Vec<Option<Result<Task, CreateTaskError>>> = Vec::with_capacity(batch.len());
    for c in batch {
        let price = c.task.price.get();
        if let Some((limit, spent)) = c.key.as_ref().and_then(|k| limits.get(k.as_str()))
            && !limit.admits(*spent, c.task.price)
        {
            outcome.push(None);
            results.push(Some(Err(CreateTaskError::SpendLimitExceeded {
                limit: *limit,
                spent: *spent,
                price: c.task.price,
            })));
            continue;
        }
        match balances.get_mut(c.task.account_id.as_str()) {
            Some(b) if *b >= price => {
                *b -= price;
                outcome.push(Some(*b));
                results.push(None);
                if let Some((_, spent)) = c.key.as_ref().and_then(|k| limits.get_mut(k.as_str())) {
                    *spent = Credits::new(spent.get() + price).unwrap_or(*spent);
                }
            }
            b => {
                let balance = credits(b.map_or(0, |b| *b), "balance")?;
                outcome.push(None);
                results.push(Some(Err(CreateTaskError::InsufficientCredits {
                    balance,
                    price: c.task.price,
                })));
            }
        }
    }
    let covered: Vec<(&crate::batch::QueuedCreate, i64)> = batch
        .iter()
        .zip(&outcome)
        .filter_map(|(c, o)| o.map(|after| (c, after)))
        .collect();
    if covered.is_empty() {
        // Every create was refused: nothing to write.
        return Ok(collect(batch, results));
    }

    for (account, before) in &start {
        let after = balances[account];
        if after == *before {
            continue;
        }
        let debited: Option<i64> = sqlx::query_scalar(
            "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 RETURNING balance",
        )
        .bind(before - after)
        .bind(*account)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if debited != Some(after) {
            return Err(StoreError::Internal(format!(
                "batch debit of {account} left {debited:?}, expected {after}"
            ))
            .into());
        }
    }

    let mut q = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT INTO tasks (id, account_id, model, status, prompt, params, reference_files, reserved_credits, final_credits, \
         client_request_id, result, error, provider, upstream, created_at, updated_at, deadline_at, price_version, api_key_id) ",
    );
    q.push_values(&covered, |mut b, (c, _)| {
        let t = &c.task;
        b.push_bind(t.id.as_str())
            .push_bind(t.account_id.as_str())
            .push_bind(t.model.as_str())
            .push("'queued'")
            .push_bind(t.prompt.as_str())
            .push_bind(json_text(&t.params))
            .push_bind(json_text(&t.references))
            .push_bind(t.price.get())
            .push("0")
            .push_bind(t.client_request_id.as_ref().map(|c| c.as_str().to_owned()))
            .push("NULL")
            .push("NULL")
            .push_bind(t.provider.as_str())
            .push("NULL")
            .push_bind(t.now.as_millis())
            .push_bind(t.now.as_millis())
            .push_bind(t.deadline_at.as_millis())
            .push_bind(t.price_version.as_deref())
            .push_bind(c.key.as_ref().map(|k| k.as_str().to_owned()));
    });
    // No RETURNING: each row would be one more hand-off from the writer's
    // thread, and the stored task is known (`NewTask::as_queued`).
    q.build()
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;

    let mut q = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT INTO jobs (task_id, provider, run_at, lease_owner, lease_until, attempts, created_at) ",
    );
    q.push_values(&covered, |mut b, (c, _)| {
        b.push_bind(c.task.id.as_str())
            .push_bind(c.task.provider.as_str())
            .push_bind(c.task.now.as_millis())
            .push("NULL")
            .push("NULL")
            .push("0")
            .push_bind(c.task.now.as_millis());
    });
    q.build()
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;

    let mut q = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT INTO ledger_entries (account_id, kind, amount, balance_after, task_id, reason, created_at) ",
    );
    q.push_values(&covered, |mut b, (c, after)| {
        let t = &c.task;
        b.push_bind(t.account_id.as_str())
            .push("'reserve'")
            .push_bind(-t.price.get())
            .push_bind(*after)
            .push_bind(t.id.as_str())
            .push_bind(format!("reserve for {} ({})", t.id, t.model))
            .push_bind(t.now.as_millis());
    });
    q.build()
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;

    for (c, _) in &covered {
        if let Some(idem) = &c.idem {
            complete_idem(&mut tx, idem).await?;
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(collect(batch, results))
}

/// The batch's answers in its order: refusals as decided, the rest the
/// stored tasks.
fn collect(
    batch: &[crate::batch::QueuedCreate],
    results: Vec<Option<Result<Task, CreateTaskError>>>,
) -> Vec<Result<Task, CreateTaskError>> {
    batch
        .iter()
        .zip(results)
        .map(|(c, r)| r.unwrap_or_else(|| Ok(c.task.as_queued())))
        .collect()
}

crate::operator_engine::impl_operator_store!(SqliteStore, Sqlite);
