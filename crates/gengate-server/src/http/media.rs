//! `GET /media/{key}?expires=…&sig=…`: serves blobs behind signed, expiring
//! links, with single byte ranges so a browser `<video>` can seek.

use super::error::ApiError;
use super::extract::{Path, Query};
use crate::app::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gengate_core::error::ErrorCode;
use gengate_engine::infra::blobs::BlobError;
use std::collections::HashMap;
use std::ops::Range;

pub fn routes() -> Router<AppState> {
    Router::new().route("/media/{*key}", get(serve))
}

async fn serve(
    State(st): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (Some(exp), Some(sig)) = (q.get("expires"), q.get("sig")) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "this media link is not valid",
        ));
    };
    st.engine
        .links
        .check(&key, exp, sig)
        .map_err(|m| ApiError::new(ErrorCode::NotFound, m))?;
    let size = st.engine.blobs.size(&key).await.map_err(blob_error)?;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => match parse_range(r, size) {
            Some(r) => Some(r),
            None => {
                let mut resp = ApiError::new(
                    ErrorCode::RangeNotSatisfiable,
                    format!("the range {r:?} is outside the file ({size} bytes)"),
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp);
            }
        },
    };
    let read = st
        .engine
        .blobs
        .read(&key, range.clone())
        .await
        .map_err(blob_error)?;
    let mut resp = Response::new(Body::from_stream(read.stream));
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(mime_for(&key)),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    let len = read.range.end - read.range.start;
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            read.range.start,
            read.range.end.saturating_sub(1),
            read.size
        )) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

fn blob_error(e: BlobError) -> ApiError {
    match e {
        BlobError::NotFound => ApiError::new(ErrorCode::NotFound, "this media no longer exists"),
        BlobError::Unavailable(m) => {
            tracing::warn!(error = %m, "blob storage unavailable");
            ApiError::unavailable("storage is unavailable; retry shortly")
        }
    }
}

fn mime_for(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("mp4") => "video/mp4",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("mov") => "video/quicktime",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        Some("ogg") => "audio/ogg",
        Some("aac") => "audio/aac",
        Some("m4a") => "audio/mp4",
        _ => "application/octet-stream",
    }
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; several ranges are
/// answered with the first (allowed by RFC 9110).
pub fn parse_range(h: &str, size: u64) -> Option<Range<u64>> {
    let spec = h.trim().strip_prefix("bytes=")?.split(',').next()?.trim();
    let (a, b) = spec.split_once('-')?;
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size
        } else {
            b.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        start..end
    };
    (r.start < r.end && r.start < size).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(0..100));
        assert_eq!(parse_range("bytes=900-", 1000), Some(900..1000));
        assert_eq!(parse_range("bytes=-100", 1000), Some(900..1000));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some(990..1000));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
