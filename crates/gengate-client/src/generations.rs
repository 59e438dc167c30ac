//! Generation tasks: create, get, list (as a stream), and wait until a task
//! ends by long-polling.

use crate::client::{Call, Client, new_idempotency_key};
use crate::error::{Error, Result};
use crate::files::FileObject;
use crate::models::REFERENCE_ITEMS_KEY;
use futures_util::Stream;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// Where a task is. It only moves forward: queued → processing → succeeded | failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStatus {
    /// Accepted and charged; not started.
    Queued,
    /// Running.
    Processing,
    /// Done; `result` holds the media.
    Succeeded,
    /// Ended without a result; `error` says why and the credits were refunded.
    Failed,
    /// A status this SDK does not know (treated as not terminal).
    #[serde(other)]
    Unknown,
}

impl GenerationStatus {
    /// Whether the task has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for GenerationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Generation object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// `task_…`.
    pub id: String,
    /// Where the task is.
    pub status: GenerationStatus,
    /// The model id.
    pub model: String,
    /// Credits taken at creation.
    pub reserved_credits: i64,
    /// Credits finally charged: equal to `reserved_credits` on success, 0 otherwise.
    pub final_credits: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The media, once succeeded.
    #[serde(default)]
    pub result: Option<GenerationResult>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<TaskError>,
    /// The caller's own reference, echoed.
    #[serde(default)]
    pub client_request_id: Option<String>,
}

/// The outputs of a succeeded task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationResult {
    /// The main output's signed URL.
    pub primary_url: String,
    /// Every output's signed URL.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Every output, described.
    #[serde(default)]
    pub media: Vec<MediaItem>,
    /// When the signed URLs stop working; get the task again for fresh ones.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// One output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaItem {
    /// Signed URL.
    pub url: String,
    /// e.g. `video/mp4`.
    pub mime_type: String,
    /// Pixels.
    #[serde(default)]
    pub width: Option<u32>,
    /// Pixels.
    #[serde(default)]
    pub height: Option<u32>,
    /// Seconds.
    #[serde(default)]
    pub duration_seconds: Option<f64>,
    /// Bytes.
    #[serde(default)]
    pub size_bytes: u64,
    /// Whether there is an audio track.
    #[serde(default)]
    pub has_audio: bool,
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    /// `generation_failed`, `content_rejected`, `generation_timeout`,
    /// `upstream_unavailable`, `canceled`, …
    pub code: String,
    /// A sentence.
    #[serde(default)]
    pub message: String,
}

/// The body of `POST /api/v1/generations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateGeneration {
    /// The model id, e.g. `kling-3-0`.
    pub model: String,
    /// The prompt.
    pub prompt: String,
    /// Model parameters (see the model's `params`).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    /// Your own reference, echoed back and filterable in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
}

impl CreateGeneration {
    /// A request for `model` with `prompt` and no params.
    pub fn new(model: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            prompt: prompt.into(),
            params: Map::new(),
            client_request_id: None,
        }
    }

    /// Sets one param (`"duration"`, `"5"`).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// Adds an uploaded file as a reference (`params.referenceMediaItems`).
    pub fn reference(mut self, file: &FileObject) -> Self {
        let item = json!({"url": file.url, "kind": file.kind});
        match self.params.get_mut(REFERENCE_ITEMS_KEY) {
            Some(Value::Array(items)) => items.push(item),
            _ => {
                self.params
                    .insert(REFERENCE_ITEMS_KEY.to_owned(), Value::Array(vec![item]));
            }
        }
        self
    }

    /// Sets `client_request_id`.
    pub fn client_request_id(mut self, id: impl Into<String>) -> Self {
        self.client_request_id = Some(id.into());
        self
    }
}

/// Filters and paging of `GET /api/v1/generations`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListGenerations {
    /// Page size, 1..=100 (server default 20).
    pub limit: Option<u32>,
    /// List the tasks older than this task id.
    pub starting_after: Option<String>,
    /// Only tasks in this status.
    pub status: Option<GenerationStatus>,
    /// Only tasks with this `client_request_id`.
    pub client_request_id: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub data: Vec<T>,
    /// Whether there are more after the last one.
    pub has_more: bool,
}

/// How to wait for a task.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitOptions {
    /// How long each long poll is held by the server (1..=60 s; default 30 s).
    pub poll: Duration,
    /// Give up after this long (the task keeps running); `None` = never.
    pub timeout: Option<Duration>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(30),
            timeout: None,
        }
    }
}

