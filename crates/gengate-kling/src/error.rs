//! Errors from the Kling API and how gengate should react to each kind.

use std::fmt;

/// Anything that can go wrong talking to Kling.
///
/// Decisions are made on [`KlingError::class`]; the variants keep the raw facts for logs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KlingError {
    /// Kling answered with its envelope and a non-zero `code`.
    #[error("kling error {code} (http {http_status}): {message}{}", request_id_suffix(.request_id))]
    Api {
        http_status: u16,
        code: i64,
        message: String,
        request_id: Option<String>,
    },
    /// A non-success HTTP status whose body is not a Kling envelope: a proxy, a load balancer
    /// or a CDN answered instead of the API (or the file host, for downloads).
    #[error("http {http_status} without a kling envelope: {body}")]
    Http { http_status: u16, body: String },
    /// The request could not be sent or the answer could not be read. For a create this
    /// means the outcome is unknown: see [`KlingError::outcome_unknown`].
    #[error("network error: {0}")]
    Network(String),
    /// The request did not complete within the client's timeout.
    #[error("request to kling timed out")]
    Timeout,
    /// A success status with a body that is not the documented shape.
    #[error("malformed answer from kling: {0}")]
    Malformed(String),
    /// A download went past the caller's size cap.
    #[error("download is larger than the allowed size")]
    TooLarge,
    /// A local problem that no retry fixes (a base URL that cannot take a path, a key
    /// that cannot sign).
    #[error("kling client misconfigured: {0}")]
    Config(String),
}

fn request_id_suffix(request_id: &Option<String>) -> String {
    match request_id {
        Some(id) => format!(" [request_id {id}]"),
        None => String::new(),
    }
}

/// What gengate does about an error. One class per row of the spec's error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 1000–1004. The client already minted a fresh token and retried once; seeing this
    /// means the credentials (or the clock) are wrong: fail the provider's health.
    Auth,
    /// 1100, 1101, 1102, 1304: the account itself is unusable. Fail the task, refund, alert.
    AccountFatal,
    /// 1103: the account may not use the model. Fail the task, refund.
    NoAccess,
    /// 1200, 1201: Kling rejected our parameters, a validation gap of ours. Fail, refund,
    /// log loudly.
    InvalidParams,
    /// 1202, 1203: wrong method or unknown resource (also an unknown task id). Fail, refund.
    NotFound,
    /// 1300, 1301: policy or content safety. Fail as `content_rejected`, refund.
    ContentRejected,
    /// 1302: too many requests. Back off and retry; the task stays queued.
    RateLimited,
    /// 1303: the account's concurrent task slots are full. Keep the task queued until a
    /// slot frees.
    ConcurrencyLimit,
    /// 5000–5002, any 5xx, network failures, timeouts and malformed answers. Back off and
    /// retry; after a create, reconcile by `external_task_id` first.
    UpstreamRetryable,
    /// A code the spec does not list, or a local misconfiguration.
    Unknown,
}

impl ErrorClass {
    /// True when waiting and trying again can succeed without anyone changing anything.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited | ErrorClass::ConcurrencyLimit | ErrorClass::UpstreamRetryable
        )
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorClass::Auth => "auth",
            ErrorClass::AccountFatal => "account_fatal",
            ErrorClass::NoAccess => "no_access",
            ErrorClass::InvalidParams => "invalid_params",
            ErrorClass::NotFound => "not_found",
            ErrorClass::ContentRejected => "content_rejected",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::ConcurrencyLimit => "concurrency_limit",
            ErrorClass::UpstreamRetryable => "upstream_retryable",
            ErrorClass::Unknown => "unknown",
        };
        f.write_str(s)
    }
}

/// The class of a Kling body `code`. The HTTP status only breaks ties for codes the spec
/// does not list, because Kling's statuses are documented as secondary to the code.
pub fn class_for_code(code: i64, http_status: u16) -> ErrorClass {
    match code {
        1000..=1004 => ErrorClass::Auth,
        1100..=1102 | 1304 => ErrorClass::AccountFatal,
        1103 => ErrorClass::NoAccess,
        1200 | 1201 => ErrorClass::InvalidParams,
        1202 | 1203 => ErrorClass::NotFound,
        1300 | 1301 => ErrorClass::ContentRejected,
        1302 => ErrorClass::RateLimited,
        1303 => ErrorClass::ConcurrencyLimit,
        5000..=5999 => ErrorClass::UpstreamRetryable,
        _ if http_status >= 500 => ErrorClass::UpstreamRetryable,
        _ => ErrorClass::Unknown,
    }
}

/// The HTTP status Kling documents for an error code (the spec's table).
pub fn documented_http_status(code: i64) -> Option<u16> {
    Some(match code {
        1000..=1004 => 401,
        1100..=1102 => 429,
        1103 => 403,
        1200 | 1201 => 400,
        1202 | 1203 => 404,
        1300 | 1301 => 400,
        1302..=1304 => 429,
        5000 => 500,
        5001 => 503,
        5002 => 504,
        _ => return None,
    })
}

