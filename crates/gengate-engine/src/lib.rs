//! gengate's engine: the domain and its background work, behind one handle.
//!
//! [`Engine`] is what the HTTP layer (`gengate-server`) and the operator
//! commands call: create, read, wait for and cancel generations, upload
//! files, manage keys and webhooks, authenticate and admit a request, take a
//! vendor callback, and start the node's background loops. The rules live
//! here and are tested here, without HTTP; errors leave as the engine's own
//! types (`GenerationError`, `CancelError`, `AuthError`, `StoreError`, …) and
//! the server maps each once to the public envelope.
//!
//! Every folder reaches what the node shares (store, clock, catalog,
//! caches, wake-ups) through the `Engine` handle. Between folders the
//! floors hold (a folder never imports one above it):
//! - `infra/`: blobs, signing, request budgets (local and Redis), node
//!   identity — knows nothing of tasks or accounts;
//! - `accounts/`: accounts, API keys, authentication, credits and spend limits;
//! - `files/`: reference uploads, their checks and links;
//! - `providers/`: the sandbox and the Kling pool behind one `Provider` trait;
//! - `generations/`: creating, reading, waiting for and cancelling tasks,
//!   idempotency holds, the ended-task cache and change events;
//! - `webhooks/`: endpoints, events and the dispatcher;
//! - `runner/`: the job loop that drives providers, vendor callbacks, and
//!   the node's background loops;
//! - `engine`: the handle that wires them.
//!
//! This crate depends on no HTTP server crate: no axum, no hyper server
//! side, and utoipa only behind the `openapi` feature (the schemas of the
//! views the API serialises; the server turns it on). reqwest, the client
//! it calls vendors, S3 and webhook receivers with, brings tower-http and
//! hyper's client side.

pub mod accounts;
pub mod admin;
pub mod alerts;
pub mod catalog;
pub mod config;
mod engine;
pub mod files;
pub mod generations;
pub mod infra;
pub mod operator;
pub mod providers;
pub mod runner;
pub mod webhooks;

pub use engine::{Background, CallbackOutcome, Engine, EngineInner, EngineSettings, role_name};
