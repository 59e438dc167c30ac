//! The domain of gengate: everything that is a rule rather than plumbing.
//!
//! Nothing here performs I/O. The store, the HTTP layer and the runner call
//! into these modules and rely on their types: once a value of a type here
//! exists, it is valid (`Prompt`, `KlingParams`, `IdempotencyKey`, `Credits`).

pub mod apikey;
pub mod catalog;
pub mod clock;
pub mod credits;
pub mod error;
pub mod generation;
pub mod idempotency;
pub mod ids;
pub mod kling;
pub mod operator;
pub mod paging;
pub mod params;
pub mod pricing;
pub mod scope;
pub mod spend;
pub mod text;
pub mod time;
pub mod webhook;

pub use credits::Credits;
pub use error::{ErrorCode, FieldIssue, FieldProblem, ValidationErrors};
pub use time::Timestamp;
