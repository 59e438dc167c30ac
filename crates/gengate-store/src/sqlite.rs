//! SQLite: one writer connection (SQLite admits one writer at a time; a
//! single connection queues writers in the pool instead of failing them with
//! SQLITE_BUSY) and a pool of WAL readers that never block on it.

use crate::{ConnectOptions, StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

pub struct SqliteStore {
    pub(crate) writer: Pool<Sqlite>,
    pub(crate) reader: Pool<Sqlite>,
    creates: Arc<CreateQueue>,
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

// --- Group commit for creates ---
//
// With one writer, creates run one transaction after another, and each
// transaction's fixed cost (BEGIN, COMMIT, writing the touched pages to the
// WAL) dominates. Creates that arrive while the writer is busy are queued
// and the next batch runs them all in one transaction, so under load that
// cost is paid once per batch. Every create still gets its own answer; a
// batch is all-or-nothing, and when any create in it fails for a reason
// other than a refused debit (which writes nothing), the whole transaction
// is rolled back and each create runs again alone, so one bad create never
// takes others with it.

/// Creates per transaction, at most.
const MAX_BATCH: usize = 64;

type CreateReply = tokio::sync::oneshot::Sender<Result<Task, CreateTaskError>>;

struct QueuedCreate {
    task: NewTask,
    idem: Option<IdemCompletion>,
    reply: CreateReply,
}

#[derive(Default)]
struct CreateQueue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    waiting: Vec<QueuedCreate>,
    /// A drain task is running and will see anything pushed.
    draining: bool,
}

impl CreateQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Every mutation is a push, a drain or a flag write: a panic cannot
        // leave the state half-changed, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Resets the queue if the drain task dies (panic, runtime shutdown) so the
/// next create starts a new one; the creates it held get an error.
struct DrainGuard {
    queue: Arc<CreateQueue>,
    finished: bool,
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if !self.finished {
            let mut st = self.queue.lock();
            st.draining = false;
            st.waiting.clear();
        }
    }
}

impl SqliteStore {
    async fn create_task_impl(
        &self,
        t: &NewTask,
        idem: Option<&IdemCompletion>,
    ) -> Result<Task, CreateTaskError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut st = self.creates.lock();
            st.waiting.push(QueuedCreate {
                task: t.clone(),
                idem: idem.cloned(),
                reply,
            });
            !std::mem::replace(&mut st.draining, true)
        };
        if start {
            // A task of its own, so a caller that goes away (a client that
            // hangs up) cannot cancel a batch that holds other callers' work.
            tokio::spawn(drain(self.writer.clone(), self.creates.clone()));
        }
        answer.await.map_err(|_| {
            CreateTaskError::Store(StoreError::Internal(
                "the create was dropped before it ran".into(),
            ))
        })?
    }
}

async fn drain(writer: Pool<Sqlite>, queue: Arc<CreateQueue>) {
    let mut guard = DrainGuard {
        queue,
        finished: false,
    };
    loop {
        let batch: Vec<QueuedCreate> = {
            let mut st = guard.queue.lock();
            if st.waiting.is_empty() {
                st.draining = false;
                guard.finished = true;
                return;
            }
            let n = st.waiting.len().min(MAX_BATCH);
            st.waiting.drain(..n).collect()
        };
        run_batch(&writer, batch).await;
    }
}

async fn run_batch(writer: &Pool<Sqlite>, batch: Vec<QueuedCreate>) {
    if batch.len() > 1 {
        match batch_in_one_tx(writer, &batch).await {
            Ok(results) => {
                for (q, r) in batch.into_iter().zip(results) {
                    let _ = q.reply.send(r);
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, size = batch.len(), "create batch rolled back; running each alone");
            }
        }
    }
    for q in batch {
        let r = create_alone(writer, &q.task, q.idem.as_ref(), true).await;
        let _ = q.reply.send(r);
    }
}

/// Every create of `batch` in one transaction, committed; or an error after
/// which nothing of the batch was kept.
async fn batch_in_one_tx(
    writer: &Pool<Sqlite>,
    batch: &[QueuedCreate],
) -> Result<Vec<Result<Task, CreateTaskError>>, CreateTaskError> {
    let mut tx = writer.begin().await.map_err(StoreError::from)?;
    let mut results = Vec::with_capacity(batch.len());
    for q in batch {
        match create_rows(&mut tx, &q.task, q.idem.as_ref(), true).await {
            // Debit first: a refused debit has written nothing to undo.
            Err(e @ CreateTaskError::InsufficientCredits { .. }) => results.push(Err(e)),
            Err(e) => return Err(e),
            Ok(task) => results.push(Ok(task)),
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(results)
}
