//! Control for API users (issue 15), over real HTTP on SQLite and PostgreSQL:
//! `Prefer: wait` on create and `until=terminal` long polls, spend limits
//! per key (including 100 concurrent creates against the last room of a
//! limit), sandbox accounts, and the operator commands for them.

mod common;

use common::{Engine, TestApp, audit_with_the_cli, kling};
use gengate_core::spend::SpendLimit;
use gengate_kling::fake::{FakeConfig, FakeHandle, FakeKling};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_engines!(
    prefer_wait_holds_the_create_until_the_task_ends,
    until_terminal_holds_a_long_poll_past_processing,
    spend_limit_lets_exactly_floor_limit_over_price_through_100_concurrent_creates,
    spend_limit_refusals_say_when_room_frees_and_refunds_give_room_back,
    sandbox_accounts_run_on_the_sandbox_even_with_kling_configured,
    operator_commands_for_sandbox_accounts_and_spend_limits,
    keys_api_shows_and_sets_spend_limits,
);

fn body(prompt: &str) -> Value {
    kling(
        prompt,
        json!({"mode": "std", "duration": 3, "aspect_ratio": "1:1"}),
    )
}

async fn create(app: &TestApp, key: &str, prompt: &str) -> (u16, Value) {
    let r = app
        .post("/api/v1/generations", key, &body(prompt))
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn key_id(app: &TestApp, secret: &str) -> gengate_core::ids::ApiKeyId {
    app.running
        .engine
        .store
        .find_api_key_by_prefix(&secret[..16])
        .await
        .expect("store")
        .expect("key")
        .id
}

async fn task_count(app: &TestApp) -> i64 {
    gengate_store::testing::raw_count(&app.database_url, "SELECT COUNT(*) FROM tasks")
        .await
        .expect("count")
}

// ---------------------------------------------------------------------------------------
// Waiting

async fn prefer_wait_holds_the_create_until_the_task_ends(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acc, key) = app.account("waiter", 900).await;
    let send = |prompt: &str, prefer: &str, idem: Option<&str>| {
        let mut r = app
            .post("/api/v1/generations", &key, &body(prompt))
            .header("Prefer", prefer.to_owned());
        if let Some(k) = idem {
            r = r.header("Idempotency-Key", k.to_owned());
        }
        r.send()
    };

    // Ends in time: 200 with the finished task.
    let started = Instant::now();
    let r = send("quick [sandbox:fail]", "wait=30", Some("w-1"))
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["preference-applied"], "wait=30");
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "generation_failed");
    assert_eq!(
        location,
        format!("/api/v1/generations/{}", v["id"].as_str().unwrap())
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // A replay answers what was stored with the task (202, as created), and
    // neither creates nor charges again.
    let r = send("quick [sandbox:fail]", "wait=30", Some("w-1"))
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert!(r.headers().get("preference-applied").is_none());
    let replay: Value = r.json().await.expect("json");
    assert_eq!(replay["id"], v["id"]);
    assert_eq!(replay["status"], "queued");
    assert_eq!(task_count(&app).await, 1);

    // A bad wait is refused with everything else wrong, and nothing is created.
    let before = (task_count(&app).await, app.balance(&acc).await);
    for bad in ["wait=0", "wait=61", "wait=soon"] {
        let r = send("never", bad, None).await.expect("post");
        assert_eq!(r.status(), 400, "{bad}");
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["error"]["code"], "validation_failed");
        assert_eq!(e["error"]["details"][0]["field"], "Prefer");
    }
    let r = app
        .post(
            "/api/v1/generations",
            &key,
            &json!({"model": "kling-3-0", "prompt": ""}),
        )
        .header("Prefer", "wait=0")
        .send()
        .await
        .expect("post");
    let e: Value = r.json().await.expect("json");
    let fields: Vec<&str> = e["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"prompt") && fields.contains(&"Prefer"),
        "{e}"
    );
    assert_eq!((task_count(&app).await, app.balance(&acc).await), before);

    // Not in time: 202 after about N seconds, the task as it is then.
    let started = Instant::now();
    let r = send(
        "slow [sandbox:slow=4][sandbox:fail]",
        "respond-async, wait=1",
        None,
    )
    .await
    .expect("post");
    let held = started.elapsed();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["preference-applied"], "wait=1");
    let slow: Value = r.json().await.expect("json");
    assert!(
        matches!(slow["status"].as_str(), Some("queued" | "processing")),
        "{slow}"
    );
    assert!(
        held >= Duration::from_millis(900),
        "answered after {held:?}"
    );

    // Without Prefer: 202 at once, no Preference-Applied.
    let r = send("plain [sandbox:fail]", "return=minimal", None)
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    assert!(r.headers().get("preference-applied").is_none());

    let id = slow["id"].as_str().expect("id");
    app.wait_terminal(&key, id, 60).await;
    app.assert_ledger_balances().await;
    audit_with_the_cli(&app);
}

