//! Control characters in every caller-supplied string that can reach the
//! store (docs/HARDENING.md, "Text input"): on both engines alike each is a
//! `400 validation_failed` naming every bad field, no credit moves and
//! nothing is stored. PostgreSQL used to answer a NUL with a 500.

mod common;

use common::{Engine, TestApp, kling};
use gengate_core::credits::LedgerKind;
use gengate_core::ids::TaskId;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_engines!(
    generation_fields_with_control_characters_are_refused_by_name,
    upload_form_fields_with_control_characters_are_refused_by_name,
    webhook_fields_with_control_characters_are_refused_by_name,
    query_filters_and_cursors_with_control_characters_are_refused,
    operator_names_and_reasons_with_control_characters_are_refused,
    a_receiver_answering_nul_is_recorded_scrubbed,
);

async fn count(app: &TestApp, table: &str) -> i64 {
    gengate_store::testing::raw_count(&app.database_url, &format!("SELECT COUNT(*) FROM {table}"))
        .await
        .expect("count")
}

/// Asserts a 400 validation_failed whose details name exactly `fields`.
fn assert_refused(status: u16, body: &Value, fields: &[&str], what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["error"]["code"], "validation_failed", "{what}: {body}");
    assert!(
        body["error"]["requestId"].is_string(),
        "{what}: envelope: {body}"
    );
    let named: Vec<&str> = body["error"]["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|p| p["field"].as_str()).collect())
        .unwrap_or_default();
    for f in fields {
        assert!(named.contains(f), "{what}: {f} not named in {body}");
    }
    assert_eq!(
        named.len(),
        fields.len(),
        "{what}: extra problems in {body}"
    );
}

async fn send(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn generation_fields_with_control_characters_are_refused_by_name(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acc, key) = app.account("text", 1000).await;
    let ledger_before = app.running.engine.store.ledger(&acc).await.expect("ledger");
    let item = |k: &str, v: &str| {
        let mut it = json!({"url": "https://example.com/a.png", "kind": "image"});
        it[k] = json!(v);
        json!({"referenceMediaItems": [it]})
    };
    let cases: Vec<(Value, Vec<&str>, &str)> = vec![
        (kling("a\u{0}b", json!({})), vec!["prompt"], "NUL in prompt"),
        (
            kling("a\u{1b}[2Jb", json!({})),
            vec!["prompt"],
            "ESC in prompt",
        ),
        (kling("a\u{7f}", json!({})), vec!["prompt"], "DEL in prompt"),
        (
            kling("a\u{85}", json!({})),
            vec!["prompt"],
            "C1 NEL in prompt",
        ),
        (
            json!({"model": "kling-3-0", "prompt": "ok", "client_request_id": "a\u{0}b"}),
            vec!["client_request_id"],
            "NUL in client_request_id",
        ),
        (
            json!({"model": "kling-3-0", "prompt": "ok", "client_request_id": "a\nb"}),
            vec!["client_request_id"],
            "newline in client_request_id",
        ),
        (
            kling("ok", json!({"mode": "std\u{0}"})),
            vec!["params.mode"],
            "NUL in a select param",
        ),
        (
            kling("ok", json!({"duration": "5\u{0}"})),
            vec!["params.duration"],
            "NUL in a numeric-looking select param",
        ),
        (
            kling("ok", item("url", "https://example.com/\u{0}")),
            vec!["params.referenceMediaItems[0].url"],
            "NUL in a reference url",
        ),
        (
            kling("ok", item("name", "a\u{0}.png")),
            vec!["params.referenceMediaItems[0].name"],
            "NUL in a reference name",
        ),
        (
            kling("ok", item("kind", "image\u{0}")),
            vec!["params.referenceMediaItems[0].kind"],
            "NUL in a reference kind",
        ),
        (
            json!({"model": "kling-3-0", "prompt": "a\u{0}", "client_request_id": "b\u{0}",
                   "params": {"mode": "\u{0}"}}),
            vec!["prompt", "client_request_id", "params.mode"],
            "every bad field at once",
        ),
    ];
    for (body, fields, what) in &cases {
        let (status, v) = send(app.post("/api/v1/generations", &key, body)).await;
        assert_refused(status, &v, fields, what);
        // With an idempotency key too: a refusal stores no key.
        let (status, v) = send(
            app.post("/api/v1/generations", &key, body)
                .header("Idempotency-Key", format!("k-{what}").replace(' ', "-")),
        )
        .await;
        assert_refused(status, &v, fields, what);
    }
    assert_eq!(app.balance(&acc).await, 1000, "no credit moved");
    let ledger_after = app.running.engine.store.ledger(&acc).await.expect("ledger");
    assert_eq!(ledger_after.len(), ledger_before.len(), "no ledger row");
    assert_eq!(count(&app, "tasks").await, 0, "no task stored");
    assert_eq!(count(&app, "idempotency_keys").await, 0, "no key kept");

    // Tab, newline and carriage return are prose: accepted, stored and
    // answered exactly as sent, on both engines.
    let prompt = "line one\r\nline two\tindented";
    let (status, v) = send(app.post("/api/v1/generations", &key, &kling(prompt, json!({})))).await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().expect("id");
    let task = app
        .running
        .engine
        .store
        .get_task(&acc, &TaskId::parse(id).expect("task id"))
        .await
        .expect("store")
        .expect("stored");
    assert_eq!(task.prompt.as_str(), prompt);
    app.assert_ledger_balances().await;
}

