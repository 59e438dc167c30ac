//! What one delivery attempt is and what makes one: the settings, the outcome and the
//! [`Deliver`] trait the dispatcher calls. No HTTP client here: [`crate::Deliverer`]
//! (feature `client`) is the real one, so a crate that only drives deliveries builds
//! without reqwest.

use std::time::Duration;

use bytes::Bytes;

use crate::url_policy::UrlPolicy;

/// How much of the response body is kept for the delivery log.
pub const SNIPPET_BYTES: usize = 1024;

/// Settings for a deliverer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelivererConfig {
    /// Limit for the whole attempt: DNS, connect, TLS, headers and reading the body.
    pub timeout: Duration,
    /// Response bytes read at most; the rest is never read and the connection is closed.
    pub max_response_bytes: usize,
    pub policy: UrlPolicy,
    pub user_agent: String,
}

impl Default for DelivererConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            max_response_bytes: 64 * 1024,
            policy: UrlPolicy::default(),
            user_agent: concat!("gengate-webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The outcome of one delivery attempt, everything the delivery log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's status, if it answered at all.
    pub status_code: Option<u16>,
    /// From the start of the attempt to the end of reading the response.
    pub duration: Duration,
    /// Why the attempt failed when the status code alone does not say (no answer,
    /// timeout, refused URL, a redirect, a broken body); `None` for a plain non-2xx.
    pub error: Option<String>,
    /// The receiver's `Retry-After`, to pass to [`crate::next_retry_delay`].
    pub retry_after: Option<Duration>,
    /// The first [`SNIPPET_BYTES`] of the response body, decoded as lossy UTF-8.
    pub response_snippet: Option<String>,
}

impl Attempt {
    /// A 2xx status with its response read to the end (or to the size cap) in time.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// One signed POST per call. Never fails: every failure is an [`Attempt`] with `error`
/// set, so the caller records it and schedules a retry.
#[async_trait::async_trait]
pub trait Deliver: Send + Sync + 'static {
    async fn deliver(
        &self,
        url: &str,
        msg_id: &str,
        timestamp: i64,
        signature_header: &str,
        body: Bytes,
    ) -> Attempt;
}
