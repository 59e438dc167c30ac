//! The node's image decode memory budget (docs/HARDENING.md, "Decode memory
//! budget"): concurrent uploads of a small PNG declaring 11000×11000 pixels
//! (~363 MB decoded each) are answered 201, 400 or 503 `server_busy` with
//! `Retry-After`, never all decoded at once. Before the budget, eight of them
//! were all accepted and the server's RSS reached 2.5 GB.
//!
//! The budget does not depend on the database engine, so these run on SQLite.

mod common;

use common::{Engine, TestApp};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::sync::OnceLock;

const SIDE: u32 = 11_000;

/// Made once per test binary: compressing 363 MB of zero rows takes a moment.
fn big_png() -> &'static [u8] {
    static PNG: OnceLock<Vec<u8>> = OnceLock::new();
    PNG.get_or_init(|| gengate_media::corpus::black_png(SIDE, SIDE))
}

async fn upload(app: &TestApp, key: &str, bytes: &[u8]) -> (u16, Option<String>, Value) {
    let form = Form::new().text("kind", "image").part(
        "file",
        Part::bytes(bytes.to_vec())
            .file_name("big.png")
            .mime_str("image/png")
            .expect("mime"),
    );
    let r = app
        .http
        .post(app.url("/api/v1/files"))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

fn assert_busy(status: u16, retry: &Option<String>, v: &Value) {
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "server_busy", "{v}");
    assert!(v["error"]["requestId"].is_string(), "{v}");
    let secs: u64 = retry
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After in seconds");
    assert!(secs >= 1, "{secs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_big_decodes_share_one_budget() {
    let png = big_png();
    assert!(png.len() < 1024 * 1024, "small on the wire: {}", png.len());
    // Room for one decode (~363 MB) at a time; a short wait.
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            "--max-decode-memory",
            "400000000",
            "--decode-wait-ms",
            "100",
        ],
    )
    .await;
    let (_, key) = app.account("decoder", 0).await;
    let budget = app.running.engine.files.decode_budget();
    let total = budget.total_bytes();

    // Deterministic first: while the budget is taken, an upload is 503
    // server_busy at once; returned, the same upload is accepted.
    let held = budget.reserve(total).await.expect("take the whole budget");
    let (status, retry, v) = upload(&app, &key, png).await;
    assert_busy(status, &retry, &v);
    drop(held);
    let (status, _, v) = upload(&app, &key, png).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(11_000), Some(11_000))
    );

    // Eight at once: never more decodes than the budget holds; every answer
    // is 201 or 503 server_busy with the envelope, never another 5xx.
    let answers = futures_util::future::join_all((0..8).map(|_| upload(&app, &key, png))).await;
    let mut accepted = 0;
    let mut busy = 0;
    for (status, retry, v) in &answers {
        match status {
            201 => accepted += 1,
            _ => {
                assert_busy(*status, retry, v);
                busy += 1;
            }
        }
    }
    assert!(accepted >= 1, "the first one in always gets the budget");
    assert!(
        busy >= 1,
        "eight ~363 MB decodes cannot all fit a 400 MB budget within 100 ms each"
    );
    assert_eq!(
        budget.available_bytes(),
        total,
        "every reservation returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_whose_decode_alone_exceeds_the_budget_is_refused_not_queued() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            "--max-decode-memory",
            &(256u64 << 20).to_string(),
            "--decode-wait-ms",
            "600000",
        ],
    )
    .await;
    let (_, key) = app.account("decoder", 0).await;
    let started = std::time::Instant::now();
    let answers =
        futures_util::future::join_all((0..4).map(|_| upload(&app, &key, big_png()))).await;
    for (status, _, v) in &answers {
        assert_eq!(*status, 400, "{v}");
        assert_eq!(v["error"]["code"], "validation_failed");
        assert_eq!(v["error"]["details"][0]["field"], "file");
        assert_eq!(v["error"]["details"][0]["issue"], "too_large");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "refused from the header, not after the 10-minute wait"
    );
    let files = gengate_store::testing::raw_count(&app.database_url, "SELECT COUNT(*) FROM files")
        .await
        .expect("count");
    assert_eq!(files, 0);
}

/// The sandbox decodes a task's reference images under the same budget: while
/// it is taken the job is retried (transient), never decoded past it; once
/// returned, the task succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reference_decodes_in_the_runner_wait_for_the_budget() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &["--decode-wait-ms", "50", "--sandbox-concurrency", "1"],
    )
    .await;
    let (_, key) = app.account("runner", 1000).await;
    let (status, _, file) = upload(&app, &key, &gengate_media::corpus::png(400, 400)).await;
    assert_eq!(status, 201, "{file}");
    let budget = app.running.engine.files.decode_budget();
    let held = budget
        .reserve(budget.total_bytes())
        .await
        .expect("take the whole budget");
    let body = serde_json::json!({"model": "kling-3-0", "prompt": "budgeted",
        "params": {"mode": "std", "duration": "5",
                   "referenceMediaItems": [{"url": file["url"], "kind": "image"}]}});
    let task = app.post_json("/api/v1/generations", &key, &body).await;
    let id = task["id"].as_str().expect("task id").to_owned();
    // Leased, refused the budget, released with back-off, leased again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let attempts = gengate_store::testing::raw_count(
            &app.database_url,
            &format!("SELECT COALESCE(MAX(attempts), -1) FROM jobs WHERE task_id = '{id}'"),
        )
        .await
        .expect("attempts");
        assert_ne!(attempts, -1, "the job ended while the budget was taken");
        if attempts >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job was not retried while the budget was taken"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let now = app
        .get_json(&format!("/api/v1/generations/{id}"), &key)
        .await;
    assert_ne!(now["status"], "succeeded", "decoded past the budget: {now}");
    drop(held);
    let done = app.wait_terminal(&key, &id, 120).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(budget.available_bytes(), budget.total_bytes());
}