/// A multipart body built by hand, so names and file names carry exactly
/// the bytes under test.
fn multipart(fields: &[(&str, &str)], file_name_param: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "gengate-text-input-boundary";
    let mut b = Vec::new();
    for (name, value) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        b.extend_from_slice(value.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; {file_name_param}\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(file);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

async fn upload(app: &TestApp, key: &str, fields: &[(&str, &str)], name: &str) -> (u16, Value) {
    let png = gengate_media::corpus::png(400, 400);
    let (ct, body) = multipart(fields, &format!("filename=\"{name}\""), &png);
    send(
        app.http
            .post(app.url("/api/v1/files"))
            .bearer_auth(key)
            .header("content-type", ct)
            .body(body),
    )
    .await
}

/// Form fields, file name, fields named in the refusal, what the case is.
type FormCase<'a> = (Vec<(&'a str, &'a str)>, &'a str, Vec<&'a str>, &'a str);

async fn upload_form_fields_with_control_characters_are_refused_by_name(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, key) = app.account("uploads", 0).await;
    let cases: Vec<FormCase> = vec![
        (
            vec![("kind", "image"), ("client_request_id", "a\u{0}b")],
            "a.png",
            vec!["client_request_id"],
            "NUL in client_request_id",
        ),
        (
            vec![("kind", "image"), ("client_request_id", "a\tb")],
            "a.png",
            vec!["client_request_id"],
            "tab in client_request_id",
        ),
        (
            vec![("kind", "image\u{0}")],
            "a.png",
            vec!["kind"],
            "NUL in kind",
        ),
        (
            vec![("kind", "image"), ("model", "kling-3-0\u{1}")],
            "a.png",
            vec!["model"],
            "control in model",
        ),
        // A raw control character cannot even be parsed as a part header
        // (malformed body), and `filename*` is not decoded by the form
        // parser; `Upload::parse`'s unit test covers the name rule itself.
        (
            vec![("kind", "image")],
            "a\u{0}b.png",
            vec!["body"],
            "raw NUL in the file name",
        ),
        (
            vec![("kind", "image")],
            "a\u{1b}b.png",
            vec!["body"],
            "raw ESC in the file name",
        ),
        (
            vec![("kind", "image\u{0}"), ("client_request_id", "\u{0}")],
            "a.png",
            vec!["kind", "client_request_id"],
            "every bad field at once",
        ),
    ];
    for (fields, name, named, what) in &cases {
        let (status, v) = upload(&app, &key, fields, name).await;
        assert_refused(status, &v, named, what);
    }
    assert_eq!(count(&app, "files").await, 0, "no file stored");

    // The same form with clean text is stored, name and id as sent.
    let (status, v) = upload(
        &app,
        &key,
        &[("kind", "image"), ("client_request_id", "upload-1")],
        "ünïcode name.png",
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["name"], "ünïcode name.png");
    assert_eq!(v["client_request_id"], "upload-1");
}

