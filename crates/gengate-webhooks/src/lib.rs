//! Webhook delivery building blocks for gengate (API.md §8).
//!
//! This crate does no storage and no scheduling: the server owns the outbox, the
//! delivery rows and the dispatcher loop. It provides what that loop calls:
//!
//! - [`SigningSecret`], [`sign`], [`signature_header`], [`verify`]: Standard Webhooks
//!   signatures, including the two-entry header used during a secret rotation.
//! - [`check_url`], [`check_url_resolving`], [`is_public_ip`]: the URL rules, checked when
//!   an endpoint is created or changed and again on every delivery.
//! - [`Deliver`]: one signed POST per call, as a trait the dispatcher holds; `Deliverer`
//!   (feature `client`, on reqwest) is the real one: SSRF-guarded (its DNS resolver
//!   refuses non-public answers), no redirects, one deadline, a bounded response read.
//! - [`next_retry_delay`], [`DISABLE_AFTER`]: the retry schedule and when to give up.

mod attempt;
#[cfg(feature = "client")]
mod deliver;
mod ip;
mod retry;
mod secret;
mod signing;
mod url_policy;

pub use attempt::{Attempt, Deliver, DelivererConfig, SNIPPET_BYTES};
#[cfg(feature = "client")]
pub use deliver::{BuildError, Deliverer};
pub use ip::{IpScope, ip_scope, is_public_ip};
pub use retry::{
    DISABLE_AFTER, MAX_RETRY_AFTER, RETRY_SCHEDULE, next_retry_delay, parse_retry_after,
    random_jitter_unit,
};
pub use secret::{SecretError, SigningSecret};
pub use signing::{sign, signature_header, verify};
pub use url_policy::{
    MAX_URL_LEN, RESOLVE_TIMEOUT, UrlPolicy, UrlRejection, check_url, check_url_resolving,
};
