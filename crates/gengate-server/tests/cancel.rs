//! Cancel (issue 15): `POST /api/v1/generations/{id}/cancel` over real HTTP,
//! on SQLite and PostgreSQL — the refund, the webhook, the answers, and the
//! races against the runner (pickup, submit upstream, completion), where
//! exactly one side may win and the money must still add up.

mod common;

use common::{Engine, TestApp, audit_with_the_cli, kling};
use gengate_core::scope::Scope;
use gengate_kling::fake::{FakeConfig, FakeHandle, FakeKling};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_engines!(
    canceling_a_queued_task_refunds_it_once_and_sends_generation_failed,
    cancel_races_the_sandbox_runner_and_exactly_one_side_wins,
    a_task_kling_already_runs_is_not_cancelable_and_still_charged,
    cancel_races_the_kling_submit_and_never_leaves_an_unpaid_upstream_task,
);

const CANCEL: &str = "/cancel";

fn cancel_path(id: &str) -> String {
    format!("/api/v1/generations/{id}{CANCEL}")
}

async fn create(app: &TestApp, key: &str, prompt: &str) -> String {
    let r = app
        .post(
            "/api/v1/generations",
            key,
            &kling(
                prompt,
                json!({"mode": "std", "duration": 3, "aspect_ratio": "1:1"}),
            ),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn cancel(app: &TestApp, key: &str, id: &str) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(&cancel_path(id)))
        .bearer_auth(key)
        .send()
        .await
        .expect("cancel");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

/// Ledger rows of `kind` for one task.
async fn ledger_rows(app: &TestApp, task: &str, kind: &str) -> i64 {
    gengate_store::testing::raw_count(
        &app.database_url,
        &format!(
            "SELECT COUNT(*) FROM ledger_entries WHERE task_id = '{task}' AND kind = '{kind}'"
        ),
    )
    .await
    .expect("count")
}

async fn canceling_a_queued_task_refunds_it_once_and_sends_generation_failed(engine: Engine) {
    // No runner: the task stays queued until canceled.
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, key) = app.account("canceler", 900).await;
    let id = create(&app, &key, "to be canceled").await;
    assert_eq!(app.balance(&acc).await, 810);

    let (status, v) = cancel(&app, &key, &id).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error"]["code"], "canceled");
    assert_eq!(v["final_credits"], 0);
    assert_eq!(v["reserved_credits"], 90);
    assert_eq!(app.balance(&acc).await, 900, "the full price comes back");
    assert_eq!(ledger_rows(&app, &id, "refund").await, 1);
    // GET says the same.
    let got = app
        .get_json(&format!("/api/v1/generations/{id}"), &key)
        .await;
    assert_eq!(got, v);

    // The webhook event, written with the refund (outbox).
    let events = app
        .get_json("/api/v1/webhook-events?type=generation.failed", &key)
        .await;
    let mine: Vec<&Value> = events["data"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["data"]["id"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{events}");
    assert_eq!(mine[0]["data"]["error"]["code"], "canceled");

    // Canceling twice is not an error, and changes nothing.
    let (status, again) = cancel(&app, &key, &id).await;
    assert_eq!(status, 200);
    assert_eq!(again, v);
    assert_eq!(app.balance(&acc).await, 900);
    assert_eq!(ledger_rows(&app, &id, "refund").await, 1);

    // Idempotency-Key is honoured like on every POST.
    let id2 = create(&app, &key, "second").await;
    let send = |k: &'static str| {
        app.http
            .post(app.url(&cancel_path(&id2)))
            .bearer_auth(&key)
            .header("Idempotency-Key", k)
            .send()
    };
    let first = send("cancel-1").await.expect("cancel");
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("json");
    let replay = send("cancel-1").await.expect("cancel");
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.expect("json"), first);
    assert_eq!(app.balance(&acc).await, 900);

    // Unknown and foreign ids look the same; a key without the scope is refused.
    let (status, v) = cancel(&app, &key, "task_doesnotexist").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (_, other) = app.account("other", 0).await;
    let (status, _) = cancel(&app, &other, &id).await;
    assert_eq!(status, 404);
    let read_only = app
        .key(&acc, vec![Scope::GenerationsRead], None, Default::default())
        .await;
    let id3 = create(&app, &key, "third").await;
    let (status, v) = cancel(&app, &read_only, &id3).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("api_scope_denied"))
    );
    assert_eq!(
        app.get_json(&format!("/api/v1/generations/{id3}"), &key)
            .await["status"],
        "queued"
    );

    app.assert_ledger_balances().await;
    audit_with_the_cli(&app);
}

