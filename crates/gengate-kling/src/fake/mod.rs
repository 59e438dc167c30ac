//! A fake Kling server for tests and local development (`gengate dev fake-kling`).
//!
//! It speaks the protocol of `shared/spec/UPSTREAM-KLING.md`: the same endpoints, envelope,
//! field names, JWT rules and error codes, with the HTTP statuses of the spec's table.
//! Tasks move `submitted → processing → succeed` on a timer and every change is POSTed
//! (the bare task object) to the task's `callback_url`. Finished videos are served from
//! `GET /files/{id}.mp4`. `GET /fake/completions` (not Kling's) lists every task with
//! when it finished, for the callback bench.
//!
//! Where the spec is unsure, the fake picks the strict side so our own regressions show up
//! (see [`FakeConfig::strict`]):
//! - `aspect_ratio` on image2video is refused with 1201 (real Kling may ignore it);
//! - a duplicate `external_task_id` is refused with 1201 (HTTP 400) and creates nothing;
//! - an unknown task id, or a task asked for under the other family, is 1203 (HTTP 404);
//! - images are checked for form only (URL, or base64 without a `data:` prefix), not
//!   decoded;
//! - a callback is tried once, with no retry.
//!
//! Prompt markers, for end-to-end runs where the test cannot reach the handle (like a
//! payment sandbox's test cards): a prompt containing `[fake:reject]` is refused with 1301;
//! one containing `[fake:moderation]` is accepted and then fails with a moderation message.

mod routes;
mod server;
mod state;
mod validate;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use url::Url;

use crate::auth::KlingCredentials;
use crate::client::KlingClient;
use crate::types::Family;
use state::{Callback, Shared, Status};

/// A prompt containing this is refused at create with 1301 (content safety).
pub const PROMPT_REJECT: &str = "[fake:reject]";
/// A prompt containing this is accepted, then fails at the end of processing.
pub const PROMPT_MODERATION: &str = "[fake:moderation]";
/// The `task_status_msg` of a task failed by [`PROMPT_MODERATION`].
pub const MODERATION_MESSAGE: &str = "Failure to pass the risk control system";
/// What `GET /files/{id}.mp4` serves unless the test sets real bytes.
pub const DEFAULT_VIDEO_BYTES: &[u8] = b"FAKE-KLING-MP4\x00not a real video";

/// How the fake starts. Everything here except the keys can be changed later on the
/// handle.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The one account the fake knows: the `iss` it accepts and the secret it verifies with.
    pub access_key: String,
    pub secret_key: String,
    /// Tasks that may be submitted or processing at once; one more is refused with 1303.
    pub concurrency_limit: usize,
    /// How long a task stays `submitted`.
    pub submitted_for: Duration,
    /// How long a task stays `processing`.
    pub processing_for: Duration,
    /// The bytes of every result file.
    pub video_bytes: Bytes,
    /// Refuse, rather than default or ignore, what our contract says we never send (a
    /// missing `model_name`/`mode`/`duration`/`sound`, any `model_name` but `kling-v3`,
    /// `aspect_ratio` or images on the wrong family, `shot_type` without `multi_shot`).
    pub strict: bool,
    /// The base of result file URLs; defaults to the bound address (with 127.0.0.1 for an
    /// unspecified bind address).
    pub public_base_url: Option<Url>,
    /// Whether status changes are POSTed to `callback_url`.
    pub callbacks: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            access_key: "fake-access-key".into(),
            secret_key: "fake-secret-key".into(),
            concurrency_limit: 5,
            submitted_for: Duration::from_millis(200),
            processing_for: Duration::from_secs(1),
            video_bytes: Bytes::from_static(DEFAULT_VIDEO_BYTES),
            strict: true,
            public_base_url: None,
            callbacks: true,
        }
    }
}

impl FakeConfig {
    pub fn credentials(&self) -> KlingCredentials {
        KlingCredentials::new(self.access_key.clone(), self.secret_key.clone())
    }
}

/// Something to do to the next API request (create, query or list; not file downloads).
/// Faults queue up and are used one per request, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this Kling code with the HTTP status the spec's table gives it.
    Error(i64),
    /// Answer this Kling code with another HTTP status (Kling's statuses are secondary).
    ErrorWithStatus { http_status: u16, code: i64 },
    /// Answer without an envelope, as a proxy or load balancer would (e.g. a 502 page).
    Raw { http_status: u16, body: String },
    /// Do the work, then wait this long before answering.
    Slow(Duration),
    /// Close the connection without answering and without doing anything.
    Drop,
    /// Answer 200 with truncated JSON, without doing anything.
    Malformed,
    /// Do the work (a create really creates the task), then close the connection without
    /// answering.
    LostAnswer,
}

