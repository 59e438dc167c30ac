//! The client, its configuration, and the one place requests are sent and
//! retried.

use crate::error::{ApiError, Error, ErrorCode, Result};
use crate::retry::{self, RetryPolicy};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The default server: a gengate started with `gengate serve` on this machine.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";

/// A handle on one API server. Cheap to clone; clones share connections.
///
/// ```no_run
/// # async fn f() -> gengate_client::Result<()> {
/// let client = gengate_client::Client::builder()
///     .base_url("http://127.0.0.1:8080")
///     .api_key("gg_live_…")
///     .build()?;
/// println!("{} credits", client.credits().await?.current_credits);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) api_key: Option<String>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Duration,
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    user_agent: String,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: None,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            user_agent: format!("gengate-client/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl ClientBuilder {
    /// The server, e.g. `http://127.0.0.1:8080` (default) or
    /// `https://api.example.com`. A path prefix is kept.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The API key (`gg_live_…`), sent as `Authorization: Bearer`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// How long one request may take (default 60 s). Long polls get their
    /// wait added on top.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The retry policy (default: 3 retries, 0.5 s doubling to 8 s, jittered).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Shorthand for a policy with this many retries.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.retry.max_retries = n;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<Client> {
        let mut base = Url::parse(self.base_url.trim())
            .map_err(|e| Error::Config(format!("base URL {:?}: {e}", self.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "base URL {:?} must be http or https",
                self.base_url
            )));
        }
        // Joining relative paths needs a trailing slash on the prefix.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        if let Some(k) = &self.api_key
            && HeaderValue::from_str(&format!("Bearer {k}")).is_err()
        {
            return Err(Error::Config(
                "the API key contains characters that cannot be sent in a header".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                api_key: self.api_key.filter(|k| !k.is_empty()),
                retry: self.retry,
                timeout: self.timeout,
            }),
        })
    }
}

/// The body of one request; rebuilt for every attempt.
pub(crate) enum Body {
    None,
    Json(serde_json::Value),
    Multipart(Box<dyn Fn() -> reqwest::multipart::Form + Send + Sync>),
}

/// One logical API call (any number of attempts).
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Body,
    pub(crate) idempotency_key: Option<String>,
    /// Extra time on top of the client's timeout (long polls).
    pub(crate) extra_timeout: Duration,
}

impl Call {
    pub(crate) fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
            idempotency_key: None,
            extra_timeout: Duration::ZERO,
        }
    }

    pub(crate) fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub(crate) fn query(mut self, k: &str, v: impl ToString) -> Self {
        self.query.push((k.to_owned(), v.to_string()));
        self
    }

    pub(crate) fn query_opt(self, k: &str, v: Option<impl ToString>) -> Self {
        match v {
            Some(v) => self.query(k, v),
            None => self,
        }
    }

    pub(crate) fn json(mut self, v: serde_json::Value) -> Self {
        self.body = Body::Json(v);
        self
    }

    pub(crate) fn idempotent(mut self, key: String) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Repeating it cannot do the work twice.
    fn safe_to_repeat(&self) -> bool {
        self.method != Method::POST || self.idempotency_key.is_some()
    }
}

/// A fresh idempotency key: one per logical call, reused by its retries.
pub fn new_idempotency_key() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("gengate-client-{hex}")
}