/// Many tasks, each canceled by several concurrent requests at staggered
/// moments while the runner picks them up, renders or fails them. Whatever
/// the interleaving: every task ends once, is charged (succeeded) or
/// refunded (failed) exactly once, never both, and the balance is the sum.
async fn cancel_races_the_sandbox_runner_and_exactly_one_side_wins(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            "--rate-create-per-min",
            "100000",
            "--sandbox-concurrency",
            "4",
        ],
    )
    .await;
    const TASKS: usize = 24;
    let (acc, key) = app.account("racer", 90 * TASKS as i64).await;
    let mut ids = Vec::new();
    for i in 0..TASKS {
        // Every third one renders (cancel vs completion), the rest fail at
        // once in the sandbox (cancel vs the runner's own failure).
        let prompt = if i % 3 == 0 {
            format!("race {i}")
        } else {
            format!("race {i} [sandbox:fail]")
        };
        ids.push(create(&app, &key, &prompt).await);
    }
    let mut cancels = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        for attempt in 0..4u64 {
            let (http, url, key) = (app.http.clone(), app.url(&cancel_path(id)), key.clone());
            // Rendering tasks get their cancels spread over a few seconds,
            // so some land mid-render and some after the end.
            let delay = if i % 3 == 0 {
                Duration::from_millis((i as u64 / 3) * 400 + attempt * 30)
            } else {
                Duration::from_millis((i as u64 * 7 + attempt * 40) % 400)
            };
            cancels.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let r = http
                    .post(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .expect("cancel");
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.expect("json"))
            }));
        }
    }
    for c in cancels {
        let (status, v) = c.await.expect("join");
        // The sandbox can always stop a task: never not_cancelable.
        assert_eq!(status, 200, "{v}");
        assert!(
            matches!(v["status"].as_str(), Some("failed" | "succeeded")),
            "a cancel answered a task that is still open: {v}"
        );
    }
    let (mut succeeded, mut canceled) = (0i64, 0);
    for id in &ids {
        let v = app.wait_terminal(&key, id, 120).await;
        let refunds = ledger_rows(&app, id, "refund").await;
        match v["status"].as_str() {
            Some("succeeded") => {
                assert_eq!(v["final_credits"], 90);
                assert_eq!(refunds, 0, "a succeeded task was refunded: {v}");
                succeeded += 1;
            }
            Some("failed") => {
                assert_eq!(v["final_credits"], 0);
                assert_eq!(refunds, 1, "a failed task refunded {refunds} times: {v}");
                if v["error"]["code"] == "canceled" {
                    canceled += 1;
                }
            }
            other => panic!("unexpected status {other:?}"),
        }
    }
    eprintln!("{engine:?}: {canceled} canceled, {succeeded} succeeded of {TASKS}");
    assert!(canceled > 0, "no cancel won a single race");
    assert_eq!(app.balance(&acc).await, 90 * (TASKS as i64 - succeeded));
    app.assert_ledger_balances().await;
    audit_with_the_cli(&app);
}

// ---------------------------------------------------------------------------------------
// With Kling as the upstream (the in-repo fake)

async fn with_kling(engine: Engine, fake: FakeConfig, extra: &[&str]) -> (FakeHandle, TestApp) {
    let fake = FakeKling::start(fake).await.expect("fake kling starts");
    let creds = fake.credentials();
    let mut flags = vec![
        "--kling-access-key".to_owned(),
        creds.access_key.clone(),
        "--kling-secret-key".into(),
        creds.secret_key.clone(),
        "--kling-base-url".into(),
        fake.base_url().to_string(),
        "--kling-poll-ms".into(),
        "100".into(),
        "--kling-retry-ms".into(),
        "50".into(),
        "--rate-create-per-min".into(),
        "100000".into(),
    ];
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = TestApp::spawn_with(engine, &refs).await;
    (fake, app)
}

fn upstream_tasks_for(fake: &FakeHandle, id: &str) -> usize {
    fake.tasks()
        .into_iter()
        .filter(|t| t.external_task_id.as_deref() == Some(id))
        .count()
}