/// One API request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
}

/// A task as the fake holds it, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTask {
    pub task_id: String,
    pub family: Family,
    /// `submitted`, `processing`, `succeed` or `failed`.
    pub status: String,
    pub status_msg: String,
    pub external_task_id: Option<String>,
    pub callback_url: Option<String>,
    /// The create body that made it.
    pub create_body: Value,
}

/// Starts fake Kling servers.
pub struct FakeKling;

impl FakeKling {
    /// Serves on 127.0.0.1 with a free port; the server stops when the handle is dropped.
    pub async fn start(config: FakeConfig) -> io::Result<FakeHandle> {
        Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Serves on `addr`; the server stops when the handle is dropped.
    pub async fn bind(addr: SocketAddr, config: FakeConfig) -> io::Result<FakeHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let base_url = match &config.public_base_url {
            Some(url) => url.clone(),
            None => {
                let ip = match local.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                Url::parse(&format!("http://{}/", SocketAddr::new(ip, local.port())))
                    .map_err(io::Error::other)?
            }
        };
        let callback_http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(io::Error::other)?;
        let (callbacks_tx, callbacks_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(config, base_url, callbacks_tx));
        let (shutdown, shutdown_rx) = watch::channel(false);

        let tasks = vec![
            tokio::spawn(server::accept_loop(
                listener,
                routes::router(shared.clone()),
                shutdown_rx.clone(),
            )),
            tokio::spawn(progress_loop(shared.clone(), shutdown_rx.clone())),
            tokio::spawn(callback_loop(
                shared.clone(),
                callback_http,
                callbacks_rx,
                shutdown_rx,
            )),
        ];
        tracing::info!(base_url = %shared.base_url, "fake kling listening");
        Ok(FakeHandle {
            shared,
            addr: local,
            shutdown,
            tasks,
        })
    }

    /// Serves on `addr` until the returned future is dropped (for the CLI).
    pub async fn serve(addr: SocketAddr, config: FakeConfig) -> io::Result<()> {
        let _handle = Self::bind(addr, config).await?;
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// Progress is checked on a short tick rather than one timer per task so that holding,
/// forcing and changing the timings all act on one place.
async fn progress_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => shared.tick(),
            _ = shutdown.changed() => return,
        }
    }
}