async fn webhook_fields_with_control_characters_are_refused_by_name(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--webhook-allow-insecure"]).await;
    let (_, key) = app.account("hooks", 0).await;
    let ok_url = "http://127.0.0.1:9/hooks";
    let cases: Vec<(Value, Vec<&str>, &str)> = vec![
        (
            json!({"name": "a\u{0}b", "url": ok_url}),
            vec!["name"],
            "NUL in name",
        ),
        (
            json!({"name": "prod", "url": "https://example.com/\u{0}"}),
            vec!["url"],
            "NUL in url",
        ),
        (
            json!({"name": "prod", "url": "https://exa\tmple.com/"}),
            vec!["url"],
            "tab inside url",
        ),
        (
            json!({"name": "prod", "url": ok_url, "event_types": ["generation.succeeded\u{0}"]}),
            vec!["event_types[0]"],
            "NUL in an event type",
        ),
        (
            json!({"name": "\u{0}", "url": "\u{0}"}),
            vec!["name", "url"],
            "both",
        ),
    ];
    for (body, fields, what) in &cases {
        let (status, v) = send(app.post("/api/v1/webhooks", &key, body)).await;
        assert_refused(status, &v, fields, what);
    }
    assert_eq!(count(&app, "webhook_endpoints").await, 0);

    let created = app
        .post_json(
            "/api/v1/webhooks",
            &key,
            &json!({"name": "prod", "url": ok_url}),
        )
        .await;
    let id = created["id"].as_str().expect("created").to_owned();
    for (body, fields, what) in [
        (json!({"name": "x\u{0}"}), vec!["name"], "PATCH name"),
        (
            json!({"url": "https://e.com/\u{0}"}),
            vec!["url"],
            "PATCH url",
        ),
        (
            json!({"status": "active\u{0}"}),
            vec!["status"],
            "PATCH status",
        ),
    ] {
        let (status, v) = send(
            app.http
                .patch(app.url(&format!("/api/v1/webhooks/{id}")))
                .bearer_auth(&key)
                .json(&body),
        )
        .await;
        assert_refused(status, &v, &fields, what);
    }
    let now = app.get_json(&format!("/api/v1/webhooks/{id}"), &key).await;
    assert_eq!(now["name"], "prod");
    assert_eq!(now["url"], ok_url);
}

async fn query_filters_and_cursors_with_control_characters_are_refused(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--webhook-allow-insecure"]).await;
    let (_, key) = app.account("queries", 0).await;
    let hook = app
        .post_json(
            "/api/v1/webhooks",
            &key,
            &json!({"name": "q", "url": "http://127.0.0.1:9/h"}),
        )
        .await;
    let hook = hook["id"].as_str().expect("hook").to_owned();
    let deliveries = format!("/api/v1/webhooks/{hook}/deliveries");
    let cases: Vec<(String, &str)> = vec![
        (
            "/api/v1/generations?client_request_id=a%00b".into(),
            "client_request_id",
        ),
        (
            "/api/v1/generations?client_request_id=a%0Ab".into(),
            "client_request_id",
        ),
        (
            "/api/v1/generations?starting_after=task_%00".into(),
            "starting_after",
        ),
        ("/api/v1/generations?status=queued%00".into(), "status"),
        (
            "/api/v1/webhooks?starting_after=whend_%00abcdefgh".into(),
            "starting_after",
        ),
        (
            format!("{deliveries}?starting_after=whatt_1%00"),
            "starting_after",
        ),
        (
            "/api/v1/webhook-events?starting_after=evt_%00".into(),
            "starting_after",
        ),
        ("/api/v1/webhook-events?type=webhook.test%00".into(), "type"),
    ];
    for (path, field) in &cases {
        let (status, v) = send(app.get(path, &key)).await;
        assert_refused(status, &v, &[field], path);
    }
    // A clean filter still works.
    let (status, v) = send(app.get("/api/v1/generations?client_request_id=x", &key)).await;
    assert_eq!(status, 200, "{v}");
}

