//! The public API over real HTTP, on SQLite and on PostgreSQL: money,
//! idempotency, validation, auth, limits and the operational endpoints.

mod common;

use common::{Engine, TestApp, kling};
use futures_util::future::join_all;
use gengate_core::scope::Scope;
use gengate_store::RateOverrides;
use serde_json::{Value, json};

on_both_engines!(
    concurrent_creates_never_overdraw_the_balance,
    one_idempotency_key_makes_one_task_under_a_race,
    bad_requests_name_every_field_and_change_nothing,
    keys_scopes_and_accounts_are_enforced,
    a_revoked_key_in_use_is_refused_within_the_cache_time,
    rate_limits_answer_429_with_retry_after,
    listing_paginates_and_filters,
    operational_endpoints_and_errors_use_the_envelope,
);

async fn concurrent_creates_never_overdraw_the_balance(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, key) = app.account("racer", 900).await;
    let reqs = (0..100).map(|i| {
        app.post(
            "/api/v1/generations",
            &key,
            &kling(&format!("shot {i}"), json!({})),
        )
        .send()
    });
    let results = join_all(reqs).await;
    let mut accepted = 0;
    let mut refused = 0;
    for r in results {
        let r = r.expect("response");
        match r.status().as_u16() {
            202 => accepted += 1,
            402 => {
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["code"], "insufficient_credits");
                refused += 1;
            }
            s => panic!(
                "unexpected status {s}: {}",
                r.text().await.unwrap_or_default()
            ),
        }
    }
    assert_eq!((accepted, refused), (10, 90));
    assert_eq!(app.balance(&acc).await, 0);
    app.assert_ledger_balances().await;
    let v: Value = app
        .get("/api/v1/credits", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        json!({"current_credits": 0, "sandbox": false, "low_balance_threshold": null, "price_adjustment": 0})
    );
}

