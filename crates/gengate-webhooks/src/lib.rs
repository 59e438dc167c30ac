//! Webhook delivery building blocks for gengate (API.md §8).
//!
//! This crate does no storage and no scheduling: the server owns the outbox, the
//! delivery rows and the dispatcher loop. It provides what that loop calls:
//!
//! - [`SigningSecret`], [`sign`], [`signature_header`], [`verify`]: Standard Webhooks
//!   signatures, including the two-entry header used during a secret rotation.
//! - [`check_url`], [`check_url_resolving`], [`is_public_ip`]: the URL rules, checked when
//!   an endpoint is created or changed and again on every delivery.
//! - [`Deliverer`]: one signed POST per call, SSRF-guarded (its DNS resolver refuses
//!   non-public answers), no redirects, one deadline, a bounded response read.
//! - [`next_retry_delay`], [`DISABLE_AFTER`]: the retry schedule and when to give up.

mod deliver;
mod ip;
mod retry;
mod secret;
mod signing;
mod url_policy;

pub use deliver::{Attempt, BuildError, Deliverer, DelivererConfig, SNIPPET_BYTES};
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
