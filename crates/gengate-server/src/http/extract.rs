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

/// The query string; one that does not deserialise, or has a name or value
/// that is not UTF-8 once percent-decoded, is `validation_failed` (axum
/// would silently turn such bytes into U+FFFD and filter by that).
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
        if let Some(name) = parts.uri.query().and_then(first_non_utf8) {
            return Err(ValidationErrors::single(
                name.clone(),
                FieldIssue::InvalidFormat,
                format!("{name} is not valid UTF-8"),
            )
            .into());
        }
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

/// The (lossy) name of the first query pair whose name or value does not
/// percent-decode to UTF-8.
fn first_non_utf8(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |s: &str| std::str::from_utf8(&percent_decode(s)).is_err();
        (bad(name) || bad(value))
            .then(|| String::from_utf8_lossy(&percent_decode(name)).into_owned())
    })
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::first_non_utf8;

    #[test]
    fn query_pairs_that_are_not_utf8_are_named() {
        assert_eq!(
            first_non_utf8("limit=5&status=%FF%FE"),
            Some("status".into())
        );
        assert_eq!(first_non_utf8("%FF=1"), Some("\u{fffd}".into()));
        assert_eq!(first_non_utf8("a=%C3%A9&b=caf%C3%A9+x&c=%zz&d"), None);
        assert_eq!(first_non_utf8("a=%C3"), Some("a".into()));
    }
}
