//! The public error vocabulary. `ErrorCode` is the stable contract; the HTTP
//! layer maps it to a status once. Validation collects every problem found,
//! not only the first.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    ApiKeyMissing,
    ApiKeyInvalid,
    ApiKeyRevoked,
    ApiKeyExpired,
    ApiScopeDenied,
    /// Admin API: no operator key, or not one of ours (an account API key included).
    OperatorKeyInvalid,
    OperatorKeyRevoked,
    OperatorKeyExpired,
    /// Admin API: a viewer asked for a change.
    OperatorRoleDenied,
    /// The key's account is suspended by the operator: every call is refused.
    AccountSuspended,
    ValidationFailed,
    InsufficientCredits,
    /// The API key's spend limit leaves no room for this task; nothing was
    /// created or charged (the answer says when room frees).
    SpendLimitExceeded,
    NotFound,
    /// The route exists but not with this method (`Allow` lists the ones it has).
    MethodNotAllowed,
    /// The request body stopped arriving (no progress within the body timeout).
    RequestTimeout,
    IdempotencyConflict,
    /// Cancel asked of a task its upstream is already running and cannot
    /// stop; nothing changed, it will finish and be charged.
    NotCancelable,
    WebhookUrlRejected,
    PayloadTooLarge,
    /// A media `Range` outside the file.
    RangeNotSatisfiable,
    RateLimited,
    PublicApiDisabled,
    ServiceUnavailable,
    /// The model's upstream provider cannot take tasks now (e.g. it refuses
    /// our credentials); nothing was charged.
    ProviderUnavailable,
    /// This node is at a resource limit (the image decode memory budget);
    /// `Retry-After` says when to try again. Nothing was done.
    ServerBusy,
    InternalError,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            Self::ApiKeyMissing
            | Self::ApiKeyInvalid
            | Self::ApiKeyRevoked
            | Self::ApiKeyExpired
            | Self::OperatorKeyInvalid
            | Self::OperatorKeyRevoked
            | Self::OperatorKeyExpired => 401,
            Self::ApiScopeDenied | Self::OperatorRoleDenied | Self::AccountSuspended => 403,
            Self::ValidationFailed | Self::WebhookUrlRejected => 400,
            Self::InsufficientCredits | Self::SpendLimitExceeded => 402,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::IdempotencyConflict | Self::NotCancelable => 409,
            Self::PayloadTooLarge => 413,
            Self::RangeNotSatisfiable => 416,
            Self::RateLimited => 429,
            Self::PublicApiDisabled
            | Self::ServiceUnavailable
            | Self::ProviderUnavailable
            | Self::ServerBusy => 503,
            Self::InternalError => 500,
        }
    }
    /// The code for an error answer that was produced without one (a
    /// framework rejection, a bare status): the code whose status it is, or
    /// the generic code of its class. `for_status(s).http_status()` is the
    /// status the answer is then sent with.
    pub fn for_status(status: u16) -> Self {
        match status {
            401 => Self::ApiKeyInvalid,
            403 => Self::ApiScopeDenied,
            402 => Self::InsufficientCredits,
            404 | 410 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            408 => Self::RequestTimeout,
            409 => Self::IdempotencyConflict,
            411 | 413 => Self::PayloadTooLarge,
            416 => Self::RangeNotSatisfiable,
            429 => Self::RateLimited,
            503 => Self::ServiceUnavailable,
            400..=499 => Self::ValidationFailed,
            _ => Self::InternalError,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKeyMissing => "api_key_missing",
            Self::ApiKeyInvalid => "api_key_invalid",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::ApiKeyExpired => "api_key_expired",
            Self::ApiScopeDenied => "api_scope_denied",
            Self::OperatorKeyInvalid => "operator_key_invalid",
            Self::OperatorKeyRevoked => "operator_key_revoked",
            Self::OperatorKeyExpired => "operator_key_expired",
            Self::OperatorRoleDenied => "operator_role_denied",
            Self::AccountSuspended => "account_suspended",
            Self::ValidationFailed => "validation_failed",
            Self::InsufficientCredits => "insufficient_credits",
            Self::SpendLimitExceeded => "spend_limit_exceeded",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::NotCancelable => "not_cancelable",
            Self::WebhookUrlRejected => "webhook_url_rejected",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::RateLimited => "rate_limited",
            Self::PublicApiDisabled => "public_api_disabled",
            Self::ServiceUnavailable => "service_unavailable",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ServerBusy => "server_busy",
            Self::InternalError => "internal_error",
        }
    }
}

/// What is wrong with one field (`details[].issue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FieldIssue {
    Required,
    InvalidType,
    NotAllowed,
    OutOfRange,
    TooLong,
    TooShort,
    Blank,
    UnknownField,
    InvalidFormat,
    InvalidJson,
    UnsupportedMediaType,
    NotFound,
    Expired,
    TooLarge,
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldProblem {
    /// Dotted path of the field, e.g. `params.duration` or `params.referenceMediaItems[1].url`.
    pub field: String,
    pub issue: FieldIssue,
    /// A sentence for humans; `issue` is the stable part.
    pub message: String,
}

/// Every field problem of one request. Never empty once returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(Vec<FieldProblem>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn single(field: impl Into<String>, issue: FieldIssue, message: impl Into<String>) -> Self {
        let mut v = Self::new();
        v.push(field, issue, message);
        v
    }
    pub fn push(
        &mut self,
        field: impl Into<String>,
        issue: FieldIssue,
        message: impl Into<String>,
    ) {
        self.0.push(FieldProblem {
            field: field.into(),
            issue,
            message: message.into(),
        });
    }
    pub fn extend(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn problems(&self) -> &[FieldProblem] {
        &self.0
    }
    pub fn into_problems(self) -> Vec<FieldProblem> {
        self.0
    }
    /// `Ok(())` when nothing was found, so callers can `?` at the end of a
    /// validation pass that collected everything.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
    /// The envelope's `message`: the first problem, and how many more.
    pub fn summary(&self) -> String {
        match self.0.as_slice() {
            [] => "the request is invalid".to_owned(),
            [one] => one.message.clone(),
            [first, rest @ ..] => format!(
                "{} (and {} more problem{})",
                first.message,
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn bare_statuses_get_the_code_of_their_status() {
        for code in [
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::RequestTimeout,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RangeNotSatisfiable,
            ErrorCode::RateLimited,
            ErrorCode::ServiceUnavailable,
            ErrorCode::ValidationFailed,
        ] {
            assert_eq!(ErrorCode::for_status(code.http_status()), code);
        }
        // Statuses without a code of their own fall back to their class.
        assert_eq!(ErrorCode::for_status(415), ErrorCode::ValidationFailed);
        assert_eq!(ErrorCode::for_status(431), ErrorCode::ValidationFailed);
        assert_eq!(ErrorCode::for_status(502), ErrorCode::InternalError);
    }
}
