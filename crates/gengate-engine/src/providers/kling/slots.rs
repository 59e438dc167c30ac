//! The Kling account's concurrent task slots, as this process understands them.
//!
//! Kling counts a video task against the account from submit until it ends, and refuses
//! one more with 1303. Sending creates that will be refused wastes requests and rate
//! budget, so this keeps a local view: the tasks we have in flight, and a limit learned
//! from the 1303s (or configured). A task is only submitted when a slot is free here.
//!
//! The view is approximate by nature — other clients may use the account, and a restart
//! forgets it — so it corrects itself: polled tasks are counted again as they are seen,
//! a 1303 lowers the limit to what we hold, holding more than the limit (after a race or
//! a restart) raises it, and after a quiet period one more slot is probed. Entries that
//! nobody has touched for a long time (a task that ended by deadline, say) expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// After this long without a 1303, one more slot is tried.
const PROBE_AFTER: Duration = Duration::from_secs(60);
/// A slot nobody confirmed for this long is taken to be free. Polls refresh it, and they
/// come at most minutes apart.
const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Debug)]
struct State {
    /// Task id → when it was last reserved or seen running upstream.
    held: HashMap<String, Instant>,
    /// None: no limit known yet.
    limit: Option<usize>,
    /// A configured ceiling the learned limit never exceeds.
    max: Option<usize>,
    last_refusal: Option<Instant>,
}

#[derive(Debug)]
pub struct Slots {
    state: Mutex<State>,
}

/// Why a slot was not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub held: usize,
    pub limit: usize,
}

impl Slots {
    /// `max` = 0 means "learn it".
    pub fn new(max: usize) -> Self {
        let max = (max > 0).then_some(max);
        Self {
            state: Mutex::new(State {
                held: HashMap::new(),
                limit: max,
                max,
                last_refusal: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The map is plain bookkeeping; a panic elsewhere cannot leave it inconsistent in
        // a way worse than "one slot miscounted", which the self-correction absorbs.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves a slot for `task` before its create is sent. A task that already holds
    /// one keeps it.
    pub fn try_acquire(&self, task: &str) -> Result<(), Full> {
        let mut s = self.lock();
        let now = Instant::now();
        s.held
            .retain(|_, seen| now.duration_since(*seen) < STALE_AFTER);
        if let Some(seen) = s.held.get_mut(task) {
            *seen = now;
            return Ok(());
        }
        if let Some(limit) = s.limit
            && s.held.len() >= limit
        {
            let quiet = s
                .last_refusal
                .is_none_or(|t| now.duration_since(t) >= PROBE_AFTER);
            let below_max = s.max.is_none_or(|m| limit < m);
            if !(quiet && below_max) {
                return Err(Full {
                    held: s.held.len(),
                    limit,
                });
            }
            // Probe one more slot; a 1303 will take it back.
            s.limit = Some(limit + 1);
            s.last_refusal = Some(now);
            tracing::info!(limit = limit + 1, "kling: probing one more concurrent slot");
        }
        s.held.insert(task.to_owned(), now);
        Ok(())
    }

    /// Kling holds `task` (create answered, or a poll saw it running). Counted even past
    /// the limit: it is a fact, and the limit is raised to match.
    pub fn confirm(&self, task: &str) {
        let mut s = self.lock();
        s.held.insert(task.to_owned(), Instant::now());
        let held = s.held.len();
        if let Some(limit) = s.limit
            && held > limit
            && s.max.is_none_or(|m| held <= m)
        {
            s.limit = Some(held);
        }
    }

    /// The task ended at Kling, or was never created: its slot is free.
    pub fn release(&self, task: &str) {
        self.lock().held.remove(task);
    }

    /// Kling refused `task` with 1303: the account is full with what we hold (plus whatever
    /// others run on it). Returns the new limit.
    pub fn refused(&self, task: &str) -> usize {
        let mut s = self.lock();
        s.held.remove(task);
        let limit = s.held.len().max(1);
        let limit = s.max.map_or(limit, |m| limit.min(m));
        if s.limit != Some(limit) {
            tracing::warn!(limit, "kling: account concurrency limit learned from 1303");
        }
        s.limit = Some(limit);
        s.last_refusal = Some(Instant::now());
        limit
    }

    /// Slots `try_acquire` would give now (`usize::MAX` while no limit is known; at
    /// least one when a probe of one more slot is due).
    pub fn free(&self) -> usize {
        let mut s = self.lock();
        let now = Instant::now();
        s.held
            .retain(|_, seen| now.duration_since(*seen) < STALE_AFTER);
        let Some(limit) = s.limit else {
            return usize::MAX;
        };
        let free = limit.saturating_sub(s.held.len());
        let quiet = s
            .last_refusal
            .is_none_or(|t| now.duration_since(t) >= PROBE_AFTER);
        let below_max = s.max.is_none_or(|m| limit < m);
        if free == 0 && quiet && below_max {
            1
        } else {
            free
        }
    }

    /// Whether `task` holds one of these slots.
    pub fn holds(&self, task: &str) -> bool {
        self.lock().held.contains_key(task)
    }

    pub fn has_room(&self) -> bool {
        self.free() > 0
    }

    pub fn held(&self) -> usize {
        self.lock().held.len()
    }

    /// The configured ceiling (`max_in_flight`), if any.
    pub fn configured(&self) -> Option<usize> {
        self.lock().max
    }

    pub fn limit(&self) -> Option<usize> {
        self.lock().limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_limit_admits_until_a_refusal_teaches_it() {
        let s = Slots::new(0);
        for t in ["a", "b", "c"] {
            assert_eq!(s.try_acquire(t), Ok(()));
        }
        s.confirm("a");
        s.confirm("b");
        // "c" was refused: we hold two, so the account takes two.
        assert_eq!(s.refused("c"), 2);
        assert_eq!(s.try_acquire("c"), Err(Full { held: 2, limit: 2 }));
        // Re-acquiring a held slot is fine (a retried submit of the same task).
        assert_eq!(s.try_acquire("a"), Ok(()));
        s.release("a");
        assert_eq!(s.try_acquire("c"), Ok(()));
        assert_eq!(s.held(), 2);
    }

    #[test]
    fn racing_refusals_cannot_pin_the_limit_below_what_runs() {
        let s = Slots::new(0);
        for t in ["a", "b", "c", "d"] {
            s.try_acquire(t).expect("no limit yet");
        }
        // "c" and "d" are refused before "b"'s create answer is stored.
        s.confirm("a");
        s.refused("c");
        s.refused("d");
        assert_eq!(s.limit(), Some(2), "a and b are still held");
        s.release("b");
        assert_eq!(s.refused("x"), 1);
        s.confirm("b");
        assert_eq!(s.limit(), Some(2), "seeing two running raises it back");
    }

    #[test]
    fn a_configured_maximum_is_never_exceeded() {
        let s = Slots::new(1);
        assert_eq!(s.try_acquire("a"), Ok(()));
        assert_eq!(s.try_acquire("b"), Err(Full { held: 1, limit: 1 }));
        s.confirm("z");
        assert_eq!(s.limit(), Some(1));
    }
}
