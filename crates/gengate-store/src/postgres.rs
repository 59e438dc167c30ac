//! PostgreSQL: one pool for reads and writes; workers lease jobs with
//! `FOR UPDATE SKIP LOCKED`, so any number of nodes share the queue without
//! waiting on each other's rows.

use crate::{ConnectOptions, StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};
use std::str::FromStr;

pub struct PgStore {
    pub(crate) writer: Pool<Postgres>,
    pub(crate) reader: Pool<Postgres>,
    creates: std::sync::Arc<crate::batch::CreateQueue>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const LEASE_SQL: &str = "UPDATE jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
     WHERE task_id IN (SELECT task_id FROM jobs WHERE run_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
       AND (',' || $5 || ',') LIKE ('%,' || provider || ',%') ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING task_id, provider, attempts, lease_until";

impl PgStore {
    /// None: every read goes through the pool, as a PostgreSQL read is a
    /// round trip whichever thread makes it.
    fn point_reader(&self) -> Option<&crate::sqlite_read::PointReader> {
        None
    }

    pub async fn connect(url: &str, o: &ConnectOptions) -> StoreResult<Self> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(o.max_connections.max(2))
            .acquire_timeout(o.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(StoreError::from)?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            creates: Default::default(),
        })
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }
}

crate::engine::impl_store!(
    PgStore,
    Postgres,
    engine = Engine::Postgres,
    lease_sql = LEASE_SQL
);

/// Due webhook deliveries, taken for one dispatcher until the lease lapses.
const DELIVERY_LEASE_SQL: &str = "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
     WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
       AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING id, event_id, endpoint_id, attempts";

crate::webhook_engine::impl_webhook_store!(
    PgStore,
    Postgres,
    delivery_lease_sql = DELIVERY_LEASE_SQL
);

/// PostgreSQL: the writes of one create in one statement (data-modifying
/// CTEs), so a create costs one round trip plus one for its idempotency
/// record: the debit, and only when it took, the task, its job and the
/// ledger row. No row back means the debit was refused and nothing was
/// written. Foreign keys are checked at the end of the statement, when the
/// task row exists.
///
/// A key with a spend limit takes a second path (the debit itself refuses
/// to run for a limited key unless told the limit was checked): the
/// account's row is locked, then what the key holds is summed in a new
/// statement — whose snapshot, under READ COMMITTED, sees every create that
/// held that lock before — and only then is the debit run. Creates of one
/// account queue on its row lock, so no two can both pass the last room of
/// a limit, and lock order stays "account rows only", as before.
async fn create_rows(
    conn: &mut sqlx::PgConnection,
    t: &NewTask,
    key: Option<&ApiKeyId>,
    idem: Option<&IdemCompletion>,
) -> Result<Task, CreateTaskError> {
    let sql = format!(
        "WITH debit AS ( \
           UPDATE accounts SET balance = balance - $7 WHERE id = $2 AND balance >= $7 \
             AND ($15 OR NOT EXISTS (SELECT 1 FROM api_keys WHERE id = $14 AND spend_limit IS NOT NULL)) RETURNING balance \
         ), task AS ( \
           INSERT INTO tasks (id, account_id, model, status, prompt, params, reference_files, reserved_credits, final_credits, \
             client_request_id, result, error, provider, upstream, created_at, updated_at, deadline_at, price_version, api_key_id) \
           SELECT $1, $2, $3, 'queued', $4, $5, $6, $7, 0, $8, NULL, NULL, $9, NULL, $10, $10, $11, $12, $14 FROM debit \
           RETURNING {TASK_COLS} \
         ), job AS ( \
           INSERT INTO jobs (task_id, provider, run_at, lease_owner, lease_until, attempts, created_at) \
           SELECT id, $9, $10, NULL, NULL, 0, $10 FROM task \
         ), ledger AS ( \
           INSERT INTO ledger_entries (account_id, kind, amount, balance_after, task_id, reason, created_at) \
           SELECT $2, 'reserve', -$7, balance, $1, $13, $10 FROM debit \
         ) \
         SELECT {TASK_COLS} FROM task"
    );
    let mut limit_checked = false;
    let row = loop {
        let row = bind_new_task(sqlx::query(AssertSqlSafe(sql.as_str())), t)
            .bind(format!("reserve for {} ({})", t.id, t.model))
            .bind(key.map(|k| k.as_str().to_owned()))
            .bind(limit_checked)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::from)?;
        if let Some(row) = row {
            break row;
        }
        if !limit_checked
            && let Some(k) = key
            && let Some(limit) = key_limit(&mut *conn, k).await?
        {
            sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
                .bind(t.account_id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(StoreError::from)?;
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
    };
    let task = task_from_row(&row)?;
    if let Some(c) = idem {
        complete_idem(&mut *conn, c).await?;
    }
    Ok(task)
}

/// A batch one create (one statement) after another, in one transaction.
async fn batch_in_one_tx(
    pool: &Pool<Postgres>,
    batch: &[crate::batch::QueuedCreate],
) -> Result<Vec<Result<Task, CreateTaskError>>, CreateTaskError> {
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let mut results = Vec::with_capacity(batch.len());
    for q in batch {
        match create_rows(&mut tx, &q.task, q.key.as_ref(), q.idem.as_ref()).await {
            // A refused debit has written nothing to undo (a spend limit's
            // row lock is not a write).
            Err(
                e @ (CreateTaskError::InsufficientCredits { .. }
                | CreateTaskError::SpendLimitExceeded { .. }),
            ) => results.push(Err(e)),
            Err(e) => return Err(e),
            Ok(task) => results.push(Ok(task)),
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(results)
}

crate::operator_engine::impl_operator_store!(PgStore, Postgres);