pub(crate) fn is_auth_code(code: i64) -> bool {
    (1000..=1004).contains(&code)
}

impl KlingError {
    /// How gengate should react.
    pub fn class(&self) -> ErrorClass {
        match self {
            KlingError::Api {
                code, http_status, ..
            } => class_for_code(*code, *http_status),
            KlingError::Http { http_status, .. } => match *http_status {
                401 => ErrorClass::Auth,
                403 => ErrorClass::NoAccess,
                404 | 410 => ErrorClass::NotFound,
                429 => ErrorClass::RateLimited,
                408 | 500..=599 => ErrorClass::UpstreamRetryable,
                _ => ErrorClass::Unknown,
            },
            // A garbled 200 is far more often a flaky proxy or a deploy in progress than a
            // permanent protocol change, and a retry after reconciliation is harmless.
            KlingError::Network(_) | KlingError::Timeout | KlingError::Malformed(_) => {
                ErrorClass::UpstreamRetryable
            }
            // Too large is a property of the output, not of the moment: retrying fetches the
            // same file again.
            KlingError::TooLarge | KlingError::Config(_) => ErrorClass::Unknown,
        }
    }

    /// For a create: true when Kling may have created (and will bill) the task although we
    /// did not get a clean answer. Look the task up by `external_task_id` before sending
    /// create again. A clean Kling error code (1xxx) means nothing was created.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            KlingError::Network(_) | KlingError::Timeout | KlingError::Malformed(_) => true,
            KlingError::Http { http_status, .. } => *http_status >= 500 || *http_status == 408,
            KlingError::Api {
                code, http_status, ..
            } => class_for_code(*code, *http_status) == ErrorClass::UpstreamRetryable,
            KlingError::TooLarge | KlingError::Config(_) => false,
        }
    }

    /// Kling's `request_id`, to quote when asking Kling support about a failure.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            KlingError::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Kling's error `code`, when Kling answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            KlingError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_has_its_class_and_status() {
        let table: &[(i64, ErrorClass, u16)] = &[
            (1000, ErrorClass::Auth, 401),
            (1001, ErrorClass::Auth, 401),
            (1002, ErrorClass::Auth, 401),
            (1003, ErrorClass::Auth, 401),
            (1004, ErrorClass::Auth, 401),
            (1100, ErrorClass::AccountFatal, 429),
            (1101, ErrorClass::AccountFatal, 429),
            (1102, ErrorClass::AccountFatal, 429),
            (1103, ErrorClass::NoAccess, 403),
            (1200, ErrorClass::InvalidParams, 400),
            (1201, ErrorClass::InvalidParams, 400),
            (1202, ErrorClass::NotFound, 404),
            (1203, ErrorClass::NotFound, 404),
            (1300, ErrorClass::ContentRejected, 400),
            (1301, ErrorClass::ContentRejected, 400),
            (1302, ErrorClass::RateLimited, 429),
            (1303, ErrorClass::ConcurrencyLimit, 429),
            (1304, ErrorClass::AccountFatal, 429),
            (5000, ErrorClass::UpstreamRetryable, 500),
            (5001, ErrorClass::UpstreamRetryable, 503),
            (5002, ErrorClass::UpstreamRetryable, 504),
        ];
        for &(code, class, status) in table {
            assert_eq!(
                documented_http_status(code),
                Some(status),
                "status of {code}"
            );
            assert_eq!(class_for_code(code, status), class, "class of {code}");
        }
    }

    #[test]
    fn the_code_wins_over_the_http_status() {
        // A rate limit answered with 200 is still a rate limit.
        assert_eq!(class_for_code(1302, 200), ErrorClass::RateLimited);
        assert_eq!(class_for_code(1201, 500), ErrorClass::InvalidParams);
    }

    #[test]
    fn unlisted_codes_fall_back_on_the_status() {
        assert_eq!(class_for_code(1999, 400), ErrorClass::Unknown);
        assert_eq!(class_for_code(1999, 502), ErrorClass::UpstreamRetryable);
    }

    #[test]
    fn transport_failures_are_retryable_and_ambiguous() {
        for e in [
            KlingError::Network("reset".into()),
            KlingError::Timeout,
            KlingError::Malformed("eof".into()),
        ] {
            assert_eq!(e.class(), ErrorClass::UpstreamRetryable);
            assert!(e.class().is_retryable());
            assert!(e.outcome_unknown());
        }
        let rejected = KlingError::Api {
            http_status: 400,
            code: 1201,
            message: "bad".into(),
            request_id: None,
        };
        assert!(!rejected.outcome_unknown());
        assert!(!KlingError::TooLarge.class().is_retryable());
    }

    #[test]
    fn envelope_less_statuses_are_classed_by_status() {
        let http = |s| KlingError::Http {
            http_status: s,
            body: String::new(),
        };
        assert_eq!(http(502).class(), ErrorClass::UpstreamRetryable);
        assert_eq!(http(429).class(), ErrorClass::RateLimited);
        assert_eq!(http(404).class(), ErrorClass::NotFound);
        assert_eq!(http(418).class(), ErrorClass::Unknown);
    }
}
