//! One HTTP attempt at delivering a signed webhook, guarded against SSRF.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::redirect;

use crate::attempt::{Attempt, Deliver, DelivererConfig, SNIPPET_BYTES};
use crate::retry::parse_retry_after;
use crate::url_policy::{UrlPolicy, check_url, resolve_checked};

/// Longest `Location` quoted in a redirect's error message; it is the receiver's text.
const MAX_LOCATION_CHARS: usize = 256;

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// The HTTP client could not be set up (the TLS backend failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("could not build the webhook HTTP client: {0}")]
pub struct BuildError(#[source] reqwest::Error);

/// Sends webhook POSTs. Cheap to share (`Arc` or `&`): it holds one connection pool.
///
/// The guards, in order: the URL is checked again on every attempt (the rules may have
/// tightened since the endpoint was created, and IP literals never reach a resolver);
/// host names are resolved by a resolver that refuses non-public answers, so a name
/// that now points at 127.0.0.1 gets no connection at all; redirects are not followed
/// (a 3xx is a failure), because following one would reach a URL nobody checked; no
/// proxy is used, so the address checked is the address connected to; the response body
/// is read only up to a cap; one deadline covers everything.
pub struct Deliverer {
    client: reqwest::Client,
    config: DelivererConfig,
}

impl Deliverer {
    pub fn new(config: DelivererConfig) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: config.policy,
            }))
            .https_only(!config.policy.allow_http)
            .referer(false)
            .user_agent(config.user_agent.clone())
            .timeout(config.timeout)
            .build()
            .map_err(BuildError)?;
        Ok(Self { client, config })
    }

    pub fn config(&self) -> &DelivererConfig {
        &self.config
    }

    /// One POST attempt. Never panics and never returns an error: every failure is an
    /// [`Attempt`] with `error` set, so the caller records it and schedules a retry.
    pub async fn deliver(
        &self,
        url: &str,
        msg_id: &str,
        timestamp: i64,
        signature_header: &str,
        body: Bytes,
    ) -> Attempt {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let url = match check_url(url, &self.config.policy) {
            Ok(url) => url,
            Err(rejection) => return failed(started, format!("URL refused: {rejection}")),
        };
        let headers = match webhook_headers(msg_id, timestamp, signature_header) {
            Ok(headers) => headers,
            Err(e) => return failed(started, e),
        };
        let send = self.client.post(url).headers(headers).body(body).send();
        let mut response = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => return failed(started, self.timed_out("waiting for a response")),
            Ok(Err(e)) if e.is_timeout() => {
                return failed(started, self.timed_out("waiting for a response"));
            }
            Ok(Err(e)) => return failed(started, describe(e)),
            Ok(Ok(response)) => response,
        };

        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut error = status.is_redirection().then(|| {
            let location = response
                .headers()
                .get(header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            match location {
                Some(loc) => format!(
                    "redirect not followed (Location: {})",
                    truncate_chars(&loc, MAX_LOCATION_CHARS)
                ),
                None => "redirect not followed".to_owned(),
            }
        });

        // Read in chunks and keep only the snippet: memory stays at one chunk plus
        // SNIPPET_BYTES however large the body, and dropping `response` afterwards
        // closes the connection instead of draining the rest.
        let mut snippet = Vec::with_capacity(SNIPPET_BYTES);
        let mut read = 0usize;
        while read < self.config.max_response_bytes {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    read = read.saturating_add(chunk.len());
                    let room = SNIPPET_BYTES - snippet.len();
                    snippet.extend_from_slice(&chunk[..room.min(chunk.len())]);
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    let reason = if e.is_timeout() {
                        self.timed_out("reading the response body")
                    } else {
                        format!("reading the response body failed: {}", describe(e))
                    };
                    error.get_or_insert(reason);
                    break;
                }
                Err(_) => {
                    error.get_or_insert(self.timed_out("reading the response body"));
                    break;
                }
            }
        }
        drop(response);

        Attempt {
            status_code: Some(status.as_u16()),
            duration: started.elapsed(),
            error,
            retry_after,
            response_snippet: snippet_text(&snippet),
        }
    }

    fn timed_out(&self, during: &str) -> String {
        format!("timed out after {:?} {during}", self.config.timeout)
    }
}

