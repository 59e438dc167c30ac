//! The HTTP client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gengate_transport::{Method, Request, SharedTransport, StatusCode, TransportError};
use serde_json::Value;
use url::Url;

use crate::auth::{Clock, KlingCredentials, SystemClock, TokenSource};
use crate::error::{KlingError, is_auth_code};
use crate::types::{CreateVideo, Family, KlingTask};

/// Page size used when scanning the list endpoint.
pub const LIST_PAGE_SIZE: u32 = 30;
/// How many list pages [`KlingClient::find_by_external_id`] reads before giving up. A lost
/// create is seconds old and the list is newest first, so it sits on the first page; the
/// cap only bounds the cost on a busy account.
pub const DEFAULT_MAX_LIST_PAGES: u32 = 20;
/// API answers are small JSON; anything bigger is not an answer we understand.
const MAX_API_BODY_BYTES: u64 = 4 * 1024 * 1024;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// How much of an unexpected body is kept in an error.
const ERROR_BODY_SNIPPET: usize = 512;

/// A client for one Kling account. Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct KlingClient {
    base_url: Url,
    http: SharedTransport,
    tokens: Arc<TokenSource>,
    request_timeout: Duration,
    download_timeout: Duration,
    max_list_pages: u32,
    /// The account's name in our configuration, carried by every log line of a call.
    account: Arc<str>,
}

impl std::fmt::Debug for KlingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KlingClient")
            .field("base_url", &self.base_url.as_str())
            .field("access_key", &self.tokens.creds().access_key)
            .finish_non_exhaustive()
    }
}

impl KlingClient {
    /// `base_url` is e.g. `https://api-singapore.klingai.com` (a path prefix is kept, for
    /// proxies). The transport is the caller's so connection pools can be shared.
    pub fn new(base_url: Url, creds: KlingCredentials, http: SharedTransport) -> Self {
        Self {
            base_url,
            http,
            tokens: Arc::new(TokenSource::new(creds, Arc::new(SystemClock))),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            download_timeout: DEFAULT_DOWNLOAD_TIMEOUT,
            max_list_pages: DEFAULT_MAX_LIST_PAGES,
            account: Arc::from("default"),
        }
    }

    /// Names the account in this client's log lines (never its keys).
    pub fn with_account_name(mut self, name: &str) -> Self {
        self.account = Arc::from(name);
        self
    }

    /// The account's name in log lines.
    pub fn account_name(&self) -> &str {
        &self.account
    }