/// `client.generations()`.
#[derive(Debug, Clone, Copy)]
pub struct Generations<'a> {
    client: &'a Client,
}

impl Client {
    /// Generation tasks.
    pub fn generations(&self) -> Generations<'_> {
        Generations { client: self }
    }
}

impl<'a> Generations<'a> {
    /// Creates a task. An `Idempotency-Key` is generated for this call and
    /// reused by its retries, so a retried create is never charged twice.
    pub async fn create(&self, req: &CreateGeneration) -> Result<Generation> {
        self.create_with_key(req, &new_idempotency_key()).await
    }

    /// Creates a task with your own `Idempotency-Key` (1..=255 printable
    /// ASCII): repeating the call with the same key and request returns the
    /// first answer, even across processes.
    pub async fn create_with_key(&self, req: &CreateGeneration, key: &str) -> Result<Generation> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(Error::InvalidInput(
                "an Idempotency-Key is 1 to 255 printable ASCII characters".into(),
            ));
        }
        let body = serde_json::to_value(req).map_err(|e| Error::InvalidInput(e.to_string()))?;
        self.client
            .json(
                Call::new(Method::POST, "api/v1/generations")
                    .json(body)
                    .idempotent(key.to_owned()),
            )
            .await
    }

    /// A task as it is now.
    pub async fn get(&self, id: &str) -> Result<Generation> {
        self.client.json(Call::get(task_path(id))).await
    }

    /// A task, held by the server until its status changes or `wait`
    /// (1..=60 s) passes — one long poll.
    pub async fn get_wait(&self, id: &str, wait: Duration) -> Result<Generation> {
        let secs = wait.as_secs().clamp(1, 60);
        let mut call = Call::get(task_path(id)).query("wait", secs);
        call.extra_timeout = Duration::from_secs(secs);
        self.client.json(call).await
    }

    /// A task, held by the server until it ends or `wait` (1..=60 s)
    /// passes (`?until=terminal`) — one long poll.
    pub async fn get_wait_terminal(&self, id: &str, wait: Duration) -> Result<Generation> {
        let secs = wait.as_secs().clamp(1, 60);
        let mut call = Call::get(task_path(id))
            .query("wait", secs)
            .query("until", "terminal");
        call.extra_timeout = Duration::from_secs(secs);
        self.client.json(call).await
    }

    /// Cancels a task: one still queued (or on the sandbox) ends as `failed`
    /// with `error.code = "canceled"` and a full refund; one already ended is
    /// returned as it is; one an upstream already runs is refused with
    /// `not_cancelable` (it will finish and be charged).
    pub async fn cancel(&self, id: &str) -> Result<Generation> {
        let path = format!("{}/cancel", task_path(id));
        self.client
            .json(Call::new(Method::POST, path).idempotent(new_idempotency_key()))
            .await
    }

    /// One page of the account's tasks, newest first.
    pub async fn list(&self, q: &ListGenerations) -> Result<Page<Generation>> {
        let call = Call::get("api/v1/generations")
            .query_opt("limit", q.limit)
            .query_opt("starting_after", q.starting_after.as_deref())
            .query_opt("status", q.status.map(GenerationStatus::as_str))
            .query_opt("client_request_id", q.client_request_id.as_deref());
        self.client.json(call).await
    }

    /// Every task matching `q`, newest first, fetching pages as the stream
    /// is read.
    pub fn list_all(&self, q: ListGenerations) -> impl Stream<Item = Result<Generation>> + 'a {
        let this = *self;
        paginate(
            q,
            move |q| async move { this.list(&q).await },
            |q, last| q.starting_after = Some(last.id.clone()),
        )
    }

    /// Waits until the task ends and returns it (`succeeded` or `failed`:
    /// check `status`). Long-polls again and again, not just until the
    /// next change.
    pub async fn wait(&self, id: &str, opts: &WaitOptions) -> Result<Generation> {
        self.wait_with(id, opts, |_| {}).await
    }

    /// [`wait`](Self::wait), calling `on_change` with the task whenever its
    /// status changes (and once at the start).
    pub async fn wait_with(
        &self,
        id: &str,
        opts: &WaitOptions,
        mut on_change: impl FnMut(&Generation),
    ) -> Result<Generation> {
        let started = Instant::now();
        let mut task = self.get(id).await?;
        on_change(&task);
        while !task.status.is_terminal() {
            let mut poll = opts.poll;
            if let Some(limit) = opts.timeout {
                let left = limit.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(Error::WaitTimeout {
                        task_id: id.to_owned(),
                        waited: started.elapsed(),
                    });
                }
                poll = poll.min(left.max(Duration::from_secs(1)));
            }
            // While queued, wait for the next change, so `on_change` sees
            // `processing`; from then on, for the end itself (a change-poll
            // could come back for nothing but a timeout many times over).
            let next = if task.status == GenerationStatus::Queued {
                self.get_wait(id, poll).await?
            } else {
                self.get_wait_terminal(id, poll).await?
            };
            if next.status != task.status {
                on_change(&next);
            }
            task = next;
        }
        Ok(task)
    }

    /// The task's status changes as a stream: its current state, then one
    /// item per change; the stream ends after the terminal state.
    pub fn updates(
        &self,
        id: &str,
        opts: WaitOptions,
    ) -> impl Stream<Item = Result<Generation>> + 'a {
        let this = *self;
        let id = id.to_owned();
        let started = Instant::now();
        futures_util::stream::try_unfold((None::<GenerationStatus>, false), move |(last, done)| {
            let id = id.clone();
            let opts = opts.clone();
            async move {
                if done {
                    return Ok(None);
                }
                loop {
                    if let Some(limit) = opts.timeout
                        && started.elapsed() >= limit
                    {
                        return Err(Error::WaitTimeout {
                            task_id: id,
                            waited: started.elapsed(),
                        });
                    }
                    let task = match last {
                        None => this.get(&id).await?,
                        Some(_) => this.get_wait(&id, opts.poll).await?,
                    };
                    if Some(task.status) != last {
                        let s = task.status;
                        return Ok(Some((task, (Some(s), s.is_terminal()))));
                    }
                }
            }
        })
    }

    /// Create, then wait until the task ends (Replicate's `run`).
    pub async fn run(&self, req: &CreateGeneration, opts: &WaitOptions) -> Result<Generation> {
        let task = self.create(req).await?;
        self.wait(&task.id, opts).await
    }
}

