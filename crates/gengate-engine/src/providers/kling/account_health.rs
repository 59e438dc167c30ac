//! Whether one Kling account is in rotation (issue 14).
//!
//! An account leaves rotation for a fact about the account, never about one task:
//! credentials refused (1000–1004, after the client's re-mint and retry, so twice),
//! balance or resource pack gone (1100/1101/1102/1304), or no access to the model (1103).
//! While out, tasks are not sent to it; one probe at a time, on a doubling back-off,
//! finds out when it is back:
//!
//! - credentials: a list call (the cheapest authenticated request); every call to the
//!   account is refused meanwhile, so tasks it holds wait without asking;
//! - balance / no access: queries still work at Kling, only creates are refused, and no
//!   documented call tells a refill apart — so the probe is one real create: the next
//!   task that needs an account is let through to it. A refusal moves that task on (a
//!   definite refusal: nothing was created) and doubles the back-off.
//!
//! The state is per process, like the provider's health (`providers/health.rs`).

use std::sync::Mutex;
use std::time::Duration;

/// Probes never wait longer than this between two tries.
const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(60);

/// Why an account is out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Credentials,
    Account,
    NoAccess,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Credentials => "credentials_refused",
            Cause::Account => "account_refused",
            Cause::NoAccess => "no_model_access",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Out {
    pub cause: Cause,
    pub since_ms: i64,
    pub reason: String,
    next_probe_ms: i64,
    backoff: Duration,
    probing: bool,
}

pub struct AccountHealth {
    first_probe: Duration,
    state: Mutex<Option<Out>>,
}

impl AccountHealth {
    pub fn new(first_probe: Duration) -> Self {
        Self {
            first_probe: first_probe.max(Duration::from_millis(10)),
            state: Mutex::new(None),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Out>> {
        // A plain value; a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// None while in rotation.
    pub fn out(&self) -> Option<Out> {
        self.state().clone()
    }

    pub fn accepts_creates(&self) -> bool {
        self.state().is_none()
    }

    /// Whether status queries and lookups may be sent (everything but refused
    /// credentials).
    pub fn accepts_queries(&self) -> bool {
        !matches!(&*self.state(), Some(o) if o.cause == Cause::Credentials)
    }

    /// Takes the account out of rotation. Returns true for the call that did (it alone
    /// is logged as an error). Refused credentials override a balance cause: they stop
    /// queries too.
    pub fn take_out(&self, now_ms: i64, cause: Cause, reason: &str) -> bool {
        let mut s = self.state();
        match &mut *s {
            Some(o) if o.cause == cause || cause != Cause::Credentials => {
                // Already out; a refused probe is handled by `end_probe`.
                false
            }
            Some(o) => {
                o.cause = cause;
                o.reason = reason.to_owned();
                false
            }
            None => {
                *s = Some(Out {
                    cause,
                    since_ms: now_ms,
                    reason: reason.to_owned(),
                    next_probe_ms: now_ms + as_ms(self.first_probe),
                    backoff: self.first_probe,
                    probing: false,
                });
                true
            }
        }
    }

    /// Back in rotation. True if it was out.
    pub fn restore(&self) -> bool {
        self.state().take().is_some()
    }

    /// Whether a probe of this kind is due now (without reserving it).
    pub fn probe_due(&self, now_ms: i64, by_create: bool) -> bool {
        matches!(&*self.state(), Some(o) if !o.probing && now_ms >= o.next_probe_ms && by_create == (o.cause != Cause::Credentials))
    }

    /// Reserves the probe when one of this kind is due (one at a time). `by_create`:
    /// the caller probes with a real create (balance / no access); otherwise with a list
    /// call (credentials).
    pub fn begin_probe(&self, now_ms: i64, by_create: bool) -> bool {
        match &mut *self.state() {
            Some(o)
                if !o.probing
                    && now_ms >= o.next_probe_ms
                    && by_create == (o.cause != Cause::Credentials) =>
            {
                o.probing = true;
                true
            }
            _ => false,
        }
    }

    /// The probe could not run after all (e.g. no slot): due again at once.
    pub fn cancel_probe(&self) {
        if let Some(o) = &mut *self.state() {
            o.probing = false;
        }
    }

    /// The probe's answer: back in rotation, or the next probe after a longer wait.
    /// Returns true when the account came back.
    pub fn end_probe(&self, now_ms: i64, ok: bool) -> bool {
        if ok {
            return self.restore();
        }
        if let Some(o) = &mut *self.state() {
            o.probing = false;
            o.backoff = (o.backoff * 2).min(MAX_PROBE_BACKOFF);
            o.next_probe_ms = now_ms + as_ms(o.backoff);
        }
        false
    }

    /// How long until the next probe may change the answer (at least 1 s), when out.
    pub fn until_probe(&self, now_ms: i64) -> Option<Duration> {
        self.state().as_ref().map(|o| {
            Duration::from_millis(u64::try_from(o.next_probe_ms - now_ms).unwrap_or(0))
                .max(Duration::from_secs(1))
        })
    }
}

fn as_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_out_blocks_creates_not_queries_and_probes_by_create() {
        let h = AccountHealth::new(Duration::from_millis(1000));
        assert!(h.accepts_creates() && h.accepts_queries());
        assert!(h.take_out(0, Cause::Account, "1102"));
        assert!(
            !h.take_out(10, Cause::Account, "1102 again"),
            "no second transition"
        );
        assert!(!h.accepts_creates());
        assert!(h.accepts_queries(), "Kling still answers queries");
        assert!(!h.begin_probe(1000, false), "not a list probe");
        assert!(!h.begin_probe(999, true), "not before the back-off");
        assert!(h.begin_probe(1000, true));
        assert!(!h.begin_probe(1000, true), "one probe at a time");
        assert!(!h.end_probe(1100, false));
        assert!(!h.probe_due(3099, true), "the back-off doubled");
        assert!(h.probe_due(3100, true));
        assert!(h.begin_probe(3100, true));
        h.cancel_probe();
        assert!(h.begin_probe(3100, true), "a cancelled probe is due again");
        assert!(h.end_probe(3200, true));
        assert!(h.accepts_creates());
    }

    #[test]
    fn refused_credentials_stop_queries_and_override_balance() {
        let h = AccountHealth::new(Duration::from_millis(100));
        h.take_out(0, Cause::Account, "1102");
        assert!(!h.take_out(5, Cause::Credentials, "1000"));
        assert!(!h.accepts_queries());
        assert_eq!(
            h.out().map(|o| (o.cause, o.since_ms)),
            Some((Cause::Credentials, 0))
        );
        assert!(h.begin_probe(100, false), "probed by a list call");
        for n in 0..20 {
            h.end_probe(n, false);
            h.cancel_probe();
        }
        assert!(h.until_probe(19).is_some_and(|d| d <= MAX_PROBE_BACKOFF));
        assert!(h.restore());
        assert!(!h.restore());
    }
}