async fn a_task_kling_already_runs_is_not_cancelable_and_still_charged(engine: Engine) {
    let (fake, app) = with_kling(
        engine,
        FakeConfig {
            submitted_for: Duration::from_millis(50),
            processing_for: Duration::from_millis(100),
            ..FakeConfig::default()
        },
        &[],
    )
    .await;
    fake.hold_progress(true);
    let (acc, key) = app.account("kling-user", 900).await;
    let id = create(&app, &key, "a lighthouse").await;
    // Wait until Kling has it and our task says so (processing).
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = loop {
        let v = app
            .get_json(&format!("/api/v1/generations/{id}"), &key)
            .await;
        if v["status"] == "processing" {
            break v;
        }
        assert!(Instant::now() < deadline, "kling never got the task: {v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(upstream_tasks_for(&fake, &id), 1);
    let (status, v) = cancel(&app, &key, &id).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "not_cancelable");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("will finish and be charged"), "{msg}");
    // Nothing changed.
    let after = app
        .get_json(&format!("/api/v1/generations/{id}"), &key)
        .await;
    assert_eq!(after["status"], before["status"]);
    assert_eq!(after["updated_at"], before["updated_at"]);
    assert_eq!(app.balance(&acc).await, 810);
    fake.hold_progress(false);
    let done = app.wait_terminal(&key, &id, 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["final_credits"], 90);
    assert_eq!(app.balance(&acc).await, 810);
    assert_eq!(upstream_tasks_for(&fake, &id), 1);
    app.assert_ledger_balances().await;
    audit_with_the_cli(&app);
}

/// Cancels fired at the moment the runner submits to Kling. Each task ends
/// one of two ways: canceled and refunded with nothing ever sent to Kling,
/// or refused (409) because Kling has it, then finished and charged.
async fn cancel_races_the_kling_submit_and_never_leaves_an_unpaid_upstream_task(engine: Engine) {
    let (fake, app) = with_kling(
        engine,
        FakeConfig {
            submitted_for: Duration::from_millis(30),
            processing_for: Duration::from_millis(60),
            concurrency_limit: 50,
            ..FakeConfig::default()
        },
        &["--kling-concurrency", "50"],
    )
    .await;
    fake.set_latency(Duration::from_millis(5));
    const TASKS: usize = 20;
    let (acc, key) = app.account("kling-racer", 90 * TASKS as i64).await;
    let mut attempts = Vec::new();
    for i in 0..TASKS {
        let id = create(&app, &key, &format!("kling race {i}")).await;
        for a in 0..3u64 {
            let (http, url, key, id) = (
                app.http.clone(),
                app.url(&cancel_path(&id)),
                key.clone(),
                id.clone(),
            );
            attempts.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(a * 3 + (i as u64 % 4) * 2)).await;
                let r = http
                    .post(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .expect("cancel");
                (id, r.status().as_u16())
            }));
        }
    }
    let mut answers: std::collections::HashMap<String, Vec<u16>> = Default::default();
    for a in attempts {
        let (id, status) = a.await.expect("join");
        answers.entry(id).or_default().push(status);
    }
    let (mut canceled, mut charged) = (0, 0i64);
    for (id, statuses) in &answers {
        let v = app.wait_terminal(&key, id, 60).await;
        let upstream = upstream_tasks_for(&fake, id);
        if v["error"]["code"] == "canceled" {
            assert_eq!(upstream, 0, "a canceled task reached Kling: {v}");
            assert_eq!(ledger_rows(&app, id, "refund").await, 1);
            // Once a cancel won, the others found the task ended (200);
            // none could have been refused before it, since a refusal means
            // Kling had the task.
            assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
            canceled += 1;
        } else {
            assert_eq!(v["status"], "succeeded", "{v}");
            assert_eq!(upstream, 1);
            assert_eq!(ledger_rows(&app, id, "refund").await, 0);
            // Every cancel was refused, or came after the end (200, as is).
            assert!(
                statuses.iter().all(|s| *s == 409 || *s == 200),
                "{statuses:?} for {v}"
            );
            charged += 1;
        }
    }
    eprintln!("{engine:?}: {canceled} canceled before submit, {charged} already at kling");
    assert_eq!(app.balance(&acc).await, 90 * (TASKS as i64 - charged));
    app.assert_ledger_balances().await;
    audit_with_the_cli(&app);
}
