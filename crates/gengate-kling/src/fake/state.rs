//! The fake's memory: tasks, counters and the knobs tests turn.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use url::Url;

use super::{FakeConfig, FakeTask, Fault, RecordedRequest};
use crate::types::Family;

/// A status change to POST to a task's `callback_url`.
pub(crate) struct Callback {
    pub url: String,
    pub body: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Submitted,
    Processing,
    Succeed,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::Processing => "processing",
            Status::Succeed => "succeed",
            Status::Failed => "failed",
        }
    }

    pub(crate) fn is_active(self) -> bool {
        matches!(self, Status::Submitted | Status::Processing)
    }
}

pub(crate) struct Task {
    pub task_id: String,
    pub family: Family,
    pub status: Status,
    pub status_msg: String,
    pub external_task_id: Option<String>,
    pub callback_url: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When the current status began, for timed progression.
    pub phase_since: Instant,
    pub duration_seconds: u32,
    /// Set by a `[fake:moderation]` prompt: the task fails when processing ends.
    pub fail_at_end: Option<String>,
    pub video_id: Option<String>,
    pub body: Value,
    /// When the task reached `succeed` or `failed`, in microseconds since the epoch: the
    /// start of the bench's "upstream finished → visible to a long poll" latency, finer
    /// than Kling's millisecond `updated_at`.
    pub finished_at_us: Option<i64>,
}

pub(crate) struct Inner {
    pub tasks: Vec<Task>,
    pub by_id: HashMap<String, usize>,
    pub next_seq: u64,
    pub faults: VecDeque<Fault>,
    pub latency: Duration,
    pub hold: bool,
    pub callbacks_enabled: bool,
    pub video_bytes: Bytes,
    pub chunked_files: bool,
    pub clock_skew_secs: i64,
    pub concurrency_limit: usize,
    /// Every create is refused with this code (after auth), as an account whose resource
    /// pack ran out (1102) or that lost model access (1103) answers.
    pub create_refusal: Option<i64>,
    /// Every create is done, then its connection closed without an answer.
    pub drop_create_answers: bool,
    pub submitted_for: Duration,
    pub processing_for: Duration,
    pub creates_received: usize,
    pub create_bodies: Vec<Value>,
    pub requests: Vec<RecordedRequest>,
    pub max_concurrent: usize,
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub access_key: String,
    /// Changeable, as when the account's keys are rotated at Kling.
    secret_key: std::sync::RwLock<String>,
    pub strict: bool,
    pub base_url: Url,
    pub callbacks_tx: mpsc::UnboundedSender<Callback>,
    pub callbacks_sent: AtomicUsize,
    pub callbacks_delivered: AtomicUsize,
    request_seq: AtomicU64,
}

pub(crate) fn now_us() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

pub(crate) fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