    /// Replaces the clock used for token claims and the token cache (starts a new cache).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        let creds = self.tokens.creds().clone();
        self.tokens = Arc::new(TokenSource::new(creds, clock));
        self
    }

    /// Timeout for each API call (create, get, list), whole answer included. Default 30 s.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Timeout for a whole download. Default 10 minutes.
    pub fn with_download_timeout(mut self, timeout: Duration) -> Self {
        self.download_timeout = timeout;
        self
    }

    /// How many list pages `find_by_external_id` reads at most. Default 20.
    pub fn with_max_list_pages(mut self, pages: u32) -> Self {
        self.max_list_pages = pages.max(1);
        self
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Submits a task. On [`KlingError::outcome_unknown`] the task may exist anyway: call
    /// [`KlingClient::find_by_external_id`] before submitting again.
    pub async fn create(&self, req: &CreateVideo) -> Result<KlingTask, KlingError> {
        let body = serde_json::to_vec(&req.body())
            .map_err(|e| KlingError::Config(format!("cannot encode the create body: {e}")))?;
        let data = self
            .call(
                Method::POST,
                &["v1", "videos", req.family.as_str()],
                &[],
                Some(Bytes::from(body)),
            )
            .await?;
        KlingTask::from_json(&data)
    }

    /// Queries one task under the family that created it.
    pub async fn get(&self, family: Family, task_id: &str) -> Result<KlingTask, KlingError> {
        let data = self
            .call(
                Method::GET,
                &["v1", "videos", family.as_str(), task_id],
                &[],
                None,
            )
            .await?;
        KlingTask::from_json(&data)
    }

    /// One page of a family's tasks (Kling lists newest first). `page_num` starts at 1.
    pub async fn list(
        &self,
        family: Family,
        page_num: u32,
        page_size: u32,
    ) -> Result<Vec<KlingTask>, KlingError> {
        self.list_raw(family, page_num, page_size)
            .await?
            .iter()
            .map(KlingTask::from_json)
            .collect()
    }

    async fn list_raw(
        &self,
        family: Family,
        page_num: u32,
        page_size: u32,
    ) -> Result<Vec<Value>, KlingError> {
        let data = self
            .call(
                Method::GET,
                &["v1", "videos", family.as_str()],
                &[
                    ("pageNum", page_num.to_string()),
                    ("pageSize", page_size.to_string()),
                ],
                None,
            )
            .await?;
        match data {
            Value::Array(items) => Ok(items),
            other => Err(KlingError::Malformed(format!(
                "list data is not an array: {}",
                snippet(other.to_string().as_bytes())
            ))),
        }
    }

    /// Finds the task created with `external_task_id`, paging through the list endpoint
    /// until it is found, a short page shows the list is exhausted, or the page cap is hit.
    /// `Ok(None)` after the cap is logged: the task, if it exists, is older than the pages
    /// read.
    pub async fn find_by_external_id(
        &self,
        family: Family,
        external_task_id: &str,
    ) -> Result<Option<KlingTask>, KlingError> {
        for page in 1..=self.max_list_pages {
            let items = self.list_raw(family, page, LIST_PAGE_SIZE).await?;
            for item in &items {
                // Match on the raw field first so one odd, unrelated list item cannot
                // break the reconciliation of ours.
                let ext = item
                    .get("task_info")
                    .and_then(|i| i.get("external_task_id"))
                    .and_then(Value::as_str);
                if ext == Some(external_task_id) {
                    return KlingTask::from_json(item).map(Some);
                }
            }
            if items.len() < LIST_PAGE_SIZE as usize {
                return Ok(None);
            }
        }
        tracing::warn!(
            account = %self.account,
            %family,
            external_task_id,
            pages = self.max_list_pages,
            "kling task not found within the page cap"
        );
        Ok(None)
    }

    /// Fetches a result file, streaming, and fails with [`KlingError::TooLarge`] past
    /// `max_bytes`. No Kling credentials are sent: result URLs are on a CDN.
    pub async fn download(&self, url: &str, max_bytes: u64) -> Result<Bytes, KlingError> {
        let url = Url::parse(url)
            .map_err(|e| KlingError::Malformed(format!("video url {url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(KlingError::Malformed(format!(
                "video url has scheme {:?}",
                url.scheme()
            )));
        }
        let answer = self
            .http
            .send(Request::get(url, self.download_timeout, max_bytes))
            .await
            .map_err(|e| match e {
                TransportError::TooLarge(_) => KlingError::TooLarge,
                other => transport_error(other),
            })?;
        if !answer.status.is_success() {
            return Err(KlingError::Http {
                http_status: answer.status.as_u16(),
                body: snippet(&answer.body),
            });
        }
        Ok(answer.body)
    }

    /// Sends one API call, minting a new token and retrying once when Kling refuses the
    /// token (1000–1004). Retrying a create here is safe: an auth refusal creates nothing.
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Bytes>,
    ) -> Result<Value, KlingError> {
        let url = self.endpoint(segments, query)?;
        let mut token = self.tokens.current()?;
        let mut retried = false;
        loop {
            let result = self.send_once(&method, &url, &token, body.clone()).await;
            match result {
                Err(KlingError::Api { code, .. }) if is_auth_code(code) && !retried => {
                    tracing::warn!(
                        code,
                        path = url.path(),
                        "kling refused the token; minting a new one and retrying once"
                    );
                    retried = true;
                    self.tokens.invalidate(&token);
                    token = self.tokens.current()?;
                }
                other => return other,
            }
        }
    }

    fn endpoint(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, KlingError> {
        let mut url = self.base_url.clone();
        {
            // Pushing segments (rather than formatting a string) percent-encodes a task id
            // that contains `/` or `?`, so it cannot reach another endpoint.
            let mut path = url.path_segments_mut().map_err(|()| {
                KlingError::Config(format!("base url {} cannot take a path", self.base_url))
            })?;
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        url.set_query(None);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        token: &str,
        body: Option<Bytes>,
    ) -> Result<Value, KlingError> {
        let answer = self
            .http
            .send(Request {
                method: method.clone(),
                url: url.clone(),
                bearer: Some(token.to_owned()),
                json: body,
                timeout: self.request_timeout,
                max_body: MAX_API_BODY_BYTES,
            })
            .await
            .map_err(|e| match e {
                TransportError::TooLarge(_) => {
                    KlingError::Malformed(format!("answer larger than {MAX_API_BODY_BYTES} bytes"))
                }
                other => transport_error(other),
            })?;
        let (status, raw) = (answer.status, answer.body);
        let result = parse_envelope(status, &raw);
        match &result {
            Ok(_) => {
                tracing::debug!(account = %self.account, %method, path = url.path(), "kling call succeeded")
            }
            Err(e) => {
                tracing::debug!(account = %self.account, %method, path = url.path(), error = %e, "kling call failed")
            }
        }
        result
    }
}

/// Decides an answer by its body `code`; the HTTP status matters only when there is no
/// envelope to read.
fn parse_envelope(status: StatusCode, raw: &[u8]) -> Result<Value, KlingError> {
    let no_envelope = |why: String| {
        if status.is_success() {
            KlingError::Malformed(format!("{why}: {}", snippet(raw)))
        } else {
            KlingError::Http {
                http_status: status.as_u16(),
                body: snippet(raw),
            }
        }
    };
    let value: Value = serde_json::from_slice(raw)
        .map_err(|e| no_envelope(format!("answer is not JSON ({e})")))?;
    let Some(obj) = value.as_object() else {
        return Err(no_envelope("answer is not a JSON object".into()));
    };
    let Some(code) = obj.get("code").and_then(Value::as_i64) else {
        return Err(no_envelope("answer has no integer code".into()));
    };
    let request_id = obj
        .get("request_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if code != 0 {
        let message = obj
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        return Err(KlingError::Api {
            http_status: status.as_u16(),
            code,
            message,
            request_id,
        });
    }
    match obj.get("data") {
        Some(data) if !data.is_null() => Ok(data.clone()),
        _ => Err(KlingError::Malformed(format!(
            "code 0 without data (request_id {})",
            request_id.as_deref().unwrap_or("-")
        ))),
    }
}

fn transport_error(e: TransportError) -> KlingError {
    match e {
        TransportError::Timeout => KlingError::Timeout,
        TransportError::Network(msg) => KlingError::Network(msg),
        TransportError::TooLarge(max) => {
            KlingError::Malformed(format!("answer larger than {max} bytes"))
        }
    }
}

fn snippet(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out: String = text.chars().take(ERROR_BODY_SNIPPET).collect();
    if text.chars().count() > ERROR_BODY_SNIPPET {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> KlingClient {
        KlingClient::new(
            Url::parse(base).expect("url"),
            KlingCredentials::new("a", "s"),
            std::sync::Arc::new(gengate_transport::Offline),
        )
    }

    #[test]
    fn endpoints_keep_a_base_path_and_encode_task_ids() {
        let c = client("https://proxy.test/kling/");
        let url = c
            .endpoint(&["v1", "videos", "text2video", "a/b?c"], &[])
            .expect("url");
        assert_eq!(
            url.as_str(),
            "https://proxy.test/kling/v1/videos/text2video/a%2Fb%3Fc"
        );
        let url = c
            .endpoint(
                &["v1", "videos", "image2video"],
                &[("pageNum", "2".into()), ("pageSize", "30".into())],
            )
            .expect("url");
        assert_eq!(
            url.as_str(),
            "https://proxy.test/kling/v1/videos/image2video?pageNum=2&pageSize=30"
        );
    }

    #[test]
    fn envelope_codes_decide_not_statuses() {
        let ok = parse_envelope(StatusCode::OK, br#"{"code":0,"data":{"x":1}}"#).expect("ok");
        assert_eq!(ok["x"], 1);
        let err = parse_envelope(
            StatusCode::OK,
            br#"{"code":1303,"message":"busy","request_id":"r1"}"#,
        )
        .expect_err("error code in a 200");
        assert_eq!(err.code(), Some(1303));
        assert_eq!(err.request_id(), Some("r1"));
    }

    #[test]
    fn envelope_less_bodies_are_malformed_or_http() {
        assert!(matches!(
            parse_envelope(StatusCode::OK, b"<html>"),
            Err(KlingError::Malformed(_))
        ));
        assert!(matches!(
            parse_envelope(StatusCode::OK, br#"{"code":0}"#),
            Err(KlingError::Malformed(_))
        ));
        assert!(matches!(
            parse_envelope(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>"),
            Err(KlingError::Http {
                http_status: 502,
                ..
            })
        ));
    }
}
