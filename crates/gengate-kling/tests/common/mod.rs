//! Shared test harness: a fake Kling with short timings, a client for it, and a tiny
//! callback receiver.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use gengate_kling::fake::{FakeConfig, FakeHandle, FakeKling};
use gengate_kling::{CreateVideo, Family, KlingClient, KlingTask};
use url::Url;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn fast_config() -> FakeConfig {
    FakeConfig {
        submitted_for: Duration::from_millis(40),
        processing_for: Duration::from_millis(120),
        ..FakeConfig::default()
    }
}

pub async fn fake() -> FakeHandle {
    fake_with(fast_config()).await
}

pub async fn fake_with(config: FakeConfig) -> FakeHandle {
    FakeKling::start(config).await.expect("fake kling starts")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .build()
        .expect("reqwest client builds")
}

/// `http()` as the transport a `KlingClient` sends through.
pub fn transport() -> gengate_transport::SharedTransport {
    std::sync::Arc::new(gengate_transport::ReqwestTransport::new(http()))
}

pub fn client(fake: &FakeHandle) -> KlingClient {
    fake.client(http())
}

pub fn t2v(external_task_id: &str) -> CreateVideo {
    CreateVideo {
        version: &gengate_kling::versions::V3,
        family: Family::Text2Video,
        prompt: "a lighthouse at dusk, slow dolly in".into(),
        negative_prompt: None,
        mode: "pro".into(),
        duration_seconds: 5,
        sound: true,
        aspect_ratio: Some("16:9".into()),
        multi_shot: false,
        image: None,
        image_tail: None,
        callback_url: None,
        external_task_id: external_task_id.into(),
    }
}

pub fn i2v(external_task_id: &str) -> CreateVideo {
    CreateVideo {
        version: &gengate_kling::versions::V3,
        family: Family::Image2Video,
        prompt: "the cat turns its head".into(),
        negative_prompt: None,
        mode: "std".into(),
        duration_seconds: 10,
        sound: false,
        aspect_ratio: None,
        multi_shot: false,
        image: Some("https://images.test/first.png".into()),
        image_tail: None,
        callback_url: None,
        external_task_id: external_task_id.into(),
    }
}

/// Polls until the task satisfies `done`.
pub async fn wait_for(
    client: &KlingClient,
    family: Family,
    task_id: &str,
    done: impl Fn(&KlingTask) -> bool,
) -> KlingTask {
    let deadline = Instant::now() + WAIT;
    loop {
        let task = client.get(family, task_id).await.expect("task query");
        if done(&task) {
            return task;
        }
        assert!(Instant::now() < deadline, "task never got there: {task:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `cond` holds.
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Collects callback bodies POSTed to `/cb/{token}`.
pub struct CallbackReceiver {
    pub base: Url,
    pub received: Arc<Mutex<Vec<(String, Bytes)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CallbackReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

async fn receive(
    State(received): State<Received>,
    Path(token): Path<String>,
    body: Bytes,
) -> &'static str {
    received.lock().expect("lock").push((token, body));
    "ok"
}

impl CallbackReceiver {
    pub async fn start() -> Self {
        let received: Received = Arc::default();
        let app = Router::new()
            .route("/cb/{token}", post(receive))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Self {
            base: Url::parse(&format!("http://{addr}/")).expect("receiver url"),
            received,
            task,
        }
    }

    pub fn url_for(&self, token: &str) -> String {
        format!("{}cb/{token}", self.base)
    }

    pub fn bodies(&self) -> Vec<(String, Bytes)> {
        self.received.lock().expect("lock").clone()
    }
}