async fn one_idempotency_key_makes_one_task_under_a_race(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, key) = app.account("idem", 1000).await;
    let body = kling("a lighthouse at dusk", json!({"duration": "7"}));
    let reqs = (0..50).map(|_| {
        app.post("/api/v1/generations", &key, &body)
            .header("Idempotency-Key", "order-42")
            .send()
    });
    let mut ids = std::collections::HashSet::new();
    let mut conflicts = 0;
    for r in join_all(reqs).await {
        let r = r.unwrap();
        match r.status().as_u16() {
            202 => {
                let v: Value = r.json().await.unwrap();
                ids.insert(v["id"].as_str().unwrap().to_owned());
            }
            409 => conflicts += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(ids.len(), 1, "more than one task for one key");
    assert!(conflicts < 50);
    assert_eq!(app.balance(&acc).await, 910, "charged more than once");

    // A replay returns the first answer, byte for byte, marked as replayed.
    let first = app
        .post("/api/v1/generations", &key, &body)
        .header("Idempotency-Key", "order-42")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    assert_eq!(first.headers()["idempotent-replayed"], "true");
    let loc = first.headers()["location"].to_str().unwrap().to_owned();
    let text1 = first.text().await.unwrap();
    // Key order and whitespace do not make a different request.
    let reordered =
        r#"{"params": {"duration": "7"}, "prompt": "a lighthouse at dusk", "model": "kling-3-0"}"#;
    let second = app
        .http
        .post(app.url("/api/v1/generations"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("Idempotency-Key", "order-42")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(second.text().await.unwrap(), text1);
    let v: Value = serde_json::from_str(&text1).unwrap();
    assert_eq!(
        loc,
        format!("/api/v1/generations/{}", v["id"].as_str().unwrap())
    );

    // Same key, another body: 409, and still nothing charged.
    let other = app
        .post("/api/v1/generations", &key, &kling("another", json!({})))
        .header("Idempotency-Key", "order-42")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 409);
    let e: Value = other.json().await.unwrap();
    assert_eq!(e["error"]["code"], "idempotency_conflict");
    assert_eq!(app.balance(&acc).await, 910);

    // A request that fails stores nothing: the same key works afterwards.
    let (acc2, key2) = app.account("poor", 10).await;
    let poor = app
        .post("/api/v1/generations", &key2, &body)
        .header("Idempotency-Key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(poor.status(), 402);
    app.running
        .engine
        .store
        .change_credits(
            &acc2,
            gengate_core::credits::LedgerKind::Grant,
            100,
            "top up",
            app.running.engine.clock.now(),
        )
        .await
        .unwrap();
    let retry = app
        .post("/api/v1/generations", &key2, &body)
        .header("Idempotency-Key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 202);
    assert!(retry.headers().get("idempotent-replayed").is_none());
    app.assert_ledger_balances().await;
}

async fn bad_requests_name_every_field_and_change_nothing(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, key) = app.account("v", 1000).await;
    let urdu_2001 = "ک".repeat(2001);
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            kling("x", json!({"duration": 16})),
            vec![("params.duration", "not_allowed")],
        ),
        (
            kling("x", json!({"duration": "2"})),
            vec![("params.duration", "not_allowed")],
        ),
        (
            kling("x", json!({"mode": "ultra"})),
            vec![("params.mode", "not_allowed")],
        ),
        (
            kling("x", json!({"aspect_ratio": "4:3"})),
            vec![("params.aspect_ratio", "not_allowed")],
        ),
        (
            kling("x", json!({"sound": "yes"})),
            vec![("params.sound", "not_allowed")],
        ),
        (
            kling("x", json!({"multi_shots": {"a": 1}})),
            vec![("params.multi_shots", "invalid_type")],
        ),
        (
            kling("x", json!({"duration": 5.5})),
            vec![("params.duration", "not_allowed")],
        ),
        (
            kling("x", json!({"seed": 1})),
            vec![("params.seed", "unknown_field")],
        ),
        (kling(&urdu_2001, json!({})), vec![("prompt", "too_long")]),
        (kling("   ", json!({})), vec![("prompt", "blank")]),
        (json!({"model": "kling-3-0"}), vec![("prompt", "required")]),
        (json!({"prompt": "x"}), vec![("model", "required")]),
        (
            json!({"model": "nope", "prompt": "x"}),
            vec![("model", "not_allowed")],
        ),
        (
            json!({"model": "kling-3-0", "prompt": "x", "files": []}),
            vec![("files", "unknown_field")],
        ),
        (
            json!({"model": "kling-3-0", "prompt": "x", "client_request_id": "c".repeat(129)}),
            vec![("client_request_id", "too_long")],
        ),
        (
            json!({"model": "kling-3-0", "prompt": "x", "params": "pro"}),
            vec![("params", "invalid_type")],
        ),
        (
            json!({"model": "kling-3-0", "prompt": 7, "params": {"duration": 99, "mode": "x", "extra": true}}),
            vec![
                ("prompt", "invalid_type"),
                ("params.duration", "not_allowed"),
                ("params.mode", "not_allowed"),
                ("params.extra", "unknown_field"),
            ],
        ),
        (
            kling(
                "x",
                json!({"referenceMediaItems": [{"url": "https://example.com/a.png", "kind": "image"}]}),
            ),
            vec![("params.referenceMediaItems[0].url", "not_found")],
        ),
    ];
    for (body, expected) in cases {
        let r = app
            .post("/api/v1/generations", &key, &body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "for {body}");
        assert!(
            r.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .starts_with("req_")
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "validation_failed");
        assert!(
            v["error"]["requestId"]
                .as_str()
                .unwrap()
                .starts_with("req_")
        );
        let got: Vec<(String, String)> = v["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["field"].as_str().unwrap().to_owned(),
                    d["issue"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mut want: Vec<(String, String)> = expected
            .iter()
            .map(|(f, i)| ((*f).to_owned(), (*i).to_owned()))
            .collect();
        let mut got = got;
        got.sort();
        want.sort();
        assert_eq!(got, want, "for {body}");
    }
    // Limits are characters, not bytes: 2000 Urdu letters and 2000 emoji are fine.
    for p in ["ک".repeat(2000), "🎬".repeat(2000)] {
        let r = app
            .post("/api/v1/generations", &key, &kling(&p, json!({})))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let before = app.balance(&acc).await;
    // Malformed JSON and a wrong content type.
    let r = app
        .http
        .post(app.url("/api/v1/generations"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"][0]["issue"], "invalid_json");
    let r = app
        .http
        .post(app.url("/api/v1/generations"))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"][0]["field"], "Content-Type");
    // A bad Idempotency-Key is reported too.
    let r = app
        .post("/api/v1/generations", &key, &kling("x", json!({})))
        .header("Idempotency-Key", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Over the hard cap.
    let huge = json!({"model": "kling-3-0", "prompt": "x".repeat(2 * 1024 * 1024)});
    let r = app
        .post("/api/v1/generations", &key, &huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large");

    // Nothing changed: two tasks (the accepted ones), balance untouched since.
    assert_eq!(app.balance(&acc).await, before);
    assert_eq!(before, 1000 - 180);
    let list: Value = app
        .get("/api/v1/generations", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    app.assert_ledger_balances().await;
}

async fn keys_scopes_and_accounts_are_enforced(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, key) = app.account("alice", 1000).await;
    let (_, bob) = app.account("bob", 1000).await;
    let created: Value = app
        .post("/api/v1/generations", &key, &kling("mine", json!({})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    let code = |r: reqwest::Response| async move {
        let s = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (s, v["error"]["code"].as_str().unwrap_or("").to_owned())
    };
    // Missing, malformed, unknown keys.
    assert_eq!(
        code(
            app.http
                .get(app.url("/api/v1/credits"))
                .send()
                .await
                .unwrap()
        )
        .await,
        (401, "api_key_missing".into())
    );
    assert_eq!(
        code(app.get("/api/v1/credits", "nonsense").send().await.unwrap()).await,
        (401, "api_key_invalid".into())
    );
    let forged = format!("{}{}", &key[..16], "0".repeat(key.len() - 16));
    assert_eq!(
        code(app.get("/api/v1/credits", &forged).send().await.unwrap()).await,
        (401, "api_key_invalid".into())
    );
    // Scopes.
    let read_only = app
        .key(
            &acc,
            vec![Scope::GenerationsRead],
            None,
            RateOverrides::default(),
        )
        .await;
    assert_eq!(
        code(
            app.post("/api/v1/generations", &read_only, &kling("x", json!({})))
                .send()
                .await
                .unwrap()
        )
        .await,
        (403, "api_scope_denied".into())
    );
    assert_eq!(
        code(app.get("/api/v1/credits", &read_only).send().await.unwrap()).await,
        (403, "api_scope_denied".into())
    );
    assert_eq!(
        app.get(&format!("/api/v1/generations/{id}"), &read_only)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Revoked and expired keys.
    let st = &app.running.engine;
    let revoked = app.key(&acc, vec![], None, RateOverrides::default()).await;
    app.revoke(&revoked).await;
    assert_eq!(
        code(app.get("/api/v1/credits", &revoked).send().await.unwrap()).await,
        (401, "api_key_revoked".into())
    );
    let expired = app
        .key(
            &acc,
            vec![],
            Some(st.clock.now().minus(std::time::Duration::from_secs(1))),
            RateOverrides::default(),
        )
        .await;
    assert_eq!(
        code(app.get("/api/v1/credits", &expired).send().await.unwrap()).await,
        (401, "api_key_expired".into())
    );
    // Another account's task answers exactly like a missing one.
    let foreign = app
        .get(&format!("/api/v1/generations/{id}"), &bob)
        .send()
        .await
        .unwrap();
    let missing = app
        .get("/api/v1/generations/task_000000000000000000000000", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    let (fv, mv): (Value, Value) = (foreign.json().await.unwrap(), missing.json().await.unwrap());
    assert_eq!(fv["error"]["code"], mv["error"]["code"]);
    assert_eq!(fv["error"]["message"], mv["error"]["message"]);
    let bob_list: Value = app
        .get("/api/v1/generations", &bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bob_list["data"], json!([]));
    // A foreign cursor is refused like an unknown one.
    let r = app
        .get(&format!("/api/v1/generations?starting_after={id}"), &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Public endpoints need no key.
    assert_eq!(
        app.http
            .get(app.url("/api/v1/models"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Key records are reused in process for `--key-cache-ms`; revoking a key
/// that is in use (here straight in the store, as the CLI or another node
/// would) must still shut it out once that time has passed.
async fn a_revoked_key_in_use_is_refused_within_the_cache_time(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--key-cache-ms", "400"]).await;
    let (acc, _) = app.account("revoker", 900).await;
    let key = app.key(&acc, vec![], None, RateOverrides::default()).await;
    let credits = || async {
        let r = app.get("/api/v1/credits", &key).send().await.unwrap();
        let s = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (s, v["error"]["code"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(credits().await.0, 200);
    app.revoke(&key).await;
    let revoked_at = std::time::Instant::now();
    loop {
        let (status, code) = credits().await;
        if status == 401 {
            assert_eq!(code, "api_key_revoked");
            break;
        }
        assert_eq!(status, 200);
        // Generous against a loaded machine; the point is that it ends.
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(10),
            "a revoked key kept working"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn rate_limits_answer_429_with_retry_after(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, _) = app.account("busy", 10_000).await;
    let key = app
        .key(
            &acc,
            vec![],
            None,
            RateOverrides {
                create_per_min: Some(3),
                read_per_min: Some(5),
                upload_per_min: None,
            },
        )
        .await;
    for i in 0..3 {
        let r = app
            .post("/api/v1/generations", &key, &kling("x", json!({})))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(r.headers()["ratelimit-limit"], "3");
        assert_eq!(
            r.headers()["ratelimit-remaining"].to_str().unwrap(),
            (2 - i).to_string()
        );
        assert!(r.headers().contains_key("ratelimit-reset"));
    }
    let r = app
        .post("/api/v1/generations", &key, &kling("x", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Reads have their own bucket.
    let r = app.get("/api/v1/credits", &key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["ratelimit-limit"], "5");
    assert_eq!(
        app.balance(&acc).await,
        10_000 - 270,
        "a refused request was charged"
    );
}

async fn listing_paginates_and_filters(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (_, key) = app.account("lister", 10_000).await;
    let mut ids = vec![];
    for i in 0..5 {
        let body = json!({"model": "kling-3-0", "prompt": format!("p{i}"), "client_request_id": if i % 2 == 0 { "even" } else { "odd" }});
        let v: Value = app
            .post("/api/v1/generations", &key, &body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            v["client_request_id"],
            if i % 2 == 0 { "even" } else { "odd" }
        );
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let p1: Value = app
        .get("/api/v1/generations?limit=2", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p1["object"], "list");
    assert_eq!(p1["has_more"], true);
    assert_eq!(p1["data"][0]["id"], ids[4].as_str());
    assert_eq!(p1["data"][1]["id"], ids[3].as_str());
    let p2: Value = app
        .get(
            &format!("/api/v1/generations?limit=2&starting_after={}", ids[3]),
            &key,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p2["data"][0]["id"], ids[2].as_str());
    let even: Value = app
        .get("/api/v1/generations?client_request_id=even", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(even["data"].as_array().unwrap().len(), 3);
    let queued: Value = app
        .get("/api/v1/generations?status=queued", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queued["data"].as_array().unwrap().len(), 5);
    for bad in ["limit=0", "limit=101", "status=done", "starting_after=nope"] {
        let r = app
            .get(&format!("/api/v1/generations?{bad}"), &key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = app
        .get(&format!("/api/v1/generations/{}?wait=61", ids[0]), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn operational_endpoints_and_errors_use_the_envelope(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (_, key) = app.account("ops", 100).await;
    let models: Value = app
        .http
        .get(app.url("/api/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let m = &models["data"][0];
    assert_eq!(m["id"], "kling-3-0");
    assert_eq!(m["base_credits"], 90);
    assert!(m.get("internal").is_none());
    for field in [
        "display_name",
        "category",
        "runtime",
        "billing_type",
        "supported_modes",
        "max_prompt_length",
        "supported_api_inputs",
        "requires_files_api",
        "requires_upload_for_modes",
        "url_input_supported",
        "file_kinds",
        "api_status",
        "api_input_status",
        "params",
        "reference_media",
        "notices",
    ] {
        assert!(m.get(field).is_some(), "model lacks {field}");
    }
    let one = app
        .http
        .get(app.url("/api/v1/models/kling-3-0"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let none = app
        .http
        .get(app.url("/api/v1/models/kling-9"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);

    let r = app.http.get(app.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let r = app
        .http
        .delete(app.url("/api/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET,HEAD");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");

    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.get("/api/v1/credits", &key).send().await.unwrap();
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("gengate_http_requests_total"), "{metrics}");

    let doc: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/api/v1/generations",
        "/api/v1/generations/{task_id}",
        "/api/v1/models",
        "/api/v1/models/{model_id}",
        "/api/v1/credits",
        "/api/v1/openapi.json",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    for s in ["Generation", "ErrorEnvelope", "Model", "Params.kling-3-0"] {
        assert!(
            doc["components"]["schemas"].get(s).is_some(),
            "openapi lacks schema {s}"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["Params.kling-3-0"]["properties"]["duration"]["enum"]
            .as_array()
            .unwrap()
            .len(),
        13
    );
}
