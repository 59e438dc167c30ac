//! Vendor callbacks: the per-task URL a vendor calls, its unguessable token, and the
//! in-process "look again now" hints the runner reads.
//!
//! A callback is never trusted for its content: it only makes the task's job due now, and
//! the provider re-queries the vendor before changing anything. So the token only has to
//! stop strangers from making us poll; it is an HMAC of (provider, task id) with the
//! server's signing key, which needs no storage and survives restarts.

use crate::infra::signing::SigningKey;
use dashmap::DashSet;
use gengate_core::ids::TaskId;

/// Domain separation from media links, which use the same key.
const TOKEN_LABEL: &[u8] = b"gengate-vendor-callback-v1";

pub fn token(key: &SigningKey, provider: &str, task: &TaskId) -> String {
    key.mac(&[TOKEN_LABEL, provider.as_bytes(), task.as_str().as_bytes()])
}

/// Constant-time check of a callback token.
pub fn verify(key: &SigningKey, provider: &str, task: &str, token: &str) -> bool {
    key.verify(&[TOKEN_LABEL, provider.as_bytes(), task.as_bytes()], token)
}

/// The URL a vendor calls for `task`: not part of the public API, and not in its OpenAPI.
pub fn url(base_url: &str, key: &SigningKey, provider: &str, task: &TaskId) -> String {
    format!(
        "{}/internal/callbacks/{provider}/{}?token={}",
        base_url.trim_end_matches('/'),
        task.as_str(),
        token(key, provider, task)
    )
}

/// Tasks a callback asked about while their job may have been leased. The store's
/// `wake_job` cannot move a leased job (the worker's `release_job` would overwrite it), so
/// the runner checks this set after releasing and makes the job due again. Only this node
/// sees it; on another node the callback still lands through `wake_job` or, at worst,
/// the next poll.
#[derive(Default)]
pub struct Nudges(DashSet<TaskId>);

impl Nudges {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn nudge(&self, task: &TaskId) {
        self.0.insert(task.clone());
    }

    /// True (once) if the task was nudged since the last call.
    pub fn take(&self, task: &TaskId) -> bool {
        self.0.remove(task).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_per_task_and_per_provider() {
        let key = SigningKey::from_secret("k1");
        let a = TaskId::generate();
        let b = TaskId::generate();
        let t = token(&key, "kling", &a);
        assert!(verify(&key, "kling", a.as_str(), &t));
        assert!(!verify(&key, "kling", b.as_str(), &t));
        assert!(!verify(&key, "other", a.as_str(), &t));
        assert!(!verify(
            &SigningKey::from_secret("k2"),
            "kling",
            a.as_str(),
            &t
        ));
        assert!(!verify(&key, "kling", a.as_str(), ""));
        let u = url("http://h:1/", &key, "kling", &a);
        assert_eq!(
            u,
            format!(
                "http://h:1/internal/callbacks/kling/{}?token={t}",
                a.as_str()
            )
        );
    }

    #[test]
    fn a_nudge_is_taken_once() {
        let n = Nudges::new();
        let a = TaskId::generate();
        assert!(!n.take(&a));
        n.nudge(&a);
        n.nudge(&a);
        assert!(n.take(&a));
        assert!(!n.take(&a));
    }
}