async fn until_terminal_holds_a_long_poll_past_processing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, key) = app.account("poller", 900).await;
    let (_, v) = create(&app, &key, "[sandbox:slow=2][sandbox:fail]").await;
    let id = v["id"].as_str().expect("id").to_owned();
    // The default still answers at the next change: processing, or (when
    // the runner had already started it before the poll) the end.
    let first = app
        .get_json(&format!("/api/v1/generations/{id}?wait=20"), &key)
        .await;
    assert!(
        matches!(first["status"].as_str(), Some("processing" | "failed")),
        "{first}"
    );
    // until=terminal holds until the end, not the next change.
    let started = Instant::now();
    let done = app
        .get_json(
            &format!("/api/v1/generations/{id}?wait=20&until=terminal"),
            &key,
        )
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // On an ended task it answers at once.
    let started = Instant::now();
    let again = app
        .get_json(
            &format!("/api/v1/generations/{id}?wait=20&until=terminal"),
            &key,
        )
        .await;
    assert_eq!(again, done);
    // Far under the 20 s asked for: an ended task answers at once.
    assert!(started.elapsed() < Duration::from_secs(10));
    // Bad values, all named.
    let e = app
        .get_json(
            &format!("/api/v1/generations/{id}?wait=0&until=later"),
            &key,
        )
        .await;
    assert_eq!(e["error"]["code"], "validation_failed");
    let fields: Vec<&str> = e["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["wait", "until"]);
}

// ---------------------------------------------------------------------------------------
// Spend limits