impl Client {
    /// A builder with the defaults (server [`DEFAULT_BASE_URL`], no key).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client for `base_url` with `api_key` and the default settings.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Result<Self> {
        Self::builder().base_url(base_url).api_key(api_key).build()
    }

    /// A client configured from `GENGATE_URL` (default [`DEFAULT_BASE_URL`])
    /// and `GENGATE_API_KEY`.
    pub fn from_env() -> Result<Self> {
        let mut b = Self::builder();
        if let Ok(url) = std::env::var("GENGATE_URL") {
            b = b.base_url(url);
        }
        if let Ok(key) = std::env::var("GENGATE_API_KEY") {
            b = b.api_key(key);
        }
        b.build()
    }

    /// The server this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Whether an API key is configured.
    pub fn has_api_key(&self) -> bool {
        self.inner.api_key.is_some()
    }

    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.inner
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::Config(format!("path {path:?}: {e}")))
    }

    /// Sends a call, retrying what is safe to retry, and parses its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let (url, resp) = self.send(call).await?;
        let bytes = resp.bytes().await.map_err(|e| Error::Network {
            url: url.to_string(),
            attempts: 1,
            message: format!("reading the answer: {e}"),
            source: Some(e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url: url.to_string(),
            message: e.to_string(),
        })
    }

    /// Sends a call until it succeeds, fails for good, or runs out of retries.
    pub(crate) async fn send(&self, call: Call) -> Result<(Url, reqwest::Response)> {
        let mut url = self.url(&call.path)?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        let policy = &self.inner.retry;
        let mut retries = 0u32;
        // An attempt whose answer never arrived may still be running on the
        // server; a 409 for our own key then means "wait for it".
        let mut lost_an_answer = false;
        loop {
            let attempt = self.attempt(&call, &url).send().await;
            let (hint, failure) = match attempt {
                Ok(resp) if resp.status().is_success() => return Ok((url, resp)),
                Ok(resp) => {
                    let err = api_error(resp).await;
                    let own_key_busy = err.code == ErrorCode::IdempotencyConflict
                        && lost_an_answer
                        && call.idempotency_key.is_some();
                    if !(RetryPolicy::retryable_status(err.status) || own_key_busy) {
                        return Err(Error::Api(err));
                    }
                    (err.retry_after, Error::Api(err))
                }
                Err(e) => {
                    lost_an_answer = true;
                    let message = transport_message(&e);
                    (
                        None,
                        Error::Network {
                            url: url.to_string(),
                            attempts: retries + 1,
                            message,
                            source: Some(e),
                        },
                    )
                }
            };
            if retries >= policy.max_retries || !call.safe_to_repeat() {
                return Err(failure);
            }
            tokio::time::sleep(policy.delay(retries, hint, retry::jitter_unit())).await;
            retries += 1;
        }
    }

    fn attempt(&self, call: &Call, url: &Url) -> reqwest::RequestBuilder {
        let mut rb = self
            .inner
            .http
            .request(call.method.clone(), url.clone())
            .timeout(self.inner.timeout + call.extra_timeout);
        if let Some(k) = &self.inner.api_key {
            rb = rb.bearer_auth(k);
        }
        if let Some(k) = &call.idempotency_key {
            rb = rb.header("Idempotency-Key", k);
        }
        match &call.body {
            Body::None => rb,
            Body::Json(v) => rb.json(v),
            Body::Multipart(form) => rb.multipart(form()),
        }
    }
}

/// Reads an error answer into an [`ApiError`].
pub(crate) async fn api_error(resp: reqwest::Response) -> ApiError {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let request_id = header_string(&headers, "x-request-id");
    let hint = if status == StatusCode::TOO_MANY_REQUESTS.as_u16() || status == 503 {
        retry::server_delay(&headers, SystemTime::now())
    } else {
        None
    };
    let body = resp.bytes().await.unwrap_or_default();
    ApiError::from_parts(status, request_id, hint, &body)
}

fn header_string(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A short description of a transport failure, with its innermost cause
/// (reqwest's own message alone is often just "error sending request").
pub(crate) fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = src {
        last = Some(s.to_string());
        src = s.source();
    }
    if let Some(l) = last
        && !msg.contains(&l)
    {
        msg = format!("{msg}: {l}");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_fresh_and_valid_header_values() {
        let a = new_idempotency_key();
        let b = new_idempotency_key();
        assert_ne!(a, b);
        assert!(a.len() <= 255 && a.chars().all(|c| c.is_ascii_graphic()));
    }

    #[test]
    fn only_repeatable_calls_are_retried() {
        assert!(Call::get("x").safe_to_repeat());
        assert!(!Call::new(Method::POST, "x").safe_to_repeat());
        assert!(
            Call::new(Method::POST, "x")
                .idempotent("k".into())
                .safe_to_repeat()
        );
        assert!(Call::new(Method::PATCH, "x").safe_to_repeat());
    }

    #[test]
    fn base_url_keeps_its_prefix() {
        let c = Client::builder()
            .base_url("http://h:1/prefix")
            .build()
            .unwrap();
        assert_eq!(
            c.url("/api/v1/models").unwrap().as_str(),
            "http://h:1/prefix/api/v1/models"
        );
        assert!(Client::builder().base_url("ftp://h").build().is_err());
        assert!(Client::builder().base_url("not a url").build().is_err());
    }
}
