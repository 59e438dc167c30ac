//! Downloading results: streamed to a file or any writer (never held whole
//! in memory), resumed with `Range` where a connection broke.

use crate::client::{Client, api_error, transport_message};
use crate::error::{Error, Result};
use crate::retry;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use std::path::Path;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Where a download is: bytes written so far, and the total when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Bytes written so far.
    pub done: u64,
    /// The full size, when the server said.
    pub total: Option<u64>,
    /// How many times the transfer was resumed after a broken connection.
    pub resumes: u32,
}

impl Client {
    /// Downloads `url` (a signed result link) to `path`. The bytes go to a
    /// `.part` file next to it, renamed into place only when complete.
    /// Returns the size.
    pub async fn download_to_path(
        &self,
        url: &str,
        path: impl AsRef<Path>,
        on_progress: impl FnMut(DownloadProgress),
    ) -> Result<u64> {
        let path = path.as_ref();
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = std::path::PathBuf::from(part);
        let mut file = tokio::fs::File::create(&part)
            .await
            .map_err(|e| Error::io(format!("creating {}", part.display()), e))?;
        let result = self.download_to_writer(url, &mut file, on_progress).await;
        let result = match result {
            Ok(n) => file
                .sync_all()
                .await
                .map_err(|e| Error::io(format!("writing {}", part.display()), e))
                .map(|()| n),
            Err(e) => Err(e),
        };
        drop(file);
        match result {
            Ok(n) => {
                tokio::fs::rename(&part, path)
                    .await
                    .map_err(|e| Error::io(format!("renaming to {}", path.display()), e))?;
                Ok(n)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                Err(e)
            }
        }
    }

    /// Streams `url` into `out` (a file, stdout, a socket…). When the
    /// connection breaks, the transfer continues from the last byte written
    /// with a `Range` request; a server that ignores `Range` is handled by
    /// skipping what was already written. Returns the size.
    pub async fn download_to_writer<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        url: &str,
        out: &mut W,
        mut on_progress: impl FnMut(DownloadProgress),
    ) -> Result<u64> {
        let policy = &self.inner.retry;
        let mut done = 0u64;
        let mut total: Option<u64> = None;
        let mut resumes = 0u32;
        // Failures in a row without a byte of progress.
        let mut failures = 0u32;
        let network = |message: String, source, attempts| Error::Network {
            url: url.to_owned(),
            attempts,
            message,
            source,
        };
        loop {
            let mut req = self.inner.http.get(url);
            if done > 0 {
                req = req.header(RANGE, format!("bytes={done}-"));
            }
            let failure = match req.send().await {
                Err(e) => network(transport_message(&e), Some(e), failures + 1),
                Ok(resp) if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE && done > 0 => {
                    // Everything was already written.
                    return Ok(done);
                }
                Ok(resp) if !resp.status().is_success() => {
                    let err = api_error(resp).await;
                    if !retry::RetryPolicy::retryable_status(err.status) {
                        return Err(Error::Api(err));
                    }
                    Error::Api(err)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers();
                    let mut skip;
                    if status == StatusCode::PARTIAL_CONTENT {
                        let (start, size) =
                            content_range(headers.get(CONTENT_RANGE).and_then(|v| v.to_str().ok()))
                                .ok_or_else(|| Error::Decode {
                                    url: url.to_owned(),
                                    message: "206 without a usable Content-Range".into(),
                                })?;
                        if start > done {
                            return Err(Error::Decode {
                                url: url.to_owned(),
                                message: format!("asked for bytes from {done}, got from {start}"),
                            });
                        }
                        skip = done - start;
                        total = size.or(total);
                    } else {
                        // A full answer: skip what we already have.
                        skip = done;
                        total = headers
                            .get(CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .or(total);
                    }
                    on_progress(DownloadProgress {
                        done,
                        total,
                        resumes,
                    });
                    let mut body = resp.bytes_stream();
                    let mut broke = None;
                    while let Some(chunk) = body.next().await {
                        match chunk {
                            Ok(mut c) => {
                                if skip > 0 {
                                    let s = skip.min(c.len() as u64);
                                    skip -= s;
                                    c = c.slice(s as usize..);
                                }
                                if c.is_empty() {
                                    continue;
                                }
                                out.write_all(&c)
                                    .await
                                    .map_err(|e| Error::io("writing the download", e))?;
                                done += c.len() as u64;
                                failures = 0;
                                on_progress(DownloadProgress {
                                    done,
                                    total,
                                    resumes,
                                });
                            }
                            Err(e) => {
                                broke = Some(e);
                                break;
                            }
                        }
                    }
                    match (broke, total) {
                        (None, Some(t)) if done < t => network(
                            format!("the connection closed after {done} of {t} bytes"),
                            None,
                            failures + 1,
                        ),
                        (None, _) => {
                            out.flush()
                                .await
                                .map_err(|e| Error::io("writing the download", e))?;
                            return Ok(done);
                        }
                        (Some(e), _) => network(transport_message(&e), Some(e), failures + 1),
                    }
                }
            };
            if failures >= policy.max_retries {
                return Err(failure);
            }
            tokio::time::sleep(policy.delay(failures, None, retry::jitter_unit())).await;
            failures += 1;
            if done > 0 {
                resumes += 1;
            }
        }
    }
}

/// `Content-Range: bytes START-END/SIZE` → (START, SIZE); SIZE may be `*`.
fn content_range(v: Option<&str>) -> Option<(u64, Option<u64>)> {
    let rest = v?.trim().strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let size = match size.trim() {
        "*" => None,
        s => Some(s.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            content_range(Some("bytes 100-199/200")),
            Some((100, Some(200)))
        );
        assert_eq!(content_range(Some("bytes 0-9/*")), Some((0, None)));
        assert_eq!(content_range(Some("bytes */200")), None);
        assert_eq!(content_range(Some("items 0-1/2")), None);
        assert_eq!(content_range(None), None);
    }
}
