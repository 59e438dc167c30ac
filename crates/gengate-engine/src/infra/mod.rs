//! The infrastructure every domain module shares: blob storage (local disk
//! or S3), the signing key and signed media links, request budgets (in
//! process, or shared through Redis), this node's identity and status, and
//! the `Connectors` trait through which the binary hands in outbound
//! connections (HTTP, webhook delivery, S3).
//!
//! Owns no domain rule: it must not import `accounts`, `files`,
//! `generations`, `providers`, `runner` or `webhooks`.

pub mod blobs;
pub mod connectors;
pub mod limits;
pub mod node;
pub mod shared_limits;
pub mod signing;