#[async_trait::async_trait]
impl Deliver for Deliverer {
    async fn deliver(
        &self,
        url: &str,
        msg_id: &str,
        timestamp: i64,
        signature_header: &str,
        body: Bytes,
    ) -> Attempt {
        Deliverer::deliver(self, url, msg_id, timestamp, signature_header, body).await
    }
}

fn failed(started: Instant, error: String) -> Attempt {
    Attempt {
        status_code: None,
        duration: started.elapsed(),
        error: Some(error),
        retry_after: None,
        response_snippet: None,
    }
}

fn webhook_headers(
    msg_id: &str,
    timestamp: i64,
    signature_header: &str,
) -> Result<HeaderMap, String> {
    let value = |name: &HeaderName, v: &str| {
        HeaderValue::from_str(v).map_err(|_| format!("invalid {name} header value"))
    };
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(WEBHOOK_ID, value(&WEBHOOK_ID, msg_id)?);
    headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
    headers.insert(
        WEBHOOK_SIGNATURE,
        value(&WEBHOOK_SIGNATURE, signature_header)?,
    );
    Ok(headers)
}

/// The error and its causes on one line, without the URL: reqwest's top-level message
/// ("error sending request") says little, the cause ("connection refused", or our
/// resolver's refusal) is what an endpoint owner needs.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn snippet_text(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    // A multi-byte character cut at the snippet's end is dropped rather than shown as
    // a replacement character.
    let end = match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => bytes.len(),
    };
    Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// reqwest's DNS hook: resolves like `check_url_resolving` and fails the connection
/// when any answer is non-public. Because hyper connects only to what this returns, a
/// rebinding answer never gets a socket opened to it.
struct GuardedResolver {
    policy: UrlPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest substitutes the URL's port.
            let addrs = resolve_checked(&host, 0, &policy).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_loopback() {
        let resolver = GuardedResolver {
            policy: UrlPolicy {
                allow_http: true,
                allow_private: false,
            },
        };
        let name = Name::from_str("localhost").expect("valid name");
        let Err(err) = resolver.resolve(name).await else {
            panic!("localhost must be refused");
        };
        assert!(
            err.to_string()
                .starts_with("host must resolve to a public address (localhost resolved to "),
            "{err}"
        );
    }

    #[tokio::test]
    async fn resolver_allows_loopback_when_private_is_allowed() {
        let resolver = GuardedResolver {
            policy: UrlPolicy {
                allow_http: true,
                allow_private: true,
            },
        };
        let name = Name::from_str("localhost").expect("valid name");
        let addrs: Vec<_> = match resolver.resolve(name).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => panic!("localhost should resolve: {e}"),
        };
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn snippet_drops_a_cut_multibyte_character_but_keeps_invalid_bytes_visible() {
        assert_eq!(snippet_text(b""), None);
        assert_eq!(snippet_text("ok é".as_bytes()).as_deref(), Some("ok é"));
        let cut = &"abé".as_bytes()[..3];
        assert_eq!(snippet_text(cut).as_deref(), Some("ab"));
        assert_eq!(snippet_text(b"a\xffb").as_deref(), Some("a\u{fffd}b"));
    }

    #[test]
    fn truncate_chars_counts_characters() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }

    #[test]
    fn header_values_are_validated_not_unwrapped() {
        assert!(webhook_headers("msg_1", 1, "v1,abc").is_ok());
        assert_eq!(
            webhook_headers("msg\n1", 1, "v1,abc").unwrap_err(),
            "invalid webhook-id header value"
        );
        assert_eq!(
            webhook_headers("msg_1", 1, "v1,\r\nx: y").unwrap_err(),
            "invalid webhook-signature header value"
        );
    }
}
