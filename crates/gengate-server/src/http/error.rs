//! The HTTP layer's one error type and its one mapping to the public
//! envelope. Handlers return `Result<_, ApiError>` and use `?`.

use super::context::current_request_id;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gengate_core::error::{ErrorCode, FieldProblem, ValidationErrors};
use gengate_store::{CreateTaskError, StoreError};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<FieldProblem>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after_secs: None,
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
            CreateTaskError::Store(s) => s.into(),
        }
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message,
                request_id: current_request_id(),
                details: self.details,
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
