//! The Kling accounts of this node (issue 14): which one a new task goes to.
//!
//! A task is sent to an account in rotation with a free slot, chosen by smooth weighted
//! round-robin among those that have room (so `weight` is each account's share of new
//! tasks while several can take them). When none has room the task stays queued, and the
//! waiting tasks are served oldest first: a task may only take a slot when there are more
//! free slots than older tasks waiting for one (`Line`).
//!
//! An account that is out of rotation for balance or model access gets one real create as
//! its probe once its back-off has passed (see `account_health.rs`): the next task that
//! needs an account is sent there, whatever the weights.

use super::account_health::{AccountHealth, Cause};
use super::slots::Slots;
use gengate_kling::KlingClient;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The name of the account made from the single-account flags.
pub const DEFAULT_ACCOUNT: &str = "default";

pub struct Account {
    pub name: String,
    pub client: KlingClient,
    pub slots: Slots,
    pub health: AccountHealth,
    pub weight: u32,
    submits: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Account {
    pub fn new(
        name: String,
        client: KlingClient,
        max_in_flight: usize,
        weight: u32,
        first_probe: Duration,
    ) -> Self {
        Self {
            name,
            client,
            slots: Slots::new(max_in_flight),
            health: AccountHealth::new(first_probe),
            weight: weight.max(1),
            submits: AtomicU64::new(0),
            failures: Mutex::new(BTreeMap::new()),
        }
    }

    /// A create is about to leave for this account.
    pub fn count_submit(&self) {
        self.submits.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("gengate_kling_account_submits_total", "account" => self.name.clone())
            .increment(1);
    }

    /// A call to this account failed, by Kling's error class.
    pub fn count_failure(&self, class: &str) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(class.to_owned())
            .or_default() += 1;
        metrics::counter!("gengate_kling_account_failures_total", "account" => self.name.clone(), "class" => class.to_owned())
            .increment(1);
    }

    pub fn submits(&self) -> u64 {
        self.submits.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refreshes this account's gauges (in flight, slots, health).
    pub fn publish(&self) {
        let name = self.name.clone();
        metrics::gauge!("gengate_kling_account_in_flight", "account" => name.clone())
            .set(self.slots.held() as f64);
        // 0 while the limit is still unknown (to be learned from 1303).
        metrics::gauge!("gengate_kling_account_slots", "account" => name.clone())
            .set(self.slots.limit().unwrap_or(0) as f64);
        let out = self.health.out();
        metrics::gauge!("gengate_kling_account_healthy", "account" => name.clone())
            .set(if out.is_none() { 1.0 } else { 0.0 });
        for cause in [Cause::Credentials, Cause::Account, Cause::NoAccess] {
            metrics::gauge!("gengate_kling_account_out", "account" => name.clone(), "cause" => cause.as_str())
                .set(if out.as_ref().is_some_and(|o| o.cause == cause) { 1.0 } else { 0.0 });
        }
    }
}

/// What `Pool::pick` decided for a task that needs an account.
pub enum Pick<'a> {
    /// Send the create here (a slot is reserved). `probe`: this create is the account's
    /// probe while it is out of rotation.
    Send { account: &'a Account, probe: bool },
    /// Every account in rotation is full (or older tasks wait for the free slots).
    Wait { reason: String },
    /// No account is in rotation.
    NoneInRotation,
}

pub struct Pool {
    accounts: Vec<Account>,
    /// Smooth weighted round-robin: each account's current weight.
    current: Mutex<Vec<i64>>,
    line: Line,
}

impl Pool {
    /// `accounts` must not be empty; the first one also answers for task states saved
    /// before accounts were recorded (a single-account deployment upgraded).
    pub fn new(accounts: Vec<Account>, line_stale_after: Duration) -> Self {
        let n = accounts.len();
        Self {
            accounts,
            current: Mutex::new(vec![0; n]),
            line: Line::new(line_stale_after),
        }
    }

    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// How many accounts (never zero: `wire` makes at least one).
    pub fn count(&self) -> usize {
        self.accounts.len()
    }

    /// The account a saved task state names (`None`: saved before accounts were
    /// recorded, i.e. the first one). None if no such account is configured.
    pub fn get(&self, name: Option<&str>) -> Option<&Account> {
        match name {
            None => self.accounts.first(),
            Some(n) => self.accounts.iter().find(|a| a.name == n),
        }
    }

    pub fn any_in_rotation(&self) -> bool {
        self.accounts.iter().any(|a| a.health.accepts_creates())
    }

    /// An out-of-rotation account waits for a create to probe it.
    pub fn create_probe_due(&self, now_ms: i64) -> bool {
        self.accounts
            .iter()
            .any(|a| a.health.probe_due(now_ms, true))
    }