async fn operator_names_and_reasons_with_control_characters_are_refused(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let st = &app.running.engine;
    let store = st.store.as_ref();
    let now = st.clock.now();
    let accounts_before = count(&app, "accounts").await;
    for name in ["a\u{0}b", "a\nb", "\u{1b}[31mred"] {
        let r = gengate_engine::accounts::create_account(store, name, 10, now).await;
        assert!(r.is_err(), "account {name:?} was created");
    }
    assert_eq!(count(&app, "accounts").await, accounts_before);

    let (acc, _) = app.account("operator", 100).await;
    let keys_before = count(&app, "api_keys").await;
    let r = gengate_engine::accounts::issue_key(
        store,
        &acc,
        "ci\u{0}",
        vec![],
        None,
        Default::default(),
        now,
    )
    .await;
    assert!(r.is_err(), "key with a NUL in its name was issued");
    assert_eq!(count(&app, "api_keys").await, keys_before);

    let ledger_before = store.ledger(&acc).await.expect("ledger").len();
    for reason in ["invoice\u{0}42", "two\nlines"] {
        let r = gengate_engine::accounts::change_credits(
            store,
            &acc,
            LedgerKind::Grant,
            5,
            reason,
            now,
        )
        .await;
        assert!(r.is_err(), "grant with reason {reason:?} went through");
    }
    assert_eq!(app.balance(&acc).await, 100, "no credit moved");
    assert_eq!(
        store.ledger(&acc).await.expect("ledger").len(),
        ledger_before
    );
    let b = gengate_engine::accounts::change_credits(
        store,
        &acc,
        LedgerKind::Grant,
        5,
        "invoice 42",
        now,
    )
    .await
    .expect("a clean reason is fine");
    assert_eq!(b.get(), 105);
}

/// A webhook receiver's answer is kept for the deliveries list; one with a
/// NUL used to make PostgreSQL refuse the attempt row, so the attempt was
/// never recorded (and the delivery retried for ever).
async fn a_receiver_answering_nul_is_recorded_scrubbed(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            "--webhook-allow-insecure",
            "--webhook-time-scale",
            "0.001",
            "--webhook-poll-ms",
            "50",
        ],
    )
    .await;
    let (_, key) = app.account("receiver", 0).await;
    let receiver = axum::Router::new().fallback(|| async { "ok\u{0}\u{1}done" });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, receiver).await;
    });
    let hook = app
        .post_json(
            "/api/v1/webhooks",
            &key,
            &json!({"name": "nul", "url": format!("http://{addr}/hook")}),
        )
        .await;
    let id = hook["id"].as_str().expect("endpoint").to_owned();
    let (status, v) =
        send(app.post(&format!("/api/v1/webhooks/{id}/test"), &key, &json!({}))).await;
    assert_eq!(status, 202, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = app
            .get_json(&format!("/api/v1/webhooks/{id}/deliveries"), &key)
            .await;
        if let Some(a) = list["data"].as_array().and_then(|d| d.first()) {
            assert_eq!(a["status_code"], 200, "{a}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the attempt was never recorded: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = count(
        &app,
        "webhook_attempts WHERE response = 'ok\u{fffd}\u{fffd}done'",
    )
    .await;
    assert_eq!(kept, 1, "the answer is kept with its controls replaced");
}
