//! # gengate-client
//!
//! A Rust SDK for [gengate](https://github.com/) and any server of the
//! **Rivya Public API v1**: typed requests and answers for every public
//! endpoint, safe retries, long-poll waiting, resumable downloads, and
//! webhook signature verification. It depends on no server crate.
//!
//! ```no_run
//! use gengate_client::{Client, CreateGeneration, GenerationStatus, WaitOptions};
//!
//! # async fn run() -> gengate_client::Result<()> {
//! let client = Client::from_env()?; // GENGATE_URL, GENGATE_API_KEY
//! let req = CreateGeneration::new("kling-3-0", "A lighthouse at dusk")
//!     .param("mode", "std")
//!     .param("duration", "5");
//! let task = client.generations().create(&req).await?;
//! let done = client
//!     .generations()
//!     .wait_with(&task.id, &WaitOptions::default(), |t| eprintln!("{}: {}", t.id, t.status))
//!     .await?;
//! match (done.status, &done.result, &done.error) {
//!     (GenerationStatus::Succeeded, Some(r), _) => {
//!         client.download_to_path(&r.primary_url, "lighthouse.mp4", |_| {}).await?;
//!     }
//!     (_, _, Some(e)) => eprintln!("failed: {} ({}); credits refunded", e.code, e.message),
//!     _ => {}
//! }
//! # Ok(()) }
//! ```
//!
//! ## Retries and idempotency
//!
//! Connection failures, 5xx, 429 and 503 are retried with exponential
//! back-off and jitter, honouring `Retry-After` and `RateLimit-Reset`
//! ([`RetryPolicy`]). Only calls that are safe to repeat are retried: reads,
//! and POSTs carrying an `Idempotency-Key`. Every create generates one key
//! per logical call and reuses it for its retries, so a create whose answer
//! was lost is answered with the first task, never charged twice.
//!
//! ## Errors
//!
//! [`Error::Api`] carries the API's `code`, `message`, `requestId` and field
//! `details` as the server sent them.
#![warn(missing_docs)]

mod client;
mod credits;
mod download;
mod error;
mod files;
mod generations;
mod models;
mod retry;
mod verify;
mod webhooks;

pub use client::{Client, ClientBuilder, DEFAULT_BASE_URL, new_idempotency_key};
pub use credits::CreditBalance;
pub use download::DownloadProgress;
pub use error::{ApiError, Error, ErrorCode, FieldDetail, Result};
pub use files::{FileKind, FileObject, Files, MAX_UPLOAD_BYTES, Upload, UploadProgress, sniff};
pub use generations::{
    CreateGeneration, Generation, GenerationResult, GenerationStatus, Generations, ListGenerations,
    MediaItem, Page, TaskError, WaitOptions,
};
pub use models::{
    KindLimits, Model, Models, ParamSpec, ParamType, REFERENCE_ITEMS_KEY, ReferenceMedia,
};
pub use retry::{RetryPolicy, parse_ratelimit_reset, parse_retry_after, server_delay};
pub use verify::{DEFAULT_TOLERANCE, WebhookVerifyError, verify_webhook, verify_webhook_at};
pub use webhooks::{
    CreateWebhook, DeliveryAttempt, Event, ListPage, UpdateWebhook, WebhookEndpoint, Webhooks,
};
