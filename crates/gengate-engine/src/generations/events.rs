//! Task change notifications for long polls. The runner in this process
//! notifies directly; changes made by other nodes reach waiters through the
//! change feed (`background::change_feed`), one store query per second for
//! all waiters together.

use dashmap::DashMap;
use gengate_core::ids::TaskId;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Default)]
pub struct TaskEvents {
    waiters: DashMap<TaskId, Arc<Notify>>,
    /// Poked on every change: the webhook dispatcher, so an event written
    /// with a terminal state goes out without waiting for its poll.
    listener: Option<Arc<Notify>>,
}

impl TaskEvents {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_listener(listener: Arc<Notify>) -> Self {
        Self {
            waiters: DashMap::new(),
            listener: Some(listener),
        }
    }

    /// A handle to wait on; drop it when done.
    pub fn subscribe(&self, id: &TaskId) -> Arc<Notify> {
        self.waiters
            .entry(id.clone())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    pub fn changed(&self, id: &TaskId) {
        if let Some(l) = &self.listener {
            l.notify_one();
        }
        if let Some(n) = self.waiters.get(id) {
            n.notify_waiters();
        }
        // Forget entries nobody holds any more.
        self.waiters.remove_if(id, |_, n| Arc::strong_count(n) == 1);
    }

    /// Wakes the waiters of these tasks (changes seen in the store, made by
    /// any node); they re-read their task and decide.
    pub fn changed_elsewhere<'a>(&self, ids: impl IntoIterator<Item = &'a TaskId>) {
        for id in ids {
            if let Some(n) = self.waiters.get(id) {
                n.notify_waiters();
            }
        }
    }

    /// Drops the entry once its last waiter is gone.
    pub fn unsubscribe(&self, id: &TaskId, handle: Arc<Notify>) {
        drop(handle);
        self.waiters.remove_if(id, |_, n| Arc::strong_count(n) == 1);
    }

    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }
}
