//! [`Transport`] on reqwest (rustls, system roots).

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::{Answer, MAX_ERROR_BODY_BYTES, Request, Transport, TransportError};

/// reqwest behind [`Transport`]. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Wraps a client the caller configured.
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// For API calls (Kling): a 10 s connect timeout, reqwest's default redirect rules.
    pub fn api() -> Result<Self, TransportError> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map(Self::new)
            .map_err(|e| TransportError::Network(chain(&e)))
    }

    /// For downloads of vendor outputs: redirects followed (CDNs use them) but at most 5.
    pub fn downloads() -> Result<Self, TransportError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(5))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map(Self::new)
            .map_err(|e| TransportError::Network(chain(&e)))
    }
}

#[async_trait::async_trait]
impl Transport for ReqwestTransport {
    async fn send(&self, request: Request) -> Result<Answer, TransportError> {
        let Request {
            method,
            url,
            bearer,
            json,
            timeout,
            max_body,
        } = request;
        let mut req = self.client.request(method, url).timeout(timeout);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = json {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let mut resp = req.send().await.map_err(error)?;
        let status = resp.status();
        let cap = if status.is_success() {
            // A declared length over the cap fails before a byte is read; an undeclared
            // or lying one is caught while streaming.
            if resp.content_length().is_some_and(|len| len > max_body) {
                return Err(TransportError::TooLarge(max_body));
            }
            Some(max_body)
        } else {
            None
        };
        let mut buf = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(error)? {
            let room = cap.unwrap_or(MAX_ERROR_BODY_BYTES) - buf.len() as u64;
            if chunk.len() as u64 > room {
                match cap {
                    Some(max) => return Err(TransportError::TooLarge(max)),
                    None => {
                        // `room` < chunk.len(), so it fits a usize.
                        buf.extend_from_slice(&chunk[..room as usize]);
                        break;
                    }
                }
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            body: Bytes::from(buf),
        })
    }
}

fn error(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout
    } else {
        TransportError::Network(chain(&e))
    }
}

/// reqwest's own message is only "error sending request"; the cause is in the chain.
fn chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