impl Shared {
    /// The secret tokens must be signed with now.
    pub(crate) fn secret_key(&self) -> String {
        match self.secret_key.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn set_secret_key(&self, secret: String) {
        match self.secret_key.write() {
            Ok(mut s) => *s = secret,
            Err(poisoned) => *poisoned.into_inner() = secret,
        }
    }

    pub(crate) fn new(
        config: FakeConfig,
        base_url: Url,
        callbacks_tx: mpsc::UnboundedSender<Callback>,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                tasks: Vec::new(),
                by_id: HashMap::new(),
                next_seq: 1,
                faults: VecDeque::new(),
                latency: Duration::ZERO,
                hold: false,
                callbacks_enabled: config.callbacks,
                video_bytes: config.video_bytes,
                chunked_files: false,
                clock_skew_secs: 0,
                concurrency_limit: config.concurrency_limit,
                create_refusal: None,
                drop_create_answers: false,
                submitted_for: config.submitted_for,
                processing_for: config.processing_for,
                creates_received: 0,
                create_bodies: Vec::new(),
                requests: Vec::new(),
                max_concurrent: 0,
            }),
            access_key: config.access_key,
            secret_key: std::sync::RwLock::new(config.secret_key),
            strict: config.strict,
            base_url,
            callbacks_tx,
            callbacks_sent: AtomicUsize::new(0),
            callbacks_delivered: AtomicUsize::new(0),
            request_seq: AtomicU64::new(1),
        }
    }

    /// The state is plain data, so a panic elsewhere cannot leave it half-updated in a way
    /// that matters to a test double: keep serving rather than poison every later call.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn next_request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
        format!("fake-{:x}-{n:06}", now_ms())
    }

    pub(crate) fn video_url(&self, video_id: &str) -> String {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .push("files")
                .push(&format!("{video_id}.mp4"));
        }
        url.to_string()
    }

    /// Hands a callback to the delivery worker.
    pub(crate) fn queue_callback(&self, cb: Option<Callback>) {
        if let Some(cb) = cb {
            // The worker only stops at shutdown, when nobody waits for callbacks any more.
            let _ = self.callbacks_tx.send(cb);
        }
    }

    pub(crate) fn task_json(&self, t: &Task) -> Value {
        let mut v = json!({
            "task_id": t.task_id,
            "task_status": t.status.as_str(),
            "task_status_msg": t.status_msg,
            "task_info": match &t.external_task_id {
                Some(ext) => json!({"external_task_id": ext}),
                None => json!({}),
            },
            "created_at": t.created_at_ms,
            "updated_at": t.updated_at_ms,
        });
        if t.status == Status::Succeed
            && let Some(video_id) = &t.video_id
        {
            v["task_result"] = json!({"videos": [{
                "id": video_id,
                "url": self.video_url(video_id),
                // Kling reports the real length as a string, a little over the request.
                "duration": format!("{}.041", t.duration_seconds),
            }]});
        }
        v
    }

    /// One line of the completion log (`GET /fake/completions`).
    pub(crate) fn completion_json(t: &Task) -> Value {
        json!({
            "task_id": t.task_id,
            "external_task_id": t.external_task_id,
            "status": t.status.as_str(),
            "created_at_ms": t.created_at_ms,
            "finished_at_us": t.finished_at_us,
        })
    }

    pub(crate) fn public_task(&self, t: &Task) -> FakeTask {
        FakeTask {
            task_id: t.task_id.clone(),
            family: t.family,
            status: t.status.as_str().to_owned(),
            status_msg: t.status_msg.clone(),
            external_task_id: t.external_task_id.clone(),
            callback_url: t.callback_url.clone(),
            create_body: t.body.clone(),
        }
    }

    /// Moves a task to `status` and returns the callback to send, if any.
    pub(crate) fn transition(
        &self,
        inner: &mut Inner,
        idx: usize,
        status: Status,
        msg: &str,
    ) -> Option<Callback> {
        let callbacks_enabled = inner.callbacks_enabled;
        let t = inner.tasks.get_mut(idx)?;
        t.status = status;
        t.status_msg = msg.to_owned();
        t.updated_at_ms = now_ms().max(t.updated_at_ms);
        t.phase_since = Instant::now();
        if !status.is_active() {
            t.finished_at_us = Some(now_us());
        }
        if status == Status::Succeed && t.video_id.is_none() {
            t.video_id = Some(format!("v{}", t.task_id));
        }
        self.callback_for(callbacks_enabled, &inner.tasks[idx])
    }

    pub(crate) fn callback_for(&self, enabled: bool, t: &Task) -> Option<Callback> {
        let url = t.callback_url.as_ref()?;
        enabled.then(|| Callback {
            url: url.clone(),
            body: self.task_json(t),
        })
    }

    /// Advances every task whose current phase has lasted long enough. Callbacks are
    /// queued under the lock so they leave in the order the changes happened.
    pub(crate) fn tick(&self) {
        let mut inner = self.lock();
        if inner.hold {
            return;
        }
        let (submitted_for, processing_for) = (inner.submitted_for, inner.processing_for);
        for idx in 0..inner.tasks.len() {
            let t = &inner.tasks[idx];
            let elapsed = t.phase_since.elapsed();
            let next = match t.status {
                Status::Submitted if elapsed >= submitted_for => {
                    Some((Status::Processing, String::new()))
                }
                Status::Processing if elapsed >= processing_for => Some(match &t.fail_at_end {
                    Some(msg) => (Status::Failed, msg.clone()),
                    None => (Status::Succeed, String::new()),
                }),
                _ => None,
            };
            if let Some((status, msg)) = next {
                let cb = self.transition(&mut inner, idx, status, &msg);
                self.queue_callback(cb);
            }
        }
    }

    pub(crate) fn active_count(inner: &Inner) -> usize {
        inner.tasks.iter().filter(|t| t.status.is_active()).count()
    }
}
