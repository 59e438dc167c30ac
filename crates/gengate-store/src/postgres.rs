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

impl PgStore {
    /// Group-committed (`batch`): creates of one account queue on its row
    /// lock, which is held through the commit's WAL flush; a batch pays that
    /// once.
    async fn create_task_impl(
        &self,
        t: &NewTask,
        idem: Option<&IdemCompletion>,
    ) -> Result<Task, CreateTaskError> {
        create_batched(&self.writer, &self.creates, t, idem).await
    }
}