fn task_path(id: &str) -> String {
    format!("api/v1/generations/{}", crate::models::encode_segment(id))
}

/// Turns a page-fetching function into a stream of items.
pub(crate) fn paginate<'a, Q, T, F, Fut>(
    first: Q,
    fetch: F,
    advance: fn(&mut Q, &T),
) -> impl Stream<Item = Result<T>> + 'a
where
    Q: Clone + 'a,
    T: 'a,
    F: Fn(Q) -> Fut + Clone + 'a,
    Fut: std::future::Future<Output = Result<Page<T>>> + 'a,
{
    use futures_util::StreamExt;
    futures_util::stream::try_unfold(Some(first), move |next| {
        let fetch = fetch.clone();
        async move {
            let Some(q) = next else {
                return Ok(None);
            };
            let page = fetch(q.clone()).await?;
            let following = match page.data.last() {
                Some(last) if page.has_more => {
                    let mut q = q;
                    advance(&mut q, last);
                    Some(q)
                }
                _ => None,
            };
            Ok(Some((
                futures_util::stream::iter(page.data.into_iter().map(Ok)),
                following,
            )))
        }
    })
    .map(|r: Result<_>| match r {
        Ok(items) => items.left_stream(),
        Err(e) => futures_util::stream::once(async { Err(e) }).right_stream(),
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_and_unknown_ones_do_not_break() {
        let g: Generation = serde_json::from_value(json!({
            "id": "task_1", "status": "paused", "model": "m", "reserved_credits": 90,
            "final_credits": 0, "created_at": "t", "updated_at": "t", "result": null,
            "error": null, "client_request_id": null, "new_field": 1
        }))
        .unwrap();
        assert_eq!(g.status, GenerationStatus::Unknown);
        assert!(!g.status.is_terminal());
        assert!(GenerationStatus::Failed.is_terminal());
    }

    #[test]
    fn references_go_into_reference_media_items() {
        let f: FileObject = serde_json::from_value(json!({
            "id": "file_1", "kind": "image", "url": "http://x/media/a?sig=1",
            "mime_type": "image/png", "size_bytes": 1
        }))
        .unwrap();
        let r = CreateGeneration::new("m", "p")
            .param("duration", "5")
            .reference(&f)
            .reference(&f);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["params"]["referenceMediaItems"][1]["url"],
            "http://x/media/a?sig=1"
        );
        assert_eq!(v["params"]["referenceMediaItems"][0]["kind"], "image");
        assert!(v.get("client_request_id").is_none());
    }
}
