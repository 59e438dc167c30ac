//! Fetching a vendor's output file: streamed and cut off at a size cap, so a wrong or
//! hostile URL cannot fill memory, and never with our credentials attached.

use bytes::Bytes;
use gengate_transport::{Request, Transport, TransportError};
use std::time::Duration;

/// One output download, whole body included.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Bigger than the cap: retrying fetches the same file, so this is final.
    #[error("the output is larger than {0} bytes")]
    TooLarge(u64),
    /// Not an http(s) URL: final.
    #[error("the output URL is not usable: {0}")]
    BadUrl(String),
    /// Network trouble, a timeout or a non-2xx answer: worth another try (a vendor may
    /// hand out a fresh URL on the next status query).
    #[error("fetching the output failed: {0}")]
    Transient(String),
}

pub async fn download(http: &dyn Transport, url: &str, max: u64) -> Result<Bytes, FetchError> {
    let parsed = url::Url::parse(url).map_err(|e| FetchError::BadUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FetchError::BadUrl(format!("scheme {:?}", parsed.scheme())));
    }
    // The transport refuses a declared length over the cap before a byte is read, and
    // an undeclared or lying one while streaming.
    let answer = http
        .send(Request::get(parsed, DOWNLOAD_TIMEOUT, max))
        .await
        .map_err(|e| match e {
            TransportError::TooLarge(_) => FetchError::TooLarge(max),
            other => FetchError::Transient(other.to_string()),
        })?;
    if !answer.status.is_success() {
        return Err(FetchError::Transient(format!("HTTP {}", answer.status)));
    }
    Ok(answer.body)
}
