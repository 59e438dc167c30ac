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
//! Floors (a module never imports one above it):
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
//! This crate depends on no HTTP server crate (axum, hyper's server side,
//! tower-http, utoipa — the last only behind the `openapi` feature for the
//! schemas of the views the API serialises).

pub mod accounts;
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