    /// Chooses the account for `task` (queued at `queued_at_ms`), reserving a slot there.
    /// `stay_at`: the account an earlier create of this task went to, which a lookup
    /// found empty. While it is in rotation the task is sent there again and nowhere
    /// else: should that earlier create still land late, the account refuses the second
    /// one as a duplicate `external_task_id` — another account could not know.
    pub fn pick(
        &self,
        task: &str,
        queued_at_ms: i64,
        now_ms: i64,
        stay_at: Option<&str>,
    ) -> Pick<'_> {
        if let Some(a) = stay_at
            .and_then(|n| self.get(Some(n)))
            .filter(|a| a.health.accepts_creates())
        {
            if a.slots.try_acquire(task).is_ok() {
                self.line.leave(task);
                return Pick::Send {
                    account: a,
                    probe: false,
                };
            }
            return Pick::Wait {
                reason: format!(
                    "waiting for a slot at kling account {}, where an earlier create of this task went",
                    a.name
                ),
            };
        }
        // A due create probe goes first: it is one request per back-off period.
        for a in &self.accounts {
            if a.health.begin_probe(now_ms, true) {
                if a.slots.try_acquire(task).is_ok() {
                    self.line.leave(task);
                    return Pick::Send {
                        account: a,
                        probe: true,
                    };
                }
                a.health.cancel_probe();
            }
        }
        let in_rotation: Vec<usize> = (0..self.accounts.len())
            .filter(|&i| self.accounts[i].health.accepts_creates())
            .collect();
        // A task that already holds a slot (its earlier create made nothing) keeps it.
        if let Some(&i) = in_rotation
            .iter()
            .find(|&&i| self.accounts[i].slots.holds(task))
        {
            self.line.leave(task);
            return Pick::Send {
                account: &self.accounts[i],
                probe: false,
            };
        }
        if in_rotation.is_empty() {
            return Pick::NoneInRotation;
        }
        let free: usize = in_rotation
            .iter()
            .map(|&i| self.accounts[i].slots.free())
            .fold(0usize, usize::saturating_add);
        let older = self.line.older_than(task, queued_at_ms);
        if older >= free {
            return Pick::Wait {
                reason: if free == 0 {
                    "every kling account in rotation is at its concurrency limit".into()
                } else {
                    format!("{older} older tasks wait for the {free} free kling slots")
                },
            };
        }
        let mut candidates: Vec<usize> = in_rotation
            .into_iter()
            .filter(|&i| self.accounts[i].slots.has_room())
            .collect();
        while !candidates.is_empty() {
            let i = self.next_weighted(&candidates);
            let a = &self.accounts[i];
            if a.slots.try_acquire(task).is_ok() {
                self.line.leave(task);
                return Pick::Send {
                    account: a,
                    probe: false,
                };
            }
            candidates.retain(|&c| c != i);
        }
        Pick::Wait {
            reason: "every kling account in rotation is at its concurrency limit".into(),
        }
    }

    /// Smooth weighted round-robin among `candidates` (nginx's): every candidate gains
    /// its weight, the largest wins and pays back the total.
    fn next_weighted(&self, candidates: &[usize]) -> usize {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let total: i64 = candidates
            .iter()
            .map(|&i| i64::from(self.accounts[i].weight))
            .sum();
        let mut best = candidates[0];
        for &i in candidates {
            cur[i] += i64::from(self.accounts[i].weight);
            if cur[i] > cur[best] {
                best = i;
            }
        }
        cur[best] -= total;
        best
    }

    /// The task got no account this time: it keeps its place in the line.
    pub fn wait_in_line(&self, task: &str, queued_at_ms: i64) {
        self.line.join(task, queued_at_ms);
    }

    /// The task no longer needs an account (it ended, or failed before).
    pub fn leave_line(&self, task: &str) {
        self.line.leave(task);
    }
}

/// The tasks waiting for a slot, oldest first. A task that has not looked again for
/// `stale_after` (it ended, was cancelled, or another node took it) loses its place.
struct Line {
    stale_after: Duration,
    waiting: Mutex<HashMap<String, (i64, Instant)>>,
}

impl Line {
    fn new(stale_after: Duration) -> Self {
        Self {
            stale_after,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    fn join(&self, task: &str, queued_at_ms: i64) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.to_owned(), (queued_at_ms, Instant::now()));
    }

    fn leave(&self, task: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(task);
    }

    /// Tasks waiting that were queued before `task` (ties broken by id).
    fn older_than(&self, task: &str, queued_at_ms: i64) -> usize {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let stale = self.stale_after;
        w.retain(|_, (_, seen)| seen.elapsed() < stale);
        w.iter()
            .filter(|(id, (at, _))| (*at, id.as_str()) < (queued_at_ms, task))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, max: usize, weight: u32) -> Account {
        let client = KlingClient::new(
            url::Url::parse("http://127.0.0.1:1/").expect("url"),
            gengate_kling::KlingCredentials::new("a", "s"),
            std::sync::Arc::new(gengate_transport::Offline),
        );
        Account::new(
            name.into(),
            client,
            max,
            weight,
            Duration::from_millis(1000),
        )
    }

