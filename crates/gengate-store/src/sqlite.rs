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
            .connect_with(base.read_only(true))
            .await
            .map_err(StoreError::from)?;
        Ok(Self {
            writer,
            reader,
            creates: Arc::default(),
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

impl SqliteStore {
    /// Group-committed (`batch`): with one writer, a transaction's fixed
    /// cost (BEGIN, COMMIT, the touched pages written to the WAL) is what
    /// bounds creates, so it is paid once per batch.
    async fn create_task_impl(
        &self,
        t: &NewTask,
        idem: Option<&IdemCompletion>,
    ) -> Result<Task, CreateTaskError> {
        create_batched(&self.writer, &self.creates, t, idem).await
    }
}
