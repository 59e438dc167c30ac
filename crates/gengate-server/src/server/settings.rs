//! The connection limits of the HTTP front door, as flags.

use clap::Args;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// A request's headers must be complete within this time (ms) of its
    /// first byte (of the connection's start, for its first request);
    /// otherwise the connection is closed.
    #[arg(long, env = "GENGATE_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub http_header_timeout_ms: u64,
    /// A request body that makes no progress for this long (ms) is answered
    /// `408 request_timeout` and its connection closed.
    #[arg(long, env = "GENGATE_HTTP_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub http_body_timeout_ms: u64,
    /// A keep-alive connection with no request in flight for this long (ms)
    /// is closed; so is one whose reader takes nothing for this long. A
    /// request in flight (a long poll, a download being read) is never cut.
    #[arg(long, env = "GENGATE_HTTP_IDLE_TIMEOUT_MS", default_value_t = 90_000)]
    pub http_idle_timeout_ms: u64,
    /// Open connections this node serves at once; the next ones are answered
    /// `503 service_unavailable` with `Retry-After` and closed.
    #[arg(long, env = "GENGATE_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,
}

/// The limits, resolved.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl HttpArgs {
    pub fn limits(&self) -> HttpLimits {
        // Zero would cut every connection at once; a millisecond is the floor.
        let ms = |v: u64| Duration::from_millis(v.max(1));
        HttpLimits {
            header_timeout: ms(self.http_header_timeout_ms),
            body_timeout: ms(self.http_body_timeout_ms),
            idle_timeout: ms(self.http_idle_timeout_ms),
            max_connections: self.max_connections.clamp(1, u32::MAX as usize),
        }
    }
}
