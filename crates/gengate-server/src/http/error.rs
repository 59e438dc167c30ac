//! The HTTP layer's one error type and its one mapping to the public
//! envelope. Handlers return `Result<_, ApiError>` and use `?`.

use super::context::current_request_id;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gengate_core::error::{ErrorCode, FieldProblem, ValidationErrors};
use gengate_engine::accounts::SpendLimitState;
use gengate_engine::accounts::auth::AuthError;
use gengate_store::{CreateTaskError, StoreError};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<FieldProblem>,
    pub retry_after_secs: Option<u64>,
    /// With `spend_limit_exceeded`: the key's limit and where it stands
    /// (boxed: errors travel in `Result`s everywhere and stay small).
    pub spend_limit: Option<Box<SpendLimitState>>,
    /// The status when it is not the code's own (the admin API's `409 insufficient_credits`).
    pub status: Option<StatusCode>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after_secs: None,
            spend_limit: None,
            status: None,
        }
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    pub fn validation(errs: ValidationErrors) -> Self {
        Self {
            code: ErrorCode::ValidationFailed,
            message: errs.summary(),
            details: errs.into_problems(),
            retry_after_secs: None,
            spend_limit: None,
            status: None,
        }
    }
    pub fn spend_limit(r: gengate_engine::generations::SpendRefusal) -> Self {
        let when = match r.frees_at {
            Some(t) => format!("room for it frees at {}", t.rfc3339()),
            None if r.limit.window.is_none() => {
                "the limit is a fixed total: only refunds of failed tasks free room".to_owned()
            }
            None => "the task costs more than the whole limit".to_owned(),
        };
        let state = SpendLimitState::of_refusal(&r);
        Self {
            spend_limit: Some(Box::new(state)),
            ..Self::new(
                ErrorCode::SpendLimitExceeded,
                format!(
                    "this API key may spend {} credits per {}; its tasks hold {} and this one costs {}; nothing was created or charged; {when}",
                    r.limit.limit,
                    r.limit.window_text(),
                    r.spent,
                    r.price
                ),
            )
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after_secs: Some(2),
            ..Self::new(ErrorCode::ServiceUnavailable, message)
        }
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            ErrorCode::InternalError,
            "internal error; the request id is in the server logs",
        )
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        Self::validation(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                Self::unavailable("the database is unavailable; retry shortly")
            }
            StoreError::NotFound(what) => Self::not_found(&what),
            StoreError::Conflict(msg) => Self::new(ErrorCode::IdempotencyConflict, msg),
            StoreError::Internal(msg) => Self::internal(msg),
        }
    }
}

impl From<CreateTaskError> for ApiError {
    fn from(e: CreateTaskError) -> Self {
        match e {
            CreateTaskError::InsufficientCredits { balance, price } => Self::new(
                ErrorCode::InsufficientCredits,
                format!(
                    "this task costs {price} credits and the balance is {balance}; nothing was created or charged"
                ),
            ),
            CreateTaskError::SpendLimitExceeded {
                limit,
                spent,
                price,
            } => Self::spend_limit(gengate_engine::generations::SpendRefusal {
                limit,
                spent,
                price,
                frees_at: None,
            }),
            CreateTaskError::Store(s) => s.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::Invalid => ErrorCode::ApiKeyInvalid,
            AuthError::Revoked => ErrorCode::ApiKeyRevoked,
            AuthError::Expired => ErrorCode::ApiKeyExpired,
            AuthError::AccountSuspended => ErrorCode::AccountSuspended,
            AuthError::Store(s) => return s.into(),
        };
        Self::new(code, e.to_string())
    }
}

/// `{"error": {...}}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(rename = "requestId")]
    pub request_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldProblem>,
    /// Only with `spend_limit_exceeded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spend_limit: Option<Box<SpendLimitState>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message,
                request_id: current_request_id(),
                details: self.details,
                spend_limit: self.spend_limit,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
