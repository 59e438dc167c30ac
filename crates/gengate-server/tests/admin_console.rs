//! The operator console at `/admin/` in a real browser (issue 22): headless Chromium
//! driven by Playwright (`tests/admin_console/browser.py`) against the real server on
//! a loopback port (SQLite, sandbox provider), signed in as an admin and as a viewer.
//! Screenshots of every page, desktop and phone width, go to
//! `target/admin-screenshots/`; with `GENGATE_UPDATE_SCREENSHOTS=1` they replace the
//! committed ones in `docs/admin/`.

mod common;

use common::{Engine, TestApp, browser};
use gengate_core::operator::OperatorRole;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_console_works_in_a_real_browser() {
    if !browser::available("operator console browser test") {
        return;
    }
    let app = TestApp::spawn_with(Engine::Sqlite, &[]).await;
    let admin = app.operator("ops", OperatorRole::Admin).await;
    let viewer = app.operator("auditor", OperatorRole::Viewer).await;
    // Another customer with history, so the cross-account views have more than one.
    let (_, other) = app.account("initech", 1000).await;
    let r = app
        .http
        .post(app.url("/api/v1/generations"))
        .bearer_auth(&other)
        .header("idempotency-key", "other-1")
        .json(&serde_json::json!({"model": "kling-3-0", "prompt": "fails [sandbox:fail]"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 202);
    let shots = browser::shots_dir("admin");
    let work = tempfile::tempdir().expect("tempdir");
    browser::run(
        "admin_console/browser.py",
        vec![
            app.base.clone(),
            admin,
            viewer,
            other,
            work.path().display().to_string(),
            shots.display().to_string(),
        ],
    )
    .await;
    app.assert_ledger_balances().await;
}

/// The console's pages and files carry the security headers; any path under /admin/
/// is the console (its router draws its own not-found page), never the API's JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_console_files_are_served_with_strict_headers() {
    let app = TestApp::spawn_with(Engine::Sqlite, &["--no-runner"]).await;
    for path in [
        "/admin",
        "/admin/",
        "/admin/accounts/acct_x",
        "/admin/settings",
        "/console/admin/js/main.js",
        "/console/admin/vendor/uPlot.iife.min.js",
        "/console/admin/vendor/uPlot.LICENSE",
    ] {
        let body = browser::assert_served_strictly(&app, path).await;
        if path.starts_with("/admin") {
            assert!(body.contains("/console/admin/js/main.js"), "{path}");
        }
    }
    // The admin API keeps its envelope next to the console.
    let r = app
        .http
        .get(app.url("/api/admin/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "operator_key_invalid");
}
