//! SQLite point reads on the calling thread.
//!
//! sqlx runs every SQLite connection on a thread of its own and hands each
//! statement and row across channels, so a one-row read by primary key costs
//! several thread switches — on a busy core, more than the read itself
//! (docs/BENCHMARKS.md, "Round two"). A task's status read is the hottest
//! query the API has, so it goes through here instead: a small pool of
//! read-only connections (rusqlite, on the same libsqlite3 as sqlx) used
//! synchronously by whichever thread asks.
//!
//! Why running SQLite on an async worker thread is acceptable here: in WAL
//! mode a reader never waits for the writer, and these connections have no
//! busy handler, so a statement either runs at once (an index lookup and a
//! few pages, microseconds) or fails with SQLITE_BUSY — then the caller falls
//! back to sqlx's pool, which waits on its own thread. Any other error does
//! the same, so this path can make a read faster but never changes its answer.

use crate::engine::{
    ACCOUNT_BY_ID_SQL, AccountColumns, TASK_OF_ACCOUNT_SQL, TASK_STATUS_SQL, TaskColumns,
};
use crate::{Account, StoreResult};
use gengate_core::generation::Task;
use gengate_core::ids::{AccountId, TaskId};
use rusqlite::{Connection, OpenFlags, Params, Row};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) struct PointReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl PointReader {
    /// A reader for the database file at `path`; `None` when there is no
    /// file to open beside sqlx (an in-memory database).
    pub(crate) fn for_file(path: &Path) -> Option<Self> {
        if !path.is_file() {
            return None;
        }
        // As many as threads can read at once: the runtime's workers (one
        // per core) and a few blocking threads.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Some(Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            max_idle: cores + 4,
        })
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A point read needs an index path and a row: a small page cache.
        conn.pragma_update(None, "cache_size", -2000)?;
        Ok(conn)
    }

    /// The first row of `sql`, mapped, on an idle connection (or a new one,
    /// which joins the pool unless the read failed). `None` when this path
    /// could not answer (busy, I/O, anything): the caller asks sqlx instead.
    fn first_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Option<T>> {
        let read = (|| {
            let taken = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let conn = match taken {
                Some(c) => c,
                None => self.open()?,
            };
            let out = {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(params)?;
                rows.next()?.map(map).transpose()
            };
            if out.is_ok()
                && let Ok(mut idle) = self.idle.lock()
                && idle.len() < self.max_idle
            {
                idle.push(conn);
            }
            out
        })();
        match read {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(error = %e, "SQLite point read failed; reading through the pool");
                None
            }
        }
    }

    /// A task of `account` (status GET).
    pub(crate) fn task(
        &self,
        account: &AccountId,
        id: &TaskId,
    ) -> Option<StoreResult<Option<Task>>> {
        let cols = self.first_row(&TASK_OF_ACCOUNT_SQL, [id.as_str(), account.as_str()], |r| {
            Ok(TaskColumns {
                id: r.get(0)?,
                account_id: r.get(1)?,
                model: r.get(2)?,
                status: r.get(3)?,
                prompt: r.get(4)?,
                params: r.get(5)?,
                reference_files: r.get(6)?,
                reserved_credits: r.get(7)?,
                final_credits: r.get(8)?,
                client_request_id: r.get(9)?,
                result: r.get(10)?,
                error: r.get(11)?,
                created_at: r.get(12)?,
                updated_at: r.get(13)?,
                deadline_at: r.get(14)?,
            })
        })?;
        Some(cols.map(TaskColumns::into_task).transpose())
    }

    /// A task's status and `updated_at` (what a waking long poll checks).
    pub(crate) fn task_status(&self, id: &TaskId) -> Option<Option<(String, i64)>> {
        self.first_row(TASK_STATUS_SQL, [id.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    /// An account (a create reads its sandbox flag).
    pub(crate) fn account(&self, id: &AccountId) -> Option<StoreResult<Option<Account>>> {
        let cols = self.first_row(&ACCOUNT_BY_ID_SQL, [id.as_str()], |r| {
            Ok(AccountColumns {
                id: r.get(0)?,
                name: r.get(1)?,
                balance: r.get(2)?,
                created_at: r.get(3)?,
                sandbox: r.get(4)?,
                suspended: r.get(5)?,
                price_adjustment: r.get(6)?,
                low_balance_threshold: r.get(7)?,
            })
        })?;
        Some(cols.map(AccountColumns::into_account).transpose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectOptions, NewTask, Store};
    use gengate_core::credits::LedgerKind;
    use gengate_core::generation::{Prompt, TaskStatus};
    use gengate_core::params::NormalizedParams;
    use gengate_core::{Credits, Timestamp};

    #[tokio::test]
    async fn sees_each_commit_at_once_and_answers_as_the_pool_does() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::testing::fresh_sqlite_url(dir.path());
        let store = crate::sqlite::SqliteStore::connect(&url, &ConnectOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // The same database read the other way: sqlx's pool only.
        let mut pooled = crate::sqlite::SqliteStore::connect(&url, &ConnectOptions::default())
            .await
            .unwrap();
        pooled.point = None;
        let point = store
            .point
            .as_ref()
            .expect("a file database has a point reader");
        let now = Timestamp::from_millis(1_000);
        let a = store.create_account("a", now).await.unwrap();
        store
            .change_credits(&a.id, LedgerKind::Grant, 900, "grant", now)
            .await
            .unwrap();
        for n in 0..5 {
            let t = NewTask {
                id: TaskId::generate(),
                account_id: a.id.clone(),
                model: "kling-3-0".into(),
                prompt: Prompt::from_stored(format!("a cat — ک 🎬 {n}")),
                params: NormalizedParams::from_stored(serde_json::json!({"duration": "5"})),
                references: vec![],
                price: Credits::new(90).unwrap(),
                price_version: None,
                client_request_id: Some(gengate_core::generation::ClientRequestId::from_stored(
                    format!("c{n}"),
                )),
                provider: "sandbox".into(),
                now,
                deadline_at: now.plus(std::time::Duration::from_secs(60)),
            };
            let made = store.create_task(&t, None).await.unwrap();
            // Right after the writer's commit, on this thread.
            let read = point
                .task(&a.id, &t.id)
                .expect("answered")
                .unwrap()
                .expect("found");
            assert_eq!(read, made);
            assert_eq!(
                Some(read.clone()),
                pooled.get_task(&a.id, &t.id).await.unwrap()
            );
            assert_eq!(
                point.task_status(&t.id),
                Some(Some(("queued".to_owned(), now.as_millis())))
            );
            // Another account's task is not found (not an error).
            let other = AccountId::generate();
            assert!(matches!(point.task(&other, &t.id), Some(Ok(None))));
            assert_eq!(read.status, TaskStatus::Queued);
        }
        assert_eq!(point.task_status(&TaskId::generate()), Some(None));
        let acct = point
            .account(&a.id)
            .expect("answered")
            .unwrap()
            .expect("found");
        assert_eq!(Some(acct.clone()), pooled.get_account(&a.id).await.unwrap());
        assert_eq!(acct.balance.get(), 900 - 5 * 90);
        assert!(matches!(
            point.account(&AccountId::generate()),
            Some(Ok(None))
        ));
    }

    #[test]
    fn a_file_it_cannot_read_means_no_answer_so_the_caller_asks_sqlx() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-gengate.db");
        std::fs::write(&path, b"this is not a database").unwrap();
        let point = PointReader::for_file(&path).unwrap();
        assert!(
            point
                .task(&AccountId::generate(), &TaskId::generate())
                .is_none()
        );
        assert!(point.task_status(&TaskId::generate()).is_none());
        assert!(point.account(&AccountId::generate()).is_none());
    }

    #[test]
    fn no_reader_without_a_file() {
        assert!(PointReader::for_file(Path::new("file:sqlx-in-memory-1")).is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(PointReader::for_file(&dir.path().join("missing.db")).is_none());
    }
}
