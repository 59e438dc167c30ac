//! The public error vocabulary. `ErrorCode` is the stable contract; the HTTP
//! layer maps it to a status once. Validation collects every problem found,
//! not only the first.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    ApiKeyMissing,
    ApiKeyInvalid,
    ApiKeyRevoked,
    ApiKeyExpired,
    ApiScopeDenied,
    ValidationFailed,
    InsufficientCredits,
    NotFound,
    IdempotencyConflict,
    WebhookUrlRejected,
    PayloadTooLarge,
    RateLimited,
    PublicApiDisabled,
    ServiceUnavailable,
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
            | Self::ApiKeyExpired => 401,
            Self::ApiScopeDenied => 403,
            Self::ValidationFailed | Self::WebhookUrlRejected => 400,
            Self::InsufficientCredits => 402,
            Self::NotFound => 404,
            Self::IdempotencyConflict => 409,
            Self::PayloadTooLarge => 413,
            Self::RateLimited => 429,
            Self::PublicApiDisabled | Self::ServiceUnavailable | Self::ServerBusy => 503,
            Self::InternalError => 500,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKeyMissing => "api_key_missing",
            Self::ApiKeyInvalid => "api_key_invalid",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::ApiKeyExpired => "api_key_expired",
            Self::ApiScopeDenied => "api_scope_denied",
            Self::ValidationFailed => "validation_failed",
            Self::InsufficientCredits => "insufficient_credits",
            Self::NotFound => "not_found",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::WebhookUrlRejected => "webhook_url_rejected",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::PublicApiDisabled => "public_api_disabled",
            Self::ServiceUnavailable => "service_unavailable",
            Self::ServerBusy => "server_busy",
            Self::InternalError => "internal_error",
        }
    }
}

/// What is wrong with one field (`details[].issue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