/// Delivers callbacks one at a time, so a task's callbacks arrive in order.
async fn callback_loop(
    shared: Arc<Shared>,
    http: reqwest::Client,
    mut rx: mpsc::UnboundedReceiver<Callback>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let cb = tokio::select! {
            cb = rx.recv() => match cb {
                Some(cb) => cb,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        shared.callbacks_sent.fetch_add(1, Ordering::SeqCst);
        match http.post(&cb.url).json(&cb.body).send().await {
            Ok(resp) if resp.status().is_success() => {
                shared.callbacks_delivered.fetch_add(1, Ordering::SeqCst);
            }
            Ok(resp) => {
                tracing::debug!(url = %cb.url, status = %resp.status(), "fake kling: callback refused");
            }
            Err(e) => tracing::debug!(url = %cb.url, error = %e, "fake kling: callback failed"),
        }
    }
}

/// A running fake. Dropping it stops the server and its timers.
pub struct FakeHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeHandle {
    fn drop(&mut self) {
        // No receiver left only means everything already stopped.
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give a [`KlingClient`].
    pub fn base_url(&self) -> Url {
        self.shared.base_url.clone()
    }

    /// The key pair the fake accepts.
    pub fn credentials(&self) -> KlingCredentials {
        KlingCredentials::new(self.shared.access_key.clone(), self.shared.secret_key())
    }

    /// A client pointed at this fake with its credentials, sending through `http`.
    pub fn client(&self, http: reqwest::Client) -> KlingClient {
        KlingClient::new(
            self.base_url(),
            self.credentials(),
            std::sync::Arc::new(gengate_transport::ReqwestTransport::new(http)),
        )
    }

    /// The account's secret key from now on, as when an operator rotates the keys at
    /// Kling: tokens signed with any other secret are refused (1000). Tests use it to make
    /// a client with a wrong secret right again.
    pub fn set_secret_key(&self, secret: impl Into<String>) {
        self.shared.set_secret_key(secret.into());
    }

    /// Delay added before every API answer.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Queues a fault for the next API request not already claimed by an earlier fault.
    pub fn inject_fault(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Faults not yet used.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    /// Fails a submitted or processing task now, with `status_msg` (e.g. a moderation
    /// reason). False if the task is unknown or already finished.
    pub fn fail_task(&self, task_id: &str, status_msg: &str) -> bool {
        self.force(task_id, Status::Failed, status_msg)
    }

    /// Succeeds a submitted or processing task now. False if unknown or already finished.
    pub fn finish_task(&self, task_id: &str) -> bool {
        self.force(task_id, Status::Succeed, "")
    }

    fn force(&self, task_id: &str, status: Status, msg: &str) -> bool {
        let mut inner = self.shared.lock();
        let Some(&idx) = inner.by_id.get(task_id) else {
            return false;
        };
        if !inner.tasks[idx].status.is_active() {
            return false;
        }
        let cb = self.shared.transition(&mut inner, idx, status, msg);
        self.shared.queue_callback(cb);
        true
    }

    /// Freezes (true) or resumes (false) the timed progression of every task. Time keeps
    /// counting while frozen: on release, a task whose phase has run out moves on at once.
    pub fn hold_progress(&self, hold: bool) {
        self.shared.lock().hold = hold;
    }

    /// Changes how long tasks stay submitted and processing.
    pub fn set_timings(&self, submitted_for: Duration, processing_for: Duration) {
        let mut inner = self.shared.lock();
        inner.submitted_for = submitted_for;
        inner.processing_for = processing_for;
    }

    /// Switches callbacks off (false) or on (true).
    pub fn set_callbacks(&self, enabled: bool) {
        self.shared.lock().callbacks_enabled = enabled;
    }

    /// The bytes every result file serves from now on.
    pub fn set_video_bytes(&self, bytes: impl Into<Bytes>) {
        self.shared.lock().video_bytes = bytes.into();
    }

    /// Serve result files without a Content-Length, in chunks.
    pub fn set_chunked_files(&self, chunked: bool) {
        self.shared.lock().chunked_files = chunked;
    }

    /// Moves the fake's clock (for JWT checks only) by this many seconds.
    pub fn set_clock_skew_secs(&self, skew: i64) {
        self.shared.lock().clock_skew_secs = skew;
    }

    pub fn set_concurrency_limit(&self, limit: usize) {
        self.shared.lock().concurrency_limit = limit;
    }

    /// Refuses every create with `code` from now on (None: accept again), after auth and
    /// body checks, as Kling answers an account whose balance or resource pack ran out
    /// (1101/1102) or that has no access to the model (1103). Queries and lists still work,
    /// as they do at Kling.
    pub fn set_create_refusal(&self, code: Option<i64>) {
        self.shared.lock().create_refusal = code;
    }

    /// From now on every create is done (the task exists) and its connection closed
    /// without an answer: a sticky [`Fault::LostAnswer`] for creates only.
    pub fn set_drop_create_answers(&self, drop: bool) {
        self.shared.lock().drop_create_answers = drop;
    }

    /// How many API requests (create, query, list) reached the fake, faults included.
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Create requests that got past faults and auth, accepted or refused.
    pub fn creates_received(&self) -> usize {
        self.shared.lock().creates_received
    }

    /// The bodies of those creates, in order (a non-JSON body as a JSON string).
    pub fn create_bodies(&self) -> Vec<Value> {
        self.shared.lock().create_bodies.clone()
    }

    /// How many tasks exist with this `external_task_id` (0 or 1: duplicates are refused).
    pub fn tasks_by_external_id(&self, external_task_id: &str) -> usize {
        self.shared
            .lock()
            .tasks
            .iter()
            .filter(|t| t.external_task_id.as_deref() == Some(external_task_id))
            .count()
    }

    /// Tasks submitted or processing now.
    pub fn active_tasks(&self) -> usize {
        Shared::active_count(&self.shared.lock())
    }

    /// The most tasks that were submitted or processing at once.
    pub fn max_concurrent_observed(&self) -> usize {
        self.shared.lock().max_concurrent
    }

    /// Callbacks attempted.
    pub fn callbacks_sent(&self) -> usize {
        self.shared.callbacks_sent.load(Ordering::SeqCst)
    }

    /// Callbacks answered with a 2xx.
    pub fn callbacks_delivered(&self) -> usize {
        self.shared.callbacks_delivered.load(Ordering::SeqCst)
    }

    /// Every API request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every task, oldest first.
    pub fn tasks(&self) -> Vec<FakeTask> {
        let inner = self.shared.lock();
        inner
            .tasks
            .iter()
            .map(|t| self.shared.public_task(t))
            .collect()
    }

    pub fn task(&self, task_id: &str) -> Option<FakeTask> {
        let inner = self.shared.lock();
        let idx = *inner.by_id.get(task_id)?;
        inner.tasks.get(idx).map(|t| self.shared.public_task(t))
    }
}
