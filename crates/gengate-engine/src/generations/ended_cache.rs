//! Ended tasks kept in process, so a status GET of a task that has ended
//! costs no store query.
//!
//! It is safe without any invalidation because an ended task never changes:
//! every store write to a task is guarded by `status IN ('queued',
//! 'processing')` (engine.rs), and tasks are never deleted. What does change
//! per request — the signed media links, which carry an expiry — is not here:
//! the cache holds the stored task, and the handler signs links from it on
//! every request, as for a task read from the store. Entries are keyed by
//! account and task, so a lookup can only return what the same account's
//! store query would have returned.

use gengate_core::generation::Task;
use gengate_core::ids::{AccountId, TaskId};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

type Key = (AccountId, TaskId);

pub struct TerminalTasks {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Arc<Task>>,
    /// Insertion order, for eviction: the oldest ended tasks are the least
    /// likely to be asked about again, and a FIFO costs no bookkeeping on a hit.
    order: VecDeque<Key>,
}

impl TerminalTasks {
    /// `capacity` zero turns the cache off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn get(&self, account: &AccountId, id: &TaskId) -> Option<Arc<Task>> {
        if self.capacity == 0 {
            return None;
        }
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // A tuple key cannot be looked up by a pair of references; the ids
        // are short strings.
        inner.entries.get(&(account.clone(), id.clone())).cloned()
    }

    /// Keeps `task` if it has ended; anything else is ignored (a running task
    /// may change at any moment, so it is always read from the store).
    pub fn offer(&self, account: &AccountId, task: &Arc<Task>) {
        if self.capacity == 0 || !task.status.is_terminal() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (account.clone(), task.id.clone());
        if inner.entries.contains_key(&key) {
            return;
        }
        while inner.entries.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.entries.remove(&old);
                }
                None => break,
            }
        }
        inner.order.push_back(key.clone());
        inner.entries.insert(key, Arc::clone(task));
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gengate_core::catalog::Catalog;
    use gengate_core::generation::{TaskStatus, parse_create_request};

    fn task(account: &AccountId, status: TaskStatus) -> Arc<Task> {
        let catalog = Catalog::builtin().expect("builtin catalog");
        let req = parse_create_request(
            &catalog,
            &serde_json::json!({"model": "kling-3-0", "prompt": "a lighthouse"}),
        )
        .expect("valid request");
        let now = gengate_core::Timestamp::from_millis(1_700_000_000_000);
        Arc::new(Task {
            id: TaskId::generate(),
            account_id: account.clone(),
            model: req.model.id.clone(),
            status,
            prompt: req.prompt,
            params: req.params,
            references: vec![],
            reserved_credits: gengate_core::Credits::ZERO,
            final_credits: gengate_core::Credits::ZERO,
            client_request_id: None,
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
            deadline_at: now,
        })
    }

    #[test]
    fn only_ended_tasks_are_kept_and_only_for_their_account() {
        let cache = TerminalTasks::new(10);
        let (a, b) = (AccountId::generate(), AccountId::generate());
        for status in [TaskStatus::Queued, TaskStatus::Processing] {
            let t = task(&a, status);
            cache.offer(&a, &t);
            assert!(
                cache.get(&a, &t.id).is_none(),
                "{status:?} must not be kept"
            );
        }
        let ended = task(&a, TaskStatus::Succeeded);
        cache.offer(&a, &ended);
        assert_eq!(cache.get(&a, &ended.id).as_deref(), Some(&*ended));
        assert!(
            cache.get(&b, &ended.id).is_none(),
            "another account's lookup"
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_oldest_entry_leaves_first_and_capacity_zero_keeps_nothing() {
        let cache = TerminalTasks::new(2);
        let a = AccountId::generate();
        let ts: Vec<Arc<Task>> = (0..3).map(|_| task(&a, TaskStatus::Failed)).collect();
        for t in &ts {
            cache.offer(&a, t);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&a, &ts[0].id).is_none());
        assert!(cache.get(&a, &ts[1].id).is_some());
        assert!(cache.get(&a, &ts[2].id).is_some());

        let off = TerminalTasks::new(0);
        off.offer(&a, &ts[0]);
        assert!(off.is_empty());
        assert!(off.get(&a, &ts[0].id).is_none());
    }
}
