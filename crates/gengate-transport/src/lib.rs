//! Outbound HTTP, as the engine and the provider clients need it: one request out, one
//! answer back with its body read up to a cap.
//!
//! The trait keeps the engine's build free of an HTTP client stack: the engine and
//! `gengate-kling` hold an [`SharedTransport`], and the binary hands them
//! [`ReqwestTransport`] (feature `reqwest`). Tests can hand them anything that answers.
//!
//! Webhook delivery does not go through here: it needs its own connection rules (a DNS
//! resolver that refuses private addresses, no redirects), so `gengate-webhooks` owns it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
pub use http::{Method, StatusCode};
use url::Url;

#[cfg(feature = "reqwest")]
mod reqwest_impl;
#[cfg(feature = "reqwest")]
pub use reqwest_impl::ReqwestTransport;

/// How much of a non-2xx answer is read. Callers only quote such bodies (or read a
/// small error envelope from them), so a long error page is cut here rather than refused.
pub const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// One outbound request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer: Option<String>,
    /// Sent with `Content-Type: application/json` when set.
    pub json: Option<Bytes>,
    /// For the whole exchange, the body read included.
    pub timeout: Duration,
    /// A 2xx body longer than this fails with [`TransportError::TooLarge`]: before a byte
    /// is read when the declared length says so, while streaming otherwise.
    pub max_body: u64,
}

impl Request {
    /// A GET with no credentials.
    pub fn get(url: Url, timeout: Duration, max_body: u64) -> Self {
        Self {
            method: Method::GET,
            url,
            bearer: None,
            json: None,
            timeout,
            max_body,
        }
    }
}

/// The answer: its status and body (a non-2xx body cut at [`MAX_ERROR_BODY_BYTES`]).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("timed out")]
    Timeout,
    /// No answer: DNS, connect, TLS, a broken body. The message carries the cause chain.
    #[error("{0}")]
    Network(String),
    /// A 2xx body over the request's `max_body`.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(u64),
}

#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn send(&self, request: Request) -> Result<Answer, TransportError>;
}

pub type SharedTransport = Arc<dyn Transport>;

/// A transport that answers every request with a network error: for a node that must
/// never reach out (and for tests that prove it does not).
#[derive(Debug, Default, Clone, Copy)]
pub struct Offline;

#[async_trait::async_trait]
impl Transport for Offline {
    async fn send(&self, request: Request) -> Result<Answer, TransportError> {
        Err(TransportError::Network(format!(
            "no outbound HTTP on this node ({} {})",
            request.method,
            request.url.host_str().unwrap_or("-")
        )))
    }
}
