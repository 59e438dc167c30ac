//! A typed client for the Kling video API (Kling 3.0, `kling-v3`), and a fake Kling server
//! that follows the same documented protocol, errors included.
//!
//! The protocol is described in `shared/spec/UPSTREAM-KLING.md`. In short:
//!
//! - [`KlingClient`] signs every call with a cached HS256 JWT, re-mints it and retries once
//!   when Kling refuses it (codes 1000–1004), and decides every answer by the body `code`.
//! - [`KlingError::class`] says what gengate should do about a failure (one [`ErrorClass`]
//!   per row of the spec's error table); [`KlingError::outcome_unknown`] says when a create
//!   may have happened anyway, so the caller reconciles with
//!   [`KlingClient::find_by_external_id`] before submitting again.
//! - [`parse_callback`] reads Kling's unsigned status callbacks.
//! - With the `fake` feature (on by default), [`fake::FakeKling`] serves the same API on a
//!   local port for tests and for `gengate dev fake-kling`.

mod auth;
mod client;
mod error;
mod types;
pub mod versions;

#[cfg(feature = "fake")]
pub mod fake;

pub use auth::{
    Clock, KlingClaims, KlingCredentials, ManualClock, NOT_BEFORE_SLACK_SECS, SystemClock,
    TOKEN_LIFETIME_SECS, TOKEN_REUSE_SECS, mint_token,
};
pub use client::{DEFAULT_MAX_LIST_PAGES, KlingClient, LIST_PAGE_SIZE};
pub use error::{ErrorClass, KlingError, class_for_code, documented_http_status};
pub use types::{
    CreateVideo, Family, KlingTask, KlingVideo, MODEL_NAME, TaskStatus, parse_callback,
};
pub use versions::Version;
