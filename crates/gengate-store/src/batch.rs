//! Group commit for creates, the engine-neutral half: the queue that
//! collects creates arriving together. The other half (running a batch in
//! one transaction) is SQL and lives in `engine.rs`.
//!
//! Creates that arrive while a batch is running wait here, and the next
//! batch runs them all in one transaction, so under load a transaction's
//! fixed cost (BEGIN, COMMIT, the WAL flush; on PostgreSQL also the
//! account's row lock held through the commit) is paid once per batch
//! instead of once per create. Every create still gets its own answer. A
//! batch is all-or-nothing: when any create in it fails for a reason other
//! than a refused debit (which writes nothing), the whole transaction is
//! rolled back and each create runs again alone, so a create only ever fails
//! for its own reason.

use crate::{CreateTaskError, IdemCompletion, NewTask};
use gengate_core::generation::Task;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Creates per transaction, at most.
pub(crate) const MAX_BATCH: usize = 64;

pub(crate) type CreateReply = tokio::sync::oneshot::Sender<Result<Task, CreateTaskError>>;

pub(crate) struct QueuedCreate {
    pub task: NewTask,
    /// The API key it is created with, for its spend limit.
    pub key: Option<gengate_core::ids::ApiKeyId>,
    pub idem: Option<IdemCompletion>,
    pub reply: CreateReply,
}

#[derive(Default)]
pub(crate) struct CreateQueue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    waiting: Vec<QueuedCreate>,
    /// A drain task is running and will see anything pushed.
    draining: bool,
}

impl CreateQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every mutation is a push, a drain or a flag write: a panic cannot
        // leave the state half-changed, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a create; true when the caller must start a drain task.
    pub fn push(&self, q: QueuedCreate) -> bool {
        let mut st = self.lock();
        st.waiting.push(q);
        !std::mem::replace(&mut st.draining, true)
    }
}

/// The drain task's hold on the queue. If the task dies (a panic, a runtime
/// shutting down) the queue is reset so the next create starts a new one,
/// and the creates it held get an error instead of waiting forever.
pub(crate) struct Drain {
    queue: Arc<CreateQueue>,
    finished: bool,
}

impl Drain {
    pub fn new(queue: Arc<CreateQueue>) -> Self {
        Self {
            queue,
            finished: false,
        }
    }

    /// The next batch, oldest first, sorted by account so that concurrent
    /// batches (other nodes) take account row locks in one order and never
    /// deadlock; `None` (and the drain is over) when nothing waits.
    pub fn next_batch(&mut self) -> Option<Vec<QueuedCreate>> {
        let mut st = self.queue.lock();
        if st.waiting.is_empty() {
            st.draining = false;
            self.finished = true;
            return None;
        }
        let n = st.waiting.len().min(MAX_BATCH);
        let mut batch: Vec<QueuedCreate> = st.waiting.drain(..n).collect();
        batch.sort_by(|a, b| a.task.account_id.as_str().cmp(b.task.account_id.as_str()));
        Some(batch)
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if !self.finished {
            let mut st = self.queue.lock();
            st.draining = false;
            st.waiting.clear();
        }
    }
}