    fn sent<'a>(p: Pick<'a>) -> Option<(&'a str, bool)> {
        match p {
            Pick::Send { account, probe } => Some((account.name.as_str(), probe)),
            _ => None,
        }
    }

    #[test]
    fn weights_share_new_tasks_among_accounts_with_room() {
        let pool = Pool::new(
            vec![account("a", 100, 3), account("b", 100, 1)],
            Duration::from_secs(10),
        );
        let mut got = HashMap::new();
        for i in 0..40 {
            let (name, _) = sent(pool.pick(&format!("t{i}"), i, 0, None)).expect("room");
            *got.entry(name.to_owned()).or_insert(0) += 1;
        }
        assert_eq!(got["a"], 30);
        assert_eq!(got["b"], 10);
    }

    #[test]
    fn full_accounts_are_skipped_and_all_full_waits() {
        let pool = Pool::new(
            vec![account("a", 1, 1), account("b", 2, 1)],
            Duration::from_secs(10),
        );
        let picks: Vec<_> = (0..3)
            .map(|i| {
                sent(pool.pick(&format!("t{i}"), i, 0, None))
                    .expect("room")
                    .0
                    .to_owned()
            })
            .collect();
        assert_eq!(picks.iter().filter(|n| *n == "a").count(), 1);
        assert_eq!(picks.iter().filter(|n| *n == "b").count(), 2);
        assert!(matches!(pool.pick("t3", 3, 0, None), Pick::Wait { .. }));
    }

    #[test]
    fn waiting_tasks_are_served_oldest_first() {
        let pool = Pool::new(vec![account("a", 1, 1)], Duration::from_secs(10));
        assert!(sent(pool.pick("running", 0, 0, None)).is_some());
        // Two tasks wait; the newer one asks first when the slot frees.
        for (t, at) in [("old", 10), ("new", 20)] {
            assert!(matches!(pool.pick(t, at, 0, None), Pick::Wait { .. }));
            pool.wait_in_line(t, at);
        }
        pool.accounts()[0].slots.release("running");
        assert!(
            matches!(pool.pick("new", 20, 0, None), Pick::Wait { .. }),
            "an older task waits"
        );
        assert_eq!(sent(pool.pick("old", 10, 0, None)), Some(("a", false)));
    }

    #[test]
    fn out_of_rotation_accounts_get_no_tasks_but_one_probe_when_due() {
        let pool = Pool::new(
            vec![account("a", 10, 1), account("b", 10, 1)],
            Duration::from_secs(10),
        );
        pool.accounts()[0]
            .health
            .take_out(0, Cause::Account, "1102");
        for i in 0..5 {
            assert_eq!(
                sent(pool.pick(&format!("t{i}"), i, 500, None)),
                Some(("b", false))
            );
        }
        assert!(pool.create_probe_due(1000));
        assert_eq!(sent(pool.pick("probe", 9, 1000, None)), Some(("a", true)));
        assert_eq!(
            sent(pool.pick("next", 10, 1000, None)),
            Some(("b", false)),
            "one probe at a time"
        );
        pool.accounts()[1]
            .health
            .take_out(0, Cause::Credentials, "1000");
        assert!(matches!(
            pool.pick("x", 11, 1000, None),
            Pick::NoneInRotation
        ));
    }

    #[test]
    fn a_task_whose_create_found_nothing_stays_at_its_account_while_it_is_in_rotation() {
        let pool = Pool::new(
            vec![account("a", 1, 1), account("b", 10, 100)],
            Duration::from_secs(10),
        );
        assert_eq!(sent(pool.pick("t", 0, 0, Some("a"))), Some(("a", false)));
        pool.accounts()[0].slots.release("t");
        assert!(sent(pool.pick("other", 1, 0, Some("a"))).is_some());
        assert!(
            matches!(pool.pick("t", 0, 0, Some("a")), Pick::Wait { .. }),
            "a is full: wait for it, not b"
        );
        pool.accounts()[0]
            .health
            .take_out(0, Cause::Account, "1102");
        assert_eq!(
            sent(pool.pick("t", 0, 0, Some("a"))),
            Some(("b", false)),
            "out of rotation: any account"
        );
    }

    #[test]
    fn legacy_states_belong_to_the_first_account() {
        let pool = Pool::new(
            vec![account("a", 1, 1), account("b", 1, 1)],
            Duration::from_secs(1),
        );
        assert_eq!(pool.get(None).map(|a| a.name.as_str()), Some("a"));
        assert_eq!(pool.get(Some("b")).map(|a| a.name.as_str()), Some("b"));
        assert!(pool.get(Some("gone")).is_none());
    }
}