async fn spend_limit_lets_exactly_floor_limit_over_price_through_100_concurrent_creates(
    engine: Engine,
) {
    // No runner: nothing fails and gets refunded behind the test's back.
    let app =
        TestApp::spawn_with(engine, &["--no-runner", "--rate-create-per-min", "100000"]).await;
    let (acc, key) = app.account("limited", 100 * 90).await;
    let id = key_id(&app, &key).await;
    let st = &app.running.engine;
    gengate_engine::accounts::set_spend_limit(
        st.store.as_ref(),
        &id,
        Some(SpendLimit::parse(950, Some("24h")).expect("limit")),
    )
    .await
    .expect("set");
    let mut handles = Vec::new();
    for i in 0..100 {
        let (http, url, key) = (
            app.http.clone(),
            app.url("/api/v1/generations"),
            key.clone(),
        );
        handles.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&body(&format!("burst {i}")))
                .send()
                .await
                .expect("post");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }));
    }
    let (mut accepted, mut refused) = (0, 0);
    for h in handles {
        let (status, v) = h.await.expect("join");
        match status {
            202 => accepted += 1,
            402 => {
                assert_eq!(v["error"]["code"], "spend_limit_exceeded", "{v}");
                let s = &v["error"]["spend_limit"];
                assert_eq!(s["limit"], 950);
                assert_eq!(s["window"], "24h");
                assert_eq!(s["window_seconds"], 86_400);
                assert_eq!(s["price"], 90);
                assert!(s["spent"].as_i64().expect("spent") + 90 > 950, "{v}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((accepted, refused), (950 / 90, 100 - 950 / 90));
    assert_eq!(app.balance(&acc).await, 100 * 90 - 90 * (950 / 90) as i64);
    assert_eq!(task_count(&app).await, (950 / 90) as i64);
    app.assert_ledger_balances().await;
    audit_with_the_cli(&app);
}

async fn spend_limit_refusals_say_when_room_frees_and_refunds_give_room_back(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, key) = app.account("budget", 2000).await;
    let st = &app.running.engine;
    let id = key_id(&app, &key).await;
    gengate_engine::accounts::set_spend_limit(
        st.store.as_ref(),
        &id,
        Some(SpendLimit::parse(200, Some("1h")).expect("limit")),
    )
    .await
    .expect("set");
    let (s1, first) = create(&app, &key, "one").await;
    let (s2, _) = create(&app, &key, "two").await;
    assert_eq!((s1, s2), (202, 202));
    let (s3, refused) = create(&app, &key, "three").await;
    assert_eq!(s3, 402, "{refused}");
    let limit = &refused["error"]["spend_limit"];
    assert_eq!(limit["spent"], 180);
    let frees =
        gengate_core::Timestamp::parse_rfc3339(limit["frees_at"].as_str().expect("frees_at"))
            .expect("time");
    let created = gengate_core::Timestamp::parse_rfc3339(first["created_at"].as_str().unwrap())
        .expect("time");
    assert_eq!(
        frees.as_millis(),
        created.as_millis() + 3_600_000,
        "{refused}"
    );
    let balance = app.balance(&acc).await;
    assert_eq!(balance, 2000 - 180, "a refused create charged something");

    // A cancel refunds the task and gives its room back.
    let r = app
        .http
        .post(app.url(&format!(
            "/api/v1/generations/{}/cancel",
            first["id"].as_str().unwrap()
        )))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status(), 200);
    let (s4, _) = create(&app, &key, "four").await;
    assert_eq!(s4, 202);

    // The limit is the key's: another key of the account is not held back.
    let other = app
        .key(
            &acc,
            gengate_core::scope::Scope::ALL.to_vec(),
            None,
            Default::default(),
        )
        .await;
    let (s5, _) = create(&app, &other, "other key").await;
    assert_eq!(s5, 202);

    // A fixed total never frees by time; clearing the limit lifts it.
    gengate_engine::accounts::set_spend_limit(
        st.store.as_ref(),
        &id,
        Some(SpendLimit::parse(100, None).expect("limit")),
    )
    .await
    .expect("set");
    // Key records are cached for a moment; the limit itself is read in the
    // debit's transaction, so it applies at once.
    let (s6, refused) = create(&app, &key, "five").await;
    assert_eq!(s6, 402);
    assert_eq!(refused["error"]["spend_limit"]["window"], "total");
    assert!(refused["error"]["spend_limit"]["window_seconds"].is_null());
    assert!(
        refused["error"]["spend_limit"]["frees_at"].is_null(),
        "{refused}"
    );
    gengate_engine::accounts::set_spend_limit(st.store.as_ref(), &id, None)
        .await
        .expect("clear");
    let (s7, _) = create(&app, &key, "six").await;
    assert_eq!(s7, 202);
    app.assert_ledger_balances().await;
    audit_with_the_cli(&app);
}

// ---------------------------------------------------------------------------------------
// Sandbox accounts

async fn with_kling(engine: Engine) -> (FakeHandle, TestApp) {
    let fake = FakeKling::start(FakeConfig {
        submitted_for: Duration::from_millis(30),
        processing_for: Duration::from_millis(60),
        ..FakeConfig::default()
    })
    .await
    .expect("fake kling starts");
    let creds = fake.credentials();
    let flags = [
        "--kling-access-key".to_owned(),
        creds.access_key.clone(),
        "--kling-secret-key".into(),
        creds.secret_key.clone(),
        "--kling-base-url".into(),
        fake.base_url().to_string(),
        "--kling-poll-ms".into(),
        "100".into(),
    ];
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

async fn provider_of(app: &TestApp, id: &str, provider: &str) -> bool {
    gengate_store::testing::raw_count(
        &app.database_url,
        &format!("SELECT COUNT(*) FROM tasks WHERE id = '{id}' AND provider = '{provider}'"),
    )
    .await
    .expect("count")
        == 1
}

async fn sandbox_accounts_run_on_the_sandbox_even_with_kling_configured(engine: Engine) {
    let (fake, app) = with_kling(engine).await;
    let st = &app.running.engine;
    let now = st.clock.now();
    let dev = gengate_engine::accounts::create_account(st.store.as_ref(), "acme-dev", 900, now)
        .await
        .expect("account");
    gengate_engine::accounts::set_sandbox(st.store.as_ref(), &dev.id, true)
        .await
        .expect("sandbox");
    let test_key = app
        .key(
            &dev.id,
            gengate_core::scope::Scope::ALL.to_vec(),
            None,
            Default::default(),
        )
        .await;
    assert!(test_key.starts_with("gg_test_"), "{test_key}");
    let credits = app.get_json("/api/v1/credits", &test_key).await;
    assert_eq!(
        credits,
        json!({"current_credits": 900, "sandbox": true, "low_balance_threshold": null, "price_adjustment": 0})
    );

    // `[sandbox:fail]` is a sandbox control: only the sandbox fails it.
    let (status, v) = create(&app, &test_key, "integration test [sandbox:fail]").await;
    assert_eq!(status, 202);
    let sid = v["id"].as_str().expect("id").to_owned();
    let done = app.wait_terminal(&test_key, &sid, 60).await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sandbox"),
        "{done}"
    );
    assert!(provider_of(&app, &sid, "sandbox").await);
    assert_eq!(upstream_tasks_for(&fake, &sid), 0);
    // Real credit accounting: charged, then refunded.
    assert_eq!(app.balance(&dev.id).await, 900);

    // A live account's task goes to Kling, the same prompt notwithstanding.
    let (live, live_key) = app.account("acme", 900).await;
    assert!(live_key.starts_with("gg_live_"), "{live_key}");
    assert_eq!(
        app.get_json("/api/v1/credits", &live_key).await,
        json!({"current_credits": 900, "sandbox": false, "low_balance_threshold": null, "price_adjustment": 0})
    );
    let (_, v) = create(&app, &live_key, "production [sandbox:fail]").await;
    let lid = v["id"].as_str().expect("id").to_owned();
    let done = app.wait_terminal(&live_key, &lid, 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(provider_of(&app, &lid, "kling").await);
    assert_eq!(upstream_tasks_for(&fake, &lid), 1);
    assert_eq!(app.balance(&live).await, 810);

    // Switching the live account to sandbox: its old gg_live_ key keeps
    // working, and its tasks from now on stay off Kling.
    gengate_engine::accounts::set_sandbox(st.store.as_ref(), &live, true)
        .await
        .expect("switch");
    assert_eq!(
        app.get_json("/api/v1/credits", &live_key).await["sandbox"],
        true
    );
    let (status, v) = create(&app, &live_key, "now a test [sandbox:fail]").await;
    assert_eq!(status, 202);
    let nid = v["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.wait_terminal(&live_key, &nid, 60).await["status"],
        "failed"
    );
    assert!(provider_of(&app, &nid, "sandbox").await);
    assert_eq!(upstream_tasks_for(&fake, &nid), 0);
    // And back.
    gengate_engine::accounts::set_sandbox(st.store.as_ref(), &live, false)
        .await
        .expect("switch back");
    let (_, v) = create(&app, &live_key, "live again").await;
    let bid = v["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.wait_terminal(&live_key, &bid, 60).await["status"],
        "succeeded"
    );
    assert!(provider_of(&app, &bid, "kling").await);

    // Operators top sandbox accounts up like any other.
    gengate_engine::accounts::change_credits(
        st.store.as_ref(),
        &dev.id,
        gengate_core::credits::LedgerKind::Grant,
        10_000,
        "sandbox top-up",
        st.clock.now(),
    )
    .await
    .expect("grant");
    assert_eq!(app.balance(&dev.id).await, 10_900);
    app.assert_ledger_balances().await;
    audit_with_the_cli(&app);
}

// ---------------------------------------------------------------------------------------
// The operator's commands

fn gengate(app: &TestApp, args: &[&str]) -> String {
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend([
        "--database-url".to_owned(),
        app.database_url.clone(),
        "--data-dir".to_owned(),
        app.data_dir.display().to_string(),
    ]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"))
        .args(&all)
        .env("GENGATE_LOG", "warn")
        .output()
        .expect("run gengate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gengate {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn operator_commands_for_sandbox_accounts_and_spend_limits(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner", "--key-cache-ms", "0"]).await;
    let out = gengate(
        &app,
        &[
            "accounts",
            "create",
            "acme-dev",
            "--sandbox",
            "--credits",
            "900",
        ],
    );
    assert!(out.contains("sandbox"), "{out}");
    let out = gengate(
        &app,
        &[
            "keys",
            "create",
            "--account",
            "acme-dev",
            "--spend-limit",
            "90",
            "--spend-window",
            "24h",
        ],
    );
    assert!(out.contains("limit:   90 credits per 24h"), "{out}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret:  "))
        .expect("secret line")
        .trim()
        .to_owned();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("key id:  "))
        .expect("key id line")
        .trim()
        .to_owned();
    assert!(secret.starts_with("gg_test_"), "{secret}");
    assert_eq!(
        app.get_json("/api/v1/credits", &secret).await["sandbox"],
        true
    );

    assert_eq!(create(&app, &secret, "one").await.0, 202);
    assert_eq!(create(&app, &secret, "two").await.0, 402);
    let list = gengate(&app, &["keys", "list", "--account", "acme-dev"]);
    assert!(list.contains("spent 90 of 90 credits per 24h"), "{list}");

    gengate(&app, &["keys", "limit", &id, "--clear"]);
    assert_eq!(create(&app, &secret, "three").await.0, 202);
    gengate(&app, &["keys", "limit", &id, "--spend-limit", "1000"]);
    let list = gengate(&app, &["keys", "list"]);
    assert!(
        list.contains("spent 180 of 1000 credits in total"),
        "{list}"
    );

    let out = gengate(&app, &["accounts", "set", "acme-dev", "--sandbox", "false"]);
    assert!(out.contains("live"), "{out}");
    assert_eq!(
        app.get_json("/api/v1/credits", &secret).await["sandbox"],
        false
    );
    let list = gengate(&app, &["accounts", "list"]);
    assert!(list.contains("acme-dev") && list.contains("live"), "{list}");
    // New keys of the now-live account are live keys.
    let out = gengate(&app, &["keys", "create", "--account", "acme-dev"]);
    assert!(out.contains("secret:  gg_live_"), "{out}");
    // Bad input makes nothing.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"))
        .args([
            "keys",
            "create",
            "--account",
            "acme-dev",
            "--spend-limit",
            "90",
            "--spend-window",
            "soon",
            "--database-url",
            &app.database_url,
        ])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    let keys = app
        .running
        .engine
        .store
        .list_api_keys(None)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 2);
    audit_with_the_cli(&app);
}

