//! Fetching a vendor's output file: streamed and cut off at a size cap, so a wrong or
//! hostile URL cannot fill memory, and never with our credentials attached.

use bytes::{Bytes, BytesMut};
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

/// A client for output downloads. Redirects are followed (CDNs use them) but limited.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .connect_timeout(Duration::from_secs(10))
        .build()
        // Building only fails when the TLS backend cannot start; an empty default client
        // then fails every download, which the runner reports and retries.
        .unwrap_or_default()
}

pub async fn download(http: &reqwest::Client, url: &str, max: u64) -> Result<Bytes, FetchError> {
    let parsed = url::Url::parse(url).map_err(|e| FetchError::BadUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FetchError::BadUrl(format!("scheme {:?}", parsed.scheme())));
    }
    let mut resp = http
        .get(parsed)
        .timeout(DOWNLOAD_TIMEOUT)
        .send()
        .await
        .map_err(|e| FetchError::Transient(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(FetchError::Transient(format!("HTTP {}", resp.status())));
    }
    // A declared length over the cap fails before a byte is read; an undeclared or lying
    // one is caught while streaming.
    if resp.content_length().is_some_and(|len| len > max) {
        return Err(FetchError::TooLarge(max));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FetchError::Transient(e.to_string()))?
    {
        if buf.len() as u64 + chunk.len() as u64 > max {
            return Err(FetchError::TooLarge(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
