//! Whether a provider can take tasks (issue 10 item 9; docs/RELIABILITY.md).
//!
//! A refusal of our credentials is a fact about the account, not about one
//! task: the first one marks the provider unhealthy for every task of this
//! node (one ERROR line), and from then on tasks do not ask the vendor on
//! their own. One probe at a time, with a doubling back-off, checks whether
//! it recovered (the keys were fixed). While unhealthy, new creates for its
//! models are refused before any charge, and tasks waiting for it fail with
//! a refund once it has been unhealthy for `fail_after`.
//!
//! The state is per process: each node learns from its own calls.

use std::sync::Mutex;
use std::time::Duration;

/// Probes never wait longer than this between two tries.
const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(60);

pub struct ProviderHealth {
    provider: &'static str,
    fail_after: Duration,
    first_probe: Duration,
    state: Mutex<Option<Unhealthy>>,
}

#[derive(Debug, Clone)]
struct Unhealthy {
    since_ms: i64,
    reason: String,
    next_probe_ms: i64,
    backoff: Duration,
    probing: bool,
}

/// What the provider's health means for a task or a create right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Healthy,
    Unhealthy {
        since_ms: i64,
        reason: String,
        /// When the next probe may have changed the answer (at least 1 s).
        retry_after: Duration,
        /// How much longer waiting tasks wait before they fail (zero: fail now).
        fail_in: Duration,
    },
}

impl ProviderHealth {
    pub fn new(provider: &'static str, fail_after: Duration, first_probe: Duration) -> Self {
        metrics::gauge!("gengate_provider_healthy", "provider" => provider).set(1.0);
        Self {
            provider,
            fail_after,
            first_probe: first_probe.max(Duration::from_millis(10)),
            state: Mutex::new(None),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Unhealthy>> {
        // The state is a plain value; a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn check(&self, now_ms: i64) -> Availability {
        match &*self.state() {
            None => Availability::Healthy,
            Some(u) => {
                let until_probe = millis(u.next_probe_ms - now_ms);
                let unhealthy_for = millis(now_ms - u.since_ms);
                Availability::Unhealthy {
                    since_ms: u.since_ms,
                    reason: u.reason.clone(),
                    retry_after: until_probe.max(Duration::from_secs(1)),
                    fail_in: self.fail_after.saturating_sub(unhealthy_for),
                }
            }
        }
    }

    /// Our credentials were refused. Returns true for the call that made the
    /// provider unhealthy (it alone is logged as an error).
    pub fn credentials_refused(&self, now_ms: i64, reason: &str) -> bool {
        self.go_unhealthy(
            now_ms,
            reason,
            "ALERT provider refused our credentials: marked unhealthy; new creates for its models get 503 provider_unavailable, queued tasks fail and are refunded if it stays so",
        )
    }

    /// The provider cannot take tasks for another reason (e.g. every Kling account is
    /// out of rotation). Same policy as refused credentials.
    pub fn unavailable(&self, now_ms: i64, reason: &str) -> bool {
        self.go_unhealthy(
            now_ms,
            reason,
            "ALERT provider unavailable: marked unhealthy; new creates for its models get 503 provider_unavailable, queued tasks fail and are refunded if it stays so",
        )
    }

    fn go_unhealthy(&self, now_ms: i64, reason: &str, alert: &'static str) -> bool {
        let mut s = self.state();
        if s.is_some() {
            return false;
        }
        *s = Some(Unhealthy {
            since_ms: now_ms,
            reason: reason.to_owned(),
            next_probe_ms: now_ms + as_ms(self.first_probe),
            backoff: self.first_probe,
            probing: false,
        });
        drop(s);
        metrics::gauge!("gengate_provider_healthy", "provider" => self.provider).set(0.0);
        metrics::counter!("gengate_provider_unhealthy_total", "provider" => self.provider)
            .increment(1);
        tracing::error!(
            provider = self.provider,
            reason,
            fail_queued_after_ms = as_ms(self.fail_after),
            "{alert}"
        );
        true
    }

    /// A call went through: the credentials work.
    pub fn call_succeeded(&self) {
        let mut s = self.state();
        if s.take().is_some() {
            drop(s);
            metrics::gauge!("gengate_provider_healthy", "provider" => self.provider).set(1.0);
            tracing::info!(
                provider = self.provider,
                "provider accepts our credentials again: healthy"
            );
        }
    }

    /// Whether a probe should run now; true reserves it (one at a time).
    pub fn begin_probe(&self, now_ms: i64) -> bool {
        match &mut *self.state() {
            Some(u) if !u.probing && now_ms >= u.next_probe_ms => {
                u.probing = true;
                true
            }
            _ => false,
        }
    }

    /// The probe's answer: healthy again, or the next probe after a longer wait.
    pub fn end_probe(&self, now_ms: i64, ok: bool) {
        if ok {
            self.call_succeeded();
            return;
        }
        if let Some(u) = &mut *self.state() {
            u.probing = false;
            u.backoff = (u.backoff * 2).min(MAX_PROBE_BACKOFF);
            u.next_probe_ms = now_ms + as_ms(u.backoff);
        }
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn as_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> ProviderHealth {
        ProviderHealth::new(
            "test",
            Duration::from_secs(300),
            Duration::from_millis(1000),
        )
    }

    #[test]
    fn one_refusal_makes_it_unhealthy_once() {
        let h = health();
        assert_eq!(h.check(0), Availability::Healthy);
        assert!(h.credentials_refused(1_000, "1000 signature"));
        assert!(
            !h.credentials_refused(1_500, "again"),
            "a second refusal is no new transition"
        );
        match h.check(2_000) {
            Availability::Unhealthy {
                since_ms,
                reason,
                fail_in,
                ..
            } => {
                assert_eq!(since_ms, 1_000);
                assert_eq!(reason, "1000 signature");
                assert_eq!(fail_in, Duration::from_secs(299));
            }
            Availability::Healthy => panic!("healthy after a refusal"),
        }
        match h.check(1_000 + 400_000) {
            Availability::Unhealthy { fail_in, .. } => assert_eq!(fail_in, Duration::ZERO),
            Availability::Healthy => panic!("healthy"),
        }
        h.call_succeeded();
        assert_eq!(h.check(3_000), Availability::Healthy);
    }

    #[test]
    fn probes_run_one_at_a_time_with_a_growing_back_off() {
        let h = health();
        assert!(!h.begin_probe(0), "no probe while healthy");
        h.credentials_refused(0, "x");
        assert!(!h.begin_probe(999), "not before the first back-off");
        assert!(h.begin_probe(1_000));
        assert!(!h.begin_probe(1_001), "one probe at a time");
        h.end_probe(1_100, false);
        assert!(!h.begin_probe(3_000), "the back-off doubled to 2 s");
        assert!(h.begin_probe(3_100));
        h.end_probe(3_200, false);
        assert!(!h.begin_probe(7_100));
        assert!(h.begin_probe(7_200));
        h.end_probe(7_300, true);
        assert_eq!(h.check(7_300), Availability::Healthy);
        for _ in 0..20 {
            h.credentials_refused(0, "x");
            h.begin_probe(i64::MAX / 2);
            h.end_probe(0, false);
        }
        match h.check(0) {
            Availability::Unhealthy { retry_after, .. } => {
                assert!(retry_after <= MAX_PROBE_BACKOFF)
            }
            Availability::Healthy => panic!("healthy"),
        }
    }
}
