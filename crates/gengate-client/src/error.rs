//! The SDK's one error type. An answer of the server keeps everything the
//! envelope carried (code, message, request id, field details) so a caller can
//! act on the code and quote the request id to the operator.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Everything a call of this SDK can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error (after any retries).
    #[error("{0}")]
    Api(ApiError),
    /// The server could not be reached, or the connection broke, on every attempt.
    #[error("could not reach {url} after {attempts} attempt(s): {message}")]
    Network {
        /// The URL of the request.
        url: String,
        /// How many times it was tried.
        attempts: u32,
        /// What went wrong on the last attempt.
        message: String,
        /// The last transport error.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The server answered 2xx with a body this SDK does not understand.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL of the request.
        url: String,
        /// What could not be parsed.
        message: String,
    },
    /// The client configuration is invalid (bad base URL, bad API key characters…).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// An argument was refused before anything was sent.
    #[error("{0}")]
    InvalidInput(String),
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for a task took longer than the caller allowed; the task keeps running.
    #[error("task {task_id} did not finish within {waited:?} (it is still running)")]
    WaitTimeout {
        /// The task waited for.
        task_id: String,
        /// How long the SDK waited.
        waited: Duration,
    },
}

impl Error {
    /// The API error, when the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the key is missing, unknown, revoked, expired or lacks a scope.
    pub fn is_auth(&self) -> bool {
        self.api().is_some_and(|e| e.code.is_auth())
    }

    /// Whether the server was unreachable (or kept failing with 5xx) after retries.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Network { .. } => true,
            Error::Api(e) => e.status >= 500,
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// An error answer of the API: the envelope
/// `{"error":{"code","message","requestId","details"}}` plus the HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The stable machine-readable code.
    pub code: ErrorCode,
    /// A human-readable sentence.
    pub message: String,
    /// The server's request id (`req_…`), from the envelope or `X-Request-Id`.
    pub request_id: Option<String>,
    /// Every field problem the server found (for `validation_failed`).
    pub details: Vec<FieldDetail>,
    /// How long the server asked to wait before retrying (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)?;
        for d in &self.details {
            write!(f, "\n  {}: {}", d.field, d.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, "\n  request id: {id}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// One field problem of a `validation_failed` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDetail {
    /// Dotted path of the field, e.g. `params.duration`.
    pub field: String,
    /// Machine-readable kind of problem (`required`, `not_allowed`, `out_of_range`…).
    pub issue: String,
    /// A human-readable sentence.
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
struct Envelope {
    error: EnvelopeBody,
}

#[derive(Deserialize)]
struct EnvelopeBody {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(rename = "requestId", default)]
    request_id: Option<String>,
    #[serde(default)]
    details: Vec<FieldDetail>,
}

impl ApiError {
    /// Builds the error from a non-2xx answer. A body that is not the
    /// envelope (a proxy's HTML page, say) still yields a usable error.
    pub(crate) fn from_parts(
        status: u16,
        header_request_id: Option<String>,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { error: e }) => ApiError {
                status,
                code: ErrorCode::from(e.code.as_str()),
                message: e.message,
                request_id: e.request_id.or(header_request_id),
                details: e.details,
                retry_after,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text: String = text.trim().chars().take(200).collect();
                ApiError {
                    status,
                    code: ErrorCode::for_status(status),
                    message: if text.is_empty() {
                        format!("HTTP {status}")
                    } else {
                        format!("HTTP {status}: {text}")
                    },
                    request_id: header_request_id,
                    details: Vec::new(),
                    retry_after,
                }
            }
        }
    }
}

macro_rules! error_codes {
    ($($variant:ident => $s:literal),* $(,)?) => {
        /// The API's error codes. Codes this SDK does not know yet arrive as
        /// [`ErrorCode::Other`], so a newer server never breaks an older client.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(
                #[doc = concat!("`", $s, "`")]
                $variant,
            )*
            /// A code this SDK does not know.
            Other(String),
        }

        impl ErrorCode {
            /// The wire form, e.g. `validation_failed`.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $s,)*
                    ErrorCode::Other(s) => s,
                }
            }
        }

        impl From<&str> for ErrorCode {
            fn from(s: &str) -> Self {
                match s {
                    $($s => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_owned()),
                }
            }
        }
    };
}

error_codes! {
    ApiKeyMissing => "api_key_missing",
    ApiKeyInvalid => "api_key_invalid",
    ApiKeyRevoked => "api_key_revoked",
    ApiKeyExpired => "api_key_expired",
    ApiScopeDenied => "api_scope_denied",
    ValidationFailed => "validation_failed",
    InsufficientCredits => "insufficient_credits",
    SpendLimitExceeded => "spend_limit_exceeded",
    NotFound => "not_found",
    IdempotencyConflict => "idempotency_conflict",
    NotCancelable => "not_cancelable",
    WebhookUrlRejected => "webhook_url_rejected",
    PayloadTooLarge => "payload_too_large",
    RateLimited => "rate_limited",
    PublicApiDisabled => "public_api_disabled",
    ServiceUnavailable => "service_unavailable",
    InternalError => "internal_error",
}

impl ErrorCode {
    /// Authentication or authorisation: fix the key, not the request.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ErrorCode::ApiKeyMissing
                | ErrorCode::ApiKeyInvalid
                | ErrorCode::ApiKeyRevoked
                | ErrorCode::ApiKeyExpired
                | ErrorCode::ApiScopeDenied
        )
    }

    /// A best guess for answers that carry no envelope.
    fn for_status(status: u16) -> Self {
        match status {
            400 => ErrorCode::ValidationFailed,
            401 => ErrorCode::ApiKeyInvalid,
            403 => ErrorCode::ApiScopeDenied,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::IdempotencyConflict,
            413 => ErrorCode::PayloadTooLarge,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::ServiceUnavailable,
            s if s >= 500 => ErrorCode::InternalError,
            s => ErrorCode::Other(format!("http_{s}")),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_reaches_the_caller_intact() {
        let body = br#"{"error":{"code":"validation_failed","message":"bad","requestId":"req_1",
            "details":[{"field":"params.duration","issue":"not_allowed","message":"no"}]}}"#;
        let e = ApiError::from_parts(400, Some("req_hdr".into()), None, body);
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        assert_eq!(e.request_id.as_deref(), Some("req_1"));
        assert_eq!(e.details[0].field, "params.duration");
        assert_eq!(e.details[0].issue, "not_allowed");
    }

    #[test]
    fn unknown_codes_and_foreign_bodies_survive() {
        let e = ApiError::from_parts(418, None, None, br#"{"error":{"code":"brand_new"}}"#);
        assert_eq!(e.code, ErrorCode::Other("brand_new".into()));
        let e = ApiError::from_parts(502, Some("req_x".into()), None, b"<html>bad gateway</html>");
        assert_eq!(e.code, ErrorCode::InternalError);
        assert_eq!(e.request_id.as_deref(), Some("req_x"));
        assert!(e.message.contains("bad gateway"));
    }

    #[test]
    fn auth_codes() {
        assert!(ErrorCode::from("api_key_revoked").is_auth());
        assert!(!ErrorCode::from("validation_failed").is_auth());
    }
}