// ---------------------------------------------------------------------------------------
// The keys API (issue 12's, with the spend limit)

async fn keys_api_shows_and_sets_spend_limits(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, admin) = app.account("keys-admin", 2000).await;
    let worker = app
        .key(
            &acc,
            gengate_core::scope::Scope::ALL.to_vec(),
            None,
            Default::default(),
        )
        .await;
    let worker_id = key_id(&app, &worker).await;
    let patch = |id: String, key: String, body: Value| {
        app.http
            .patch(app.url(&format!("/api/v1/keys/{id}")))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let r = patch(
        worker_id.to_string(),
        admin.clone(),
        json!({"spend_limit": {"limit": 180, "window": "24h"}}),
    )
    .await
    .expect("patch");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v["spend_limit"],
        json!({"limit": 180, "window": "24h", "window_seconds": 86400, "spent": 0})
    );
    assert_eq!(create(&app, &worker, "a").await.0, 202);
    assert_eq!(create(&app, &worker, "b").await.0, 202);
    assert_eq!(create(&app, &worker, "c").await.0, 402);
    let list = app.get_json("/api/v1/keys", &admin).await;
    let mine = list["data"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == worker_id.to_string())
        .expect("listed");
    assert_eq!(mine["spend_limit"]["spent"], 180);
    let admin_view = list["data"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] != worker_id.to_string())
        .expect("admin listed");
    assert!(admin_view["spend_limit"].is_null());

    // Every bad field is named; nothing changes.
    let r = patch(
        worker_id.to_string(),
        admin.clone(),
        json!({"spend_limit": {"limit": 0, "window": "soon", "x": 1}, "name": "y"}),
    )
    .await
    .expect("patch");
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.expect("json");
    let fields: Vec<&str> = e["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    for f in ["name", "spend_limit.x", "spend_limit.limit"] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    // A key cannot lift its own limit.
    let r = patch(
        worker_id.to_string(),
        worker.clone(),
        json!({"spend_limit": null}),
    )
    .await
    .expect("patch");
    assert_eq!(r.status(), 400);
    assert_eq!(create(&app, &worker, "d").await.0, 402);
    // Another account's key is not found.
    let (_, stranger) = app.account("stranger", 0).await;
    let r = patch(
        worker_id.to_string(),
        stranger,
        json!({"spend_limit": null}),
    )
    .await
    .expect("patch");
    assert_eq!(r.status(), 404);
    // Cleared by the admin key: room again.
    let r = patch(
        worker_id.to_string(),
        admin.clone(),
        json!({"spend_limit": null}),
    )
    .await
    .expect("patch");
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.expect("json")["spend_limit"].is_null());
    assert_eq!(create(&app, &worker, "e").await.0, 202);
    app.assert_ledger_balances().await;
    audit_with_the_cli(&app);
}
