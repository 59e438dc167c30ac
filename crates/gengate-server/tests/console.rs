//! The web console in a real browser (issue 12): headless Chromium, driven by
//! Playwright (`tests/console/browser.py`), against the real server on a
//! loopback port (SQLite, sandbox provider) with a local webhook receiver.
//! Screenshots of every page, desktop and phone width, go to
//! `target/console-screenshots/`; with `GENGATE_UPDATE_SCREENSHOTS=1` they
//! replace the committed ones in `docs/console/` (so a test run does not leave
//! the working tree modified).
//!
//! Needs `python3 -m pip install playwright` and Debian's `chromium` (no
//! browser download); see `common/browser.rs`.

mod common;

use common::{Engine, TestApp, browser};

/// Answers 200 to every request: the webhook endpoint the test delivers to.
async fn receiver() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    format!("http://{addr}/hooks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_works_in_a_real_browser() {
    if !browser::available("console browser test") {
        return;
    }
    let app = TestApp::spawn_with(Engine::Sqlite, &["--webhook-allow-insecure"]).await;
    let (_, key) = app.account("console", 1000).await;
    let hook = receiver().await;
    let shots = browser::shots_dir("console");
    let work = tempfile::tempdir().expect("tempdir");
    browser::run(
        "console/browser.py",
        vec![
            app.base.clone(),
            key,
            hook,
            work.path().display().to_string(),
            shots.display().to_string(),
        ],
    )
    .await;
    app.assert_ledger_balances().await;
}

/// The console's pages and files carry the security headers, and the
/// API keeps its own answers (the console changes nothing under /api/v1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_are_served_with_strict_headers_and_etags() {
    let app = TestApp::spawn_with(Engine::Sqlite, &["--no-runner"]).await;
    for path in [
        "/",
        "/tasks",
        "/tasks/task_abc",
        "/credits",
        "/keys",
        "/webhooks",
        "/docs",
        "/console/js/main.js",
    ] {
        browser::assert_served_strictly(&app, path).await;
    }
    let r = app
        .http
        .get(app.url("/console/js/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app.http.get(app.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
}
