//! axum's `Path` and `Query`, with their rejections in the public envelope
//! (axum's own answer `400 text/plain`). Handlers import these instead of
//! axum's; everything else about them is axum's.

use super::error::ApiError;
use axum::extract::FromRequestParts;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::request::Parts;
use gengate_core::error::{FieldIssue, ValidationErrors};
use serde::de::DeserializeOwned;

/// Path parameters; a parameter that is not valid UTF-8 or does not parse is
/// `validation_failed` naming the parameter.
pub struct Path<T>(pub T);

/// The query string; one that does not deserialise is `validation_failed`.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(path_rejection)
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(query_rejection)
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(e) = r else {
        // `MissingPathParams`: a handler mounted on a route without the
        // parameters it asks for, which is our bug, not the caller's.
        return ApiError::internal(r.body_text());
    };
    let (field, issue, message) = match e.kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => (
            key.clone(),
            FieldIssue::InvalidFormat,
            format!("{key} is not valid UTF-8"),
        ),
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => (
            key.clone(),
            FieldIssue::InvalidFormat,
            format!("{key} must be a {expected_type}"),
        ),
        ErrorKind::DeserializeError { key, message, .. } => (
            key.clone(),
            FieldIssue::InvalidFormat,
            format!("{key}: {message}"),
        ),
        _ => ("path".to_owned(), FieldIssue::InvalidFormat, e.body_text()),
    };
    ValidationErrors::single(field, issue, message).into()
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ValidationErrors::single("query", FieldIssue::InvalidFormat, r.body_text()).into()
}
