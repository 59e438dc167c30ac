//! The admin API (issue 22) over real HTTP on SQLite and PostgreSQL: operator keys and
//! roles, accounts and credits across accounts, and the audit log of every change.

mod common;

use common::{Engine, TestApp};
use gengate_core::operator::OperatorRole;
use gengate_engine::admin::{self, Actor};
use serde_json::{Value, json};

on_both_engines!(
    only_operator_keys_open_the_admin_api_and_nothing_changes_otherwise,
    a_viewer_reads_and_every_write_it_tries_is_refused_unchanged,
    accounts_and_credits_are_run_by_the_admin_api_and_audited,
    a_revoked_or_expired_operator_is_refused_at_once,
    a_suspended_accounts_keys_are_refused_and_its_running_task_settles,
    operators_make_and_revoke_an_accounts_keys,
    usage_equals_the_ledger_for_any_range_and_grouping,
    tasks_are_found_across_accounts_with_their_whole_story,
    admin_posts_are_idempotent_under_an_idempotency_key,
    the_operator_commands_run_against_a_remote_server,
    the_overview_counts_open_tasks_and_times_results,
);

/// Grants, suspension and key revocation made through one node hold on the other at
/// once: balances are read from the database, and key caches are emptied when the auth
/// epoch moves (within --change-feed-ms, 250 ms by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_through_one_node_hold_on_every_node_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = common::database_url(Engine::Postgres, dir.path()).await;
    let mut nodes = Vec::new();
    for i in 0..2 {
        let cfg = common::config(
            Engine::Postgres,
            &dir.path().join(format!("n{i}")),
            &url,
            &["--no-runner"],
        );
        nodes.push(gengate_server::app::start(&cfg).await.expect("node starts"));
    }
    let base: Vec<String> = nodes.iter().map(|n| format!("http://{}", n.addr)).collect();
    let st = &nodes[0].engine;
    let (_, op) = admin::create_operator(
        st.store.as_ref(),
        &Actor::cli(),
        "ops",
        OperatorRole::Admin,
        None,
        st.clock.now(),
    )
    .await
    .expect("operator");
    let http = reqwest::Client::new();
    let call = |method: &'static str, url: String, key: String, body: Option<Value>| {
        let http = http.clone();
        async move {
            let mut req = http
                .request(method.parse().expect("method"), url)
                .bearer_auth(key);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.expect("send");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, acct) = call(
        "POST",
        format!("{}/api/admin/v1/accounts", base[0]),
        op.clone(),
        Some(json!({"name": "acme", "credits": 100})),
    )
    .await;
    assert_eq!(s, 201, "{acct}");
    let id = acct["id"].as_str().expect("id").to_owned();
    let (s, key) = call(
        "POST",
        format!("{}/api/admin/v1/accounts/{id}/keys", base[0]),
        op.clone(),
        Some(json!({"name": "k"})),
    )
    .await;
    assert_eq!(s, 201, "{key}");
    let key = key["secret"].as_str().expect("secret").to_owned();
    let credits = |node: usize| {
        call(
            "GET",
            format!("{}/api/v1/credits", base[node]),
            key.clone(),
            None,
        )
    };
    // Node 1 has the key cached.
    assert_eq!(credits(1).await.1["current_credits"], 100);

    // A grant through node 0 is node 1's balance at once.
    let (s, _) = call(
        "POST",
        format!("{}/api/admin/v1/accounts/{id}/credits", base[0]),
        op.clone(),
        Some(json!({"amount": 50, "kind": "grant", "reason": "r"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(credits(1).await.1["current_credits"], 150);

    // Suspension through node 0: node 1 refuses within the feed's poll.
    let (s, _) = call(
        "PATCH",
        format!("{}/api/admin/v1/accounts/{id}", base[0]),
        op.clone(),
        Some(json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        credits(0).await.0,
        403,
        "the node that suspended refuses at once"
    );
    let refused_within = |node: usize, code: &'static str| {
        let credits = &credits;
        async move {
            let started = std::time::Instant::now();
            loop {
                let (s, v) = credits(node).await;
                if s != 200 {
                    assert_eq!(v["error"]["code"], code, "{v}");
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(3),
                    "node {node} still accepts the key"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    let took = refused_within(1, "account_suspended").await;
    assert!(
        took < std::time::Duration::from_secs(2),
        "node 1 took {took:?}"
    );

    // Resume, then revoke the key through node 1: node 0 refuses it.
    let (s, _) = call(
        "PATCH",
        format!("{}/api/admin/v1/accounts/{id}", base[1]),
        op.clone(),
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(s, 200);
    let started = std::time::Instant::now();
    while credits(0).await.0 != 200 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "resume did not reach node 0"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, keys) = call(
        "GET",
        format!("{}/api/admin/v1/accounts/{id}/keys", base[1]),
        op.clone(),
        None,
    )
    .await;
    let key_id = keys["data"][0]["id"].as_str().expect("key id").to_owned();
    let (s, _) = call(
        "DELETE",
        format!("{}/api/admin/v1/keys/{key_id}", base[1]),
        op.clone(),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let took = refused_within(0, "api_key_revoked").await;
    assert!(
        took < std::time::Duration::from_secs(2),
        "node 0 took {took:?}"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

async fn a_suspended_accounts_keys_are_refused_and_its_running_task_settles(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let op = app.operator("ops", OperatorRole::Admin).await;
    let (acct, key) = app.account("customer", 500).await;
    // A task that is still running when the account is suspended.
    let task = app
        .post_json(
            "/api/v1/generations",
            &key,
            &common::kling("slow one [sandbox:slow=1]", json!({"duration": "3"})),
        )
        .await;
    let task_id = task["id"].as_str().expect("task id").to_owned();
    let (s, v) = send(
        &app,
        "PATCH",
        &format!("/api/admin/v1/accounts/{acct}"),
        &op,
        Some(json!({"status": "suspended"})),
    )
    .await;
    assert_eq!((s, v["status"].clone()), (200, json!("suspended")), "{v}");
    for (method, path, body) in [
        ("GET", "/api/v1/credits".to_owned(), None),
        ("GET", format!("/api/v1/generations/{task_id}"), None),
        (
            "POST",
            "/api/v1/generations".to_owned(),
            Some(common::kling("another", json!({"duration": "3"}))),
        ),
        ("GET", "/api/v1/keys".to_owned(), None),
    ] {
        let (s, v) = send(&app, method, &path, &key, body).await;
        assert_eq!(
            (s, v["error"]["code"].clone()),
            (403, json!("account_suspended")),
            "{method} {path}: {v}"
        );
    }
    let (_, v) = send(
        &app,
        "GET",
        "/api/admin/v1/accounts?status=suspended",
        &op,
        None,
    )
    .await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    // The running task ends and settles as usual: charged once.
    let started = std::time::Instant::now();
    loop {
        let t = app
            .running
            .engine
            .store
            .get_task_unscoped(&gengate_core::ids::TaskId::parse(&task_id).expect("id"))
            .await
            .expect("task")
            .expect("exists");
        if t.status.is_terminal() {
            assert_eq!(t.status, gengate_core::generation::TaskStatus::Succeeded);
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the task did not end"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.balance(&acct).await, 410);
    app.assert_ledger_balances().await;
    // Resumed: the key works again.
    let (s, _) = send(
        &app,
        "PATCH",
        &format!("/api/admin/v1/accounts/{acct}"),
        &op,
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = send(&app, "GET", "/api/v1/credits", &key, None).await;
    assert_eq!((s, v["current_credits"].clone()), (200, json!(410)));
    let (_, log) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/audit?account={acct}&action=account.update"),
        &op,
        None,
    )
    .await;
    let states: Vec<(Value, Value)> = log["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| (e["before"]["status"].clone(), e["after"]["status"].clone()))
        .collect();
    assert_eq!(
        states,
        [
            (json!("suspended"), json!("active")),
            (json!("active"), json!("suspended"))
        ]
    );
    // Bad input names every field.
    let (s, v) = send(
        &app,
        "PATCH",
        &format!("/api/admin/v1/accounts/{acct}"),
        &op,
        Some(json!({"status": "gone", "sandbox": "yes"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["details"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
}

async fn operators_make_and_revoke_an_accounts_keys(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let op = app.operator("ops", OperatorRole::Admin).await;
    let (acct, _) = app.account("customer", 100).await;
    let (s, made) = send(
        &app,
        "POST",
        &format!("/api/admin/v1/accounts/{acct}/keys"),
        &op,
        Some(json!({"name": "ci", "scopes": ["credits:read"]})),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let secret = made["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    let (s, v) = send(&app, "GET", "/api/v1/credits", &secret, None).await;
    assert_eq!((s, v["current_credits"].clone()), (200, json!(100)));
    let (_, listed) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/accounts/{acct}/keys"),
        &op,
        None,
    )
    .await;
    assert!(
        listed["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|k| k.get("secret").is_none()),
        "{listed}"
    );
    let key_id = made["id"].as_str().expect("id");
    // A spend limit on it, then none; each change audited.
    let limit_path = format!("/api/admin/v1/keys/{key_id}");
    let (s, v) = send(
        &app,
        "PATCH",
        &limit_path,
        &op,
        Some(json!({"spend_limit": {"limit": 200, "window": "24h"}})),
    )
    .await;
    assert_eq!(
        (s, v["spend_limit"]["limit"].clone()),
        (200, json!(200)),
        "{v}"
    );
    let (s, v) = send(
        &app,
        "PATCH",
        &limit_path,
        &op,
        Some(json!({"spend_limit": {"limit": 0}, "x": 1})),
    )
    .await;
    assert_eq!(
        (s, v["error"]["details"].as_array().map(Vec::len)),
        (400, Some(2)),
        "{v}"
    );
    let (s, v) = send(
        &app,
        "PATCH",
        &limit_path,
        &op,
        Some(json!({"spend_limit": null})),
    )
    .await;
    assert_eq!((s, v["spend_limit"].clone()), (200, Value::Null), "{v}");
    let (s, v) = send(
        &app,
        "DELETE",
        &format!("/api/admin/v1/keys/{key_id}"),
        &op,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["revoked_at"].is_string(), "{v}");
    let (s, v) = send(&app, "GET", "/api/v1/credits", &secret, None).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (401, json!("api_key_revoked")),
        "refused at once: {v}"
    );
    let (s, _) = send(
        &app,
        "DELETE",
        "/api/admin/v1/keys/key_doesnotexistdoesnotexist",
        &op,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (_, log) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/audit?account={acct}"),
        &op,
        None,
    )
    .await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        ["key.revoke", "key.limit", "key.limit", "key.create"]
    );
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method.parse().expect("method"), app.url(path))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every operation of the admin document, with a body where it takes one.
async fn every_operation(app: &TestApp, account: &str) -> Vec<(String, String, Option<Value>)> {
    let doc: Value = app
        .http
        .get(app.url("/api/admin/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            let body = (method != "get")
                .then(|| json!({"name": "x", "amount": 5, "kind": "grant", "reason": "r"}));
            ops.push((method.to_uppercase(), path.replace("{id}", account), body));
        }
    }
    assert!(
        ops.len() >= 6,
        "the admin document lists its operations: {ops:?}"
    );
    ops
}

async fn only_operator_keys_open_the_admin_api_and_nothing_changes_otherwise(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acct, user_key) = app.account("customer", 100).await;
    let audit_before = app
        .running
        .engine
        .store
        .audit_page(&Default::default())
        .await
        .expect("audit")
        .0
        .len();
    for (method, path, body) in every_operation(&app, acct.as_str()).await {
        for key in [
            user_key.as_str(),
            "gg_op_notarealkeynotarealkeynotarealkey0000",
            "",
        ] {
            let (status, v) = send(&app, &method, &path, key, body.clone()).await;
            assert_eq!(status, 401, "{method} {path} with {key:?}: {v}");
            assert_eq!(v["error"]["code"], "operator_key_invalid", "{v}");
        }
    }
    // An operator key owns no account: the public API refuses it.
    let op = app.operator("ops", OperatorRole::Admin).await;
    let (status, v) = send(&app, "GET", "/api/v1/credits", &op, None).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(app.balance(&acct).await, 100);
    assert_eq!(
        app.running
            .engine
            .store
            .list_accounts()
            .await
            .expect("accounts")
            .len(),
        1
    );
    let audit_after = app
        .running
        .engine
        .store
        .audit_page(&Default::default())
        .await
        .expect("audit")
        .0
        .len();
    assert_eq!(
        audit_after,
        audit_before + 1,
        "only the operator's creation is audited"
    );
}

async fn a_viewer_reads_and_every_write_it_tries_is_refused_unchanged(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acct, _) = app.account("customer", 100).await;
    let viewer = app.operator("watcher", OperatorRole::Viewer).await;
    let (status, v) = send(&app, "GET", "/api/admin/v1/accounts", &viewer, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"][0]["name"], "customer");
    let audit_before = app
        .running
        .engine
        .store
        .audit_page(&Default::default())
        .await
        .expect("audit")
        .0;
    for (method, path, body) in every_operation(&app, acct.as_str()).await {
        if method == "GET" {
            // Reads are the viewer's: answered (an account id where a task id goes is
            // simply not found), never refused.
            let (status, v) = send(&app, &method, &path, &viewer, None).await;
            assert!(
                status == 200 || (status == 404 && path.contains("/generations/")),
                "{method} {path}: {v}"
            );
            continue;
        }
        let (status, v) = send(&app, &method, &path, &viewer, body).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "operator_role_denied", "{v}");
    }
    assert_eq!(app.balance(&acct).await, 100);
    assert_eq!(
        app.running
            .engine
            .store
            .list_accounts()
            .await
            .expect("accounts")
            .len(),
        1
    );
    let audit_after = app
        .running
        .engine
        .store
        .audit_page(&Default::default())
        .await
        .expect("audit")
        .0;
    assert_eq!(
        audit_after, audit_before,
        "a refused write leaves no audit line"
    );
}

async fn accounts_and_credits_are_run_by_the_admin_api_and_audited(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let op = app.operator("alice", OperatorRole::Admin).await;

    // Create with initial credits: a grant row with the reason.
    let (status, acct) = send(
        &app,
        "POST",
        "/api/admin/v1/accounts",
        &op,
        Some(json!({"name": "acme", "credits": 500, "reason": "invoice 42 paid"})),
    )
    .await;
    assert_eq!(status, 201, "{acct}");
    assert_eq!(acct["balance"], 500);
    assert_eq!(acct["sandbox"], false);
    let id = acct["id"].as_str().expect("id").to_owned();
    let (_, tx) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/accounts/{id}/transactions"),
        &op,
        None,
    )
    .await;
    assert_eq!(tx["data"][0]["kind"], "grant");
    assert_eq!(tx["data"][0]["reason"], "invoice 42 paid");

    // Bad input names every bad field and changes nothing.
    let (status, v) = send(
        &app,
        "POST",
        &format!("/api/admin/v1/accounts/{id}/credits"),
        &op,
        Some(json!({"amount": "ten", "kind": "gift", "extra": 1})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().unwrap_or(""))
        .collect();
    for f in ["amount", "kind", "reason", "extra"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let (status, v) = send(
        &app,
        "POST",
        "/api/admin/v1/accounts",
        &op,
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(status, 400, "the name is taken: {v}");

    // Grant, adjust down, and an adjustment past the balance: 409, nothing written.
    let credits = |amount: i64, kind: &str, reason: &str| json!({"amount": amount, "kind": kind, "reason": reason});
    let path = format!("/api/admin/v1/accounts/{id}/credits");
    let (status, v) = send(
        &app,
        "POST",
        &path,
        &op,
        Some(credits(250, "grant", "top-up")),
    )
    .await;
    assert_eq!((status, v["balance"].clone()), (200, json!(750)), "{v}");
    let (status, v) = send(
        &app,
        "POST",
        &path,
        &op,
        Some(credits(-50, "adjustment", "goodwill reversal")),
    )
    .await;
    assert_eq!((status, v["balance"].clone()), (200, json!(700)), "{v}");
    let (status, v) = send(
        &app,
        "POST",
        &path,
        &op,
        Some(credits(-701, "adjustment", "too much")),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "insufficient_credits");
    let (_, got) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/accounts/{id}"),
        &op,
        None,
    )
    .await;
    assert_eq!(got["balance"], 700);
    app.assert_ledger_balances().await;

    // Listing: search, sandbox filter, paging.
    for n in ["beta", "gamma"] {
        let (s, _) = send(
            &app,
            "POST",
            "/api/admin/v1/accounts",
            &op,
            Some(json!({"name": n, "sandbox": n == "gamma"})),
        )
        .await;
        assert_eq!(s, 201);
    }
    let (_, v) = send(&app, "GET", "/api/admin/v1/accounts?query=GAM", &op, None).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["data"][0]["sandbox"], true);
    let (_, v) = send(
        &app,
        "GET",
        "/api/admin/v1/accounts?sandbox=false&limit=1",
        &op,
        None,
    )
    .await;
    assert_eq!(
        (v["data"][0]["name"].clone(), v["has_more"].clone()),
        (json!("beta"), json!(true))
    );
    let last = v["data"][0]["id"].as_str().expect("id").to_owned();
    let (_, v) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/accounts?sandbox=false&limit=1&starting_after={last}"),
        &op,
        None,
    )
    .await;
    assert_eq!(
        (v["data"][0]["name"].clone(), v["has_more"].clone()),
        (json!("acme"), json!(false))
    );

    // The audit log: every write, who, before and after, the request id; filters and pages.
    let (_, log) = send(&app, "GET", "/api/admin/v1/audit?actor=alice", &op, None).await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        [
            "account.create",
            "account.create",
            "credits.adjust",
            "credits.grant",
            "account.create"
        ],
        "{log}"
    );
    let adjust = &log["data"][2];
    assert_eq!(adjust["before"]["balance"], 750);
    assert_eq!(adjust["after"]["balance"], 700);
    assert_eq!(adjust["after"]["reason"], "goodwill reversal");
    assert!(
        adjust["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_")),
        "{adjust}"
    );
    let (_, mine) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/audit?account={id}&limit=2"),
        &op,
        None,
    )
    .await;
    assert_eq!(mine["has_more"], true);
    let after = mine["data"][1]["id"].as_str().expect("id").to_owned();
    let (_, rest) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/audit?account={id}&starting_after={after}"),
        &op,
        None,
    )
    .await;
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["data"][0]["action"], "account.create");
    let (_, cli) = send(&app, "GET", "/api/admin/v1/audit?actor=cli", &op, None).await;
    assert_eq!(
        cli["data"][0]["action"], "operator.create",
        "the operator made for this test, by the CLI path"
    );
}

async fn a_revoked_or_expired_operator_is_refused_at_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let op = app.operator("bob", OperatorRole::Admin).await;
    let (status, _) = send(&app, "GET", "/api/admin/v1/accounts", &op, None).await;
    assert_eq!(status, 200);
    let st = &app.running.engine;
    admin::revoke_operator(st.store.as_ref(), &Actor::cli(), "bob", st.clock.now())
        .await
        .expect("revoke");
    let (status, v) = send(&app, "GET", "/api/admin/v1/accounts", &op, None).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (401, json!("operator_key_revoked")),
        "{v}"
    );

    let soon = st.clock.now().plus(std::time::Duration::from_secs(3));
    let (_, short) = admin::create_operator(
        st.store.as_ref(),
        &Actor::cli(),
        "temp",
        OperatorRole::Viewer,
        Some(soon),
        st.clock.now(),
    )
    .await
    .expect("operator");
    let (status, _) = send(&app, "GET", "/api/admin/v1/audit", &short, None).await;
    assert_eq!(status, 200);
    // Past its expiry (a generous one: the first call must land before it on a busy machine).
    while st.clock.now() <= soon {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, v) = send(&app, "GET", "/api/admin/v1/audit", &short, None).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (401, json!("operator_key_expired")),
        "{v}"
    );
}

/// A mixed run (successes, failures, a cancel, a task still running, a sandbox account),
/// then random ranges under every grouping: the report's net credits equal the ledger's
/// reserves minus refunds in the range, and the CSV parses (Python's csv) to the same.
async fn usage_equals_the_ledger_for_any_range_and_grouping(engine: Engine) {
    use gengate_core::credits::LedgerKind;
    let app = TestApp::spawn(engine).await;
    let op = app.operator("ops", OperatorRole::Admin).await;
    let (a, ka) = app.account("alpha", 2000).await;
    let (b, kb) = app.account("beta", 2000).await;
    let (_, s) = send(
        &app,
        "POST",
        "/api/admin/v1/accounts",
        &op,
        Some(json!({"name": "sand", "sandbox": true, "credits": 2000})),
    )
    .await;
    let sid =
        gengate_core::ids::AccountId::parse(s["id"].as_str().expect("id")).expect("account id");
    let (_, ks) = send(
        &app,
        "POST",
        &format!("/api/admin/v1/accounts/{sid}/keys"),
        &op,
        Some(json!({"name": "k"})),
    )
    .await;
    let ks = ks["secret"].as_str().expect("secret").to_owned();
    let mut ids = Vec::new();
    for (key, prompt) in [
        (&ka, "ok one"),
        (&ka, "ok two"),
        (&ka, "breaks [sandbox:fail]"),
        (&ka, "breaks too [sandbox:fail]"),
        (&kb, "ok three"),
        (&kb, "breaks [sandbox:fail]"),
        (&ks, "sandbox ok"),
        (&ks, "sandbox breaks [sandbox:fail]"),
    ] {
        let t = app
            .post_json(
                "/api/v1/generations",
                key,
                &common::kling(prompt, json!({"duration": "3"})),
            )
            .await;
        ids.push((key.clone(), t["id"].as_str().expect("id").to_owned()));
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    // One cancelled while it runs, one still running when the report is read.
    let c = app
        .post_json(
            "/api/v1/generations",
            &kb,
            &common::kling("cancel me [sandbox:slow=5]", json!({"duration": "3"})),
        )
        .await;
    let c = c["id"].as_str().expect("id").to_owned();
    let (status, v) = send(
        &app,
        "POST",
        &format!("/api/v1/generations/{c}/cancel"),
        &kb,
        None,
    )
    .await;
    assert!(status == 200 || status == 409, "{v}");
    let _running = app
        .post_json(
            "/api/v1/generations",
            &ka,
            &common::kling("still running [sandbox:slow=600]", json!({"duration": "3"})),
        )
        .await;
    for (key, id) in &ids {
        app.wait_terminal(key, id, 90).await;
    }
    app.wait_terminal(&kb, &c, 90).await;

    let store = &app.running.engine.store;
    let mut ledger = Vec::new();
    for acct in [&a, &b, &sid] {
        ledger.extend(store.ledger(acct).await.expect("ledger"));
    }
    let money: Vec<_> = ledger
        .iter()
        .filter(|e| matches!(e.kind, LedgerKind::Reserve | LedgerKind::Refund))
        .collect();
    assert!(
        money.iter().any(|e| e.kind == LedgerKind::Refund),
        "the run has refunds"
    );
    let first = money
        .iter()
        .map(|e| e.created_at.as_millis())
        .min()
        .expect("rows");
    let last = money
        .iter()
        .map(|e| e.created_at.as_millis())
        .max()
        .expect("rows")
        + 1;
    let expected = |from: i64, to: i64, sandbox: bool| -> i64 {
        money
            .iter()
            .filter(|e| {
                (from..to).contains(&e.created_at.as_millis()) && (sandbox || e.account_id != sid)
            })
            .map(|e| -e.amount)
            .sum()
    };
    let rfc = |ms: i64| gengate_core::Timestamp::from_millis(ms).rfc3339();
    // Ranges: everything, then pseudo-random sub-ranges (a fixed LCG: reruns see the same).
    let mut seed: u64 = 0x9e37_79b9;
    let mut next = |n: i64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as i64).rem_euclid(n.max(1))
    };
    let mut ranges = vec![(first - 86_400_000, last + 86_400_000)];
    for _ in 0..12 {
        let span = last - first;
        let from = first - 5 + next(span + 10);
        let to = from + 1 + next(span + 10);
        ranges.push((from, to));
    }
    for (i, (from, to)) in ranges.iter().enumerate() {
        let group_by = ["day", "hour", "account", "key", "model", "status"][i % 6];
        for sandbox in [false, true] {
            let path = format!(
                "/api/admin/v1/usage?from={}&to={}&group_by={group_by}&include_sandbox={sandbox}",
                rfc(*from),
                rfc(*to)
            );
            let (status, report) = send(&app, "GET", &path, &op, None).await;
            assert_eq!(status, 200, "{report}");
            let rows = report["data"].as_array().expect("data");
            let net: i64 = rows
                .iter()
                .map(|r| r["credits_net"].as_i64().expect("net"))
                .sum();
            assert_eq!(
                net,
                expected(*from, *to, sandbox),
                "{group_by} {from}..{to} sandbox={sandbox}: {report}"
            );
            for r in rows {
                assert_eq!(
                    r["credits_net"].as_i64(),
                    Some(
                        r["credits_charged"].as_i64().unwrap_or(0)
                            - r["credits_refunded"].as_i64().unwrap_or(0)
                    )
                );
            }
        }
    }
    // The whole run by status: 11 tasks outside the sandbox account, the running one
    // charged and not refunded.
    let (_, by_status) = send(
        &app,
        "GET",
        &format!(
            "/api/admin/v1/usage?from={}&to={}&group_by=status",
            rfc(first - 60_000),
            rfc(last + 60_000)
        ),
        &op,
        None,
    )
    .await;
    let tasks: i64 = by_status["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["tasks"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(tasks, 8, "{by_status}");
    let running = by_status["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|r| r["group"] == "processing" || r["group"] == "queued")
        .cloned()
        .expect("a running group");
    assert_eq!(
        (
            running["credits_charged"].clone(),
            running["credits_refunded"].clone()
        ),
        (json!(90), json!(0))
    );

    // CSV, parsed by Python's csv module, sums to the same numbers.
    let (from, to) = ranges[0];
    let csv = app
        .http
        .get(app.url(&format!(
            "/api/admin/v1/usage?from={}&to={}&group_by=account",
            rfc(from),
            rfc(to)
        )))
        .bearer_auth(&op)
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.expect("text");
    assert!(
        text.starts_with(
            "group,tasks,succeeded,failed,credits_charged,credits_refunded,credits_net\r\n"
        ),
        "{text}"
    );
    let mut py = std::process::Command::new("python3")
        .args(["-c", "import csv,sys,json; rows=list(csv.DictReader(sys.stdin)); print(json.dumps({'rows': len(rows), 'net': sum(int(r['credits_net']) for r in rows), 'charged': sum(int(r['credits_charged']) for r in rows)}))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    py.stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = py.wait_with_output().expect("python3 ran");
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("python printed json");
    assert_eq!(parsed["net"], json!(expected(from, to, false)), "{text}");
    assert_eq!(
        parsed["rows"],
        json!(2),
        "alpha and beta, not the sandbox account: {text}"
    );
    let (_, js) = send(
        &app,
        "GET",
        &format!(
            "/api/admin/v1/usage?from={}&to={}&group_by=account&format=json",
            rfc(from),
            rfc(to)
        ),
        &op,
        None,
    )
    .await;
    let charged: i64 = js["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["credits_charged"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(parsed["charged"], json!(charged));

    // Bad input names every bad field.
    let (status, v) = send(
        &app,
        "GET",
        "/api/admin/v1/usage?from=yesterday&group_by=week&include_sandbox=maybe&format=xml",
        &op,
        None,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["error"]["details"].as_array().map(Vec::len),
        Some(4),
        "{v}"
    );
}

async fn tasks_are_found_across_accounts_with_their_whole_story(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let op = app.operator("ops", OperatorRole::Viewer).await;
    let (a, ka) = app.account("alpha", 1000).await;
    let (b, kb) = app.account("beta", 1000).await;
    let mut made = Vec::new();
    for (key, prompt) in [
        (&ka, "fine"),
        (&ka, "broken [sandbox:fail]"),
        (&kb, "fine too"),
    ] {
        let t = app
            .post_json(
                "/api/v1/generations",
                key,
                &common::kling(prompt, json!({"duration": "3"})),
            )
            .await;
        let id = t["id"].as_str().expect("id").to_owned();
        app.wait_terminal(key, &id, 90).await;
        made.push(id);
    }
    let (_, all) = send(&app, "GET", "/api/admin/v1/generations", &op, None).await;
    let ids: Vec<&str> = all["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|t| t["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        [made[2].as_str(), made[1].as_str(), made[0].as_str()],
        "newest first across accounts"
    );
    let (_, of_a) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/generations?account={a}&status=failed"),
        &op,
        None,
    )
    .await;
    assert_eq!(of_a["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(of_a["data"][0]["error"], "generation_failed", "{of_a}");
    let (_, page) = send(
        &app,
        "GET",
        &format!(
            "/api/admin/v1/generations?limit=1&starting_after={}",
            made[2]
        ),
        &op,
        None,
    )
    .await;
    assert_eq!(
        (page["data"][0]["id"].clone(), page["has_more"].clone()),
        (json!(made[1]), json!(true))
    );
    let (_, none) = send(
        &app,
        "GET",
        "/api/admin/v1/generations?model=other-model",
        &op,
        None,
    )
    .await;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));
    let (_, of_b) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/generations?account={b}&provider=sandbox"),
        &op,
        None,
    )
    .await;
    assert_eq!(
        of_b["data"][0]["key"]
            .as_str()
            .map(|k| k.starts_with("key_")),
        Some(true),
        "{of_b}"
    );

    let (status, story) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/generations/{}", made[1]),
        &op,
        None,
    )
    .await;
    assert_eq!(status, 200, "{story}");
    assert_eq!(
        (
            story["credits_charged"].clone(),
            story["credits_refunded"].clone()
        ),
        (json!(0), json!(90))
    );
    let kinds: Vec<&str> = story["ledger"]
        .as_array()
        .expect("ledger")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["debit", "refund"]);
    let steps: Vec<&str> = story["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| s["what"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(steps.first(), Some(&"created"));
    assert!(
        steps.contains(&"failed") && steps.contains(&"refunded"),
        "{steps:?}"
    );
    assert_eq!(story["public"]["status"], "failed");
    assert_eq!(story["public"]["id"], made[1]);
    // The account list's recent use: alpha made 2 tasks (one refunded), beta 1.
    let (_, accts) = send(&app, "GET", "/api/admin/v1/accounts", &op, None).await;
    let row = |name: &str| {
        accts["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .expect("row")
    };
    assert_eq!(
        (
            row("alpha")["tasks_30d"].clone(),
            row("alpha")["credits_30d"].clone()
        ),
        (json!(2), json!(90)),
        "{accts}"
    );
    assert_eq!(
        (
            row("beta")["tasks_30d"].clone(),
            row("beta")["credits_30d"].clone()
        ),
        (json!(1), json!(90))
    );
    assert!(row("alpha")["last_activity"].is_string());
    let (_, one) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/accounts/{a}"),
        &op,
        None,
    )
    .await;
    assert_eq!(one["tasks_30d"], 2);
    let (_, ok) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/generations/{}", made[0]),
        &op,
        None,
    )
    .await;
    assert!(
        ok["public"]["result"]["primary_url"].is_string(),
        "the video's link: {ok}"
    );
    let (status, _) = send(
        &app,
        "GET",
        "/api/admin/v1/generations/task_doesnotexistdoesnotexist",
        &op,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, v) = send(
        &app,
        "GET",
        "/api/admin/v1/generations?status=done&created_after=then",
        &op,
        None,
    )
    .await;
    assert_eq!(
        (status, v["error"]["details"].as_array().map(Vec::len)),
        (400, Some(2)),
        "{v}"
    );
}

async fn admin_posts_are_idempotent_under_an_idempotency_key(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let op = app.operator("ops", OperatorRole::Admin).await;
    let other = app.operator("ops2", OperatorRole::Admin).await;
    let post = |key: &str, idem: &str, path: String, body: Value| {
        let req = app
            .http
            .post(app.url(&path))
            .bearer_auth(key)
            .header("Idempotency-Key", idem)
            .json(&body);
        async move {
            let r = req.send().await.expect("send");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s1, a1) = post(
        &op,
        "new-acct-1",
        "/api/admin/v1/accounts".into(),
        json!({"name": "acme", "credits": 100}),
    )
    .await;
    let (s2, a2) = post(
        &op,
        "new-acct-1",
        "/api/admin/v1/accounts".into(),
        json!({"name": "acme", "credits": 100}),
    )
    .await;
    assert_eq!((s1, s2), (201, 201), "{a1} {a2}");
    assert_eq!(a1, a2, "the retry replays the first answer");
    let id = a1["id"].as_str().expect("id").to_owned();
    let grant = json!({"amount": 50, "kind": "grant", "reason": "invoice 7"});
    let path = format!("/api/admin/v1/accounts/{id}/credits");
    let (_, g1) = post(&op, "grant-7", path.clone(), grant.clone()).await;
    let (_, g2) = post(&op, "grant-7", path.clone(), grant.clone()).await;
    assert_eq!(
        (g1["balance"].clone(), g2["balance"].clone()),
        (json!(150), json!(150)),
        "granted once"
    );
    let (s, v) = post(
        &op,
        "grant-7",
        path.clone(),
        json!({"amount": 60, "kind": "grant", "reason": "invoice 7"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (409, json!("idempotency_conflict")),
        "{v}"
    );
    // Another operator's key of the same name is its own.
    let (_, g3) = post(&other, "grant-7", path.clone(), grant.clone()).await;
    assert_eq!(g3["balance"], 200);
    let acct = gengate_core::ids::AccountId::parse(&id).expect("id");
    assert_eq!(app.balance(&acct).await, 200);
    // A refused change frees the key: the retry runs afresh.
    let too_much = json!({"amount": -500, "kind": "adjustment", "reason": "oops"});
    let (s, _) = post(&op, "adj-1", path.clone(), too_much.clone()).await;
    assert_eq!(s, 409);
    let (s, _) = post(&op, "adj-1", path.clone(), too_much).await;
    assert_eq!(s, 409, "ran again, refused again");
    // A key made on the account's behalf: the replay has no secret.
    let kpath = format!("/api/admin/v1/accounts/{id}/keys");
    let (s, k1) = post(&op, "key-1", kpath.clone(), json!({"name": "ci"})).await;
    assert_eq!(s, 201);
    assert!(k1["secret"].is_string());
    let (s, k2) = post(&op, "key-1", kpath, json!({"name": "ci"})).await;
    assert_eq!(s, 201);
    assert_eq!(k2["id"], k1["id"]);
    assert!(k2.get("secret").is_none(), "{k2}");
    let (_, keys) = send(
        &app,
        "GET",
        &format!("/api/admin/v1/accounts/{id}/keys"),
        &op,
        None,
    )
    .await;
    assert_eq!(
        keys["data"].as_array().map(Vec::len),
        Some(1),
        "one key made"
    );
}

/// `gengate accounts | credits | keys | audit-log` with GENGATE_OPERATOR_KEY and GENGATE_URL
/// go through the admin API of a running server (the real binary, no database flags).
async fn the_operator_commands_run_against_a_remote_server(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let op = app.operator("remote-ops", OperatorRole::Admin).await;
    let work = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"))
            .args(args)
            .current_dir(work.path())
            .env_remove("GENGATE_DATABASE_URL")
            .env("GENGATE_OPERATOR_KEY", &op)
            .env("GENGATE_URL", &app.base)
            .output()
            .expect("gengate runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["accounts", "create", "remote-acme", "--credits", "300"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("remote-acme\t300 credits"), "{out}");
    let (ok, out, err) = run(&[
        "credits",
        "grant",
        "--account",
        "remote-acme",
        "50",
        "--reason",
        "invoice 9",
    ]);
    assert!(ok && out.trim() == "balance 350", "{out}{err}");
    let (ok, out, err) = run(&[
        "credits",
        "adjust",
        "--account",
        "remote-acme",
        "--reason",
        "too much",
        "-1000",
    ]);
    assert!(!ok && err.contains("insufficient_credits"), "{out}{err}");
    let (ok, out, _) = run(&["credits", "show", "--account", "remote-acme"]);
    assert!(
        ok && out.contains("350 credits") && out.contains("invoice 9"),
        "{out}"
    );
    let (ok, out, err) = run(&["keys", "create", "--account", "remote-acme", "--name", "ci"]);
    assert!(ok, "{out}{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret (shown once): "))
        .expect("secret")
        .to_owned();
    let (s, v) = send(&app, "GET", "/api/v1/credits", &secret, None).await;
    assert_eq!((s, v["current_credits"].clone()), (200, json!(350)));
    let key_id = out
        .lines()
        .next()
        .and_then(|l| l.split('\t').next())
        .expect("key id")
        .to_owned();
    let (ok, out, err) = run(&[
        "keys",
        "limit",
        &key_id,
        "--spend-limit",
        "100",
        "--spend-window",
        "24h",
    ]);
    assert!(ok && out.contains("spend limit 100"), "{out}{err}");
    let (ok, out, _) = run(&["accounts", "list"]);
    assert!(ok && out.contains("remote-acme"), "{out}");
    let (ok, out, _) = run(&["audit-log", "--actor", "remote-ops"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("credits.grant")
            && out.contains("account.create")
            && out.contains("key.create"),
        "{out}"
    );
    // A database named on the command line wins over the key in the environment.
    let (ok, out, err) = run(&[
        "accounts",
        "list",
        "--database-url",
        &app.database_url,
        "--data-dir",
        app.data_dir.to_str().expect("utf-8 path"),
    ]);
    assert!(
        ok && out.contains("remote-acme") && !out.contains("\tactive\t"),
        "straight from the database: {out}{err}"
    );
    // What the admin API does not offer says so and changes nothing.
    let (ok, _, err) = run(&["credits", "audit"]);
    assert!(!ok && err.contains("database only"), "{err}");
    assert!(
        app.running
            .engine
            .store
            .list_operators()
            .await
            .expect("operators")
            .len()
            == 1
    );
    let (ok, _, err) = run(&["operators", "create", "x", "--role", "admin"]);
    assert!(!ok && err.contains("database only"), "{err}");
    assert_eq!(
        app.running
            .engine
            .store
            .list_operators()
            .await
            .expect("operators")
            .len(),
        1
    );
    // The same through --url and --operator-key, with nothing in the environment.
    let bare = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"))
            .args(args)
            .current_dir(work.path())
            .env_remove("GENGATE_DATABASE_URL")
            .env_remove("GENGATE_OPERATOR_KEY")
            .env_remove("GENGATE_URL")
            .output()
            .expect("gengate runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = bare(&[
        "credits",
        "grant",
        "--account",
        "remote-acme",
        "7",
        "--reason",
        "by flags",
        "--url",
        &app.base,
        "--operator-key",
        &op,
    ]);
    assert!(ok && out.trim() == "balance 357", "{out}{err}");
    let (ok, out, _) = bare(&["audit-log", "--url", &app.base, "--operator-key", &op]);
    assert!(ok && out.contains("by flags"), "{out}");
    // --url without a key refuses, rather than quietly opening a local database.
    let (ok, _, err) = bare(&["accounts", "list", "--url", &app.base]);
    assert!(!ok && err.contains("operator key"), "{err}");
    assert!(
        !work.path().join("gengate-data").exists(),
        "nothing was created locally"
    );
}

async fn the_overview_counts_open_tasks_and_times_results(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let op = app.operator("ops", OperatorRole::Viewer).await;
    let (me_status, me) = send(&app, "GET", "/api/admin/v1/me", &op, None).await;
    assert_eq!(me_status, 200);
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("ops"), Some("viewer"))
    );
    let (_, key) = app.account("alpha", 1000).await;
    for prompt in ["one", "two"] {
        let t = app
            .post_json(
                "/api/v1/generations",
                &key,
                &common::kling(prompt, json!({"duration": "3"})),
            )
            .await;
        app.wait_terminal(&key, t["id"].as_str().expect("id"), 90)
            .await;
    }
    let slow = app
        .post_json(
            "/api/v1/generations",
            &key,
            &common::kling("slow [sandbox:slow=30]", json!({"duration": "3"})),
        )
        .await;
    let (status, o) = send(&app, "GET", "/api/admin/v1/overview?hours=6", &op, None).await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["object"], "overview");
    assert_eq!(
        o["queued"].as_i64().unwrap_or(0) + o["processing"].as_i64().unwrap_or(0),
        1,
        "{o}"
    );
    assert_eq!(o["sampled"], 2, "{o}");
    let p50 = o["latency"]["p50_ms"].as_i64().expect("p50");
    assert!(
        p50 > 0 && p50 <= o["latency"]["p95_ms"].as_i64().expect("p95"),
        "{o}"
    );
    assert_eq!(o["by_provider"][0]["provider"], "sandbox");
    let points = o["open_tasks"].as_array().expect("open_tasks");
    assert_eq!(points.len(), 7, "six hour starts and now: {o}");
    assert_eq!(points.last().map(|p| p["open"].clone()), Some(json!(1)));
    assert_eq!(points[0]["open"], 0, "nothing was open six hours ago: {o}");
    // The story shows what the caller asked for.
    let (_, story) = send(
        &app,
        "GET",
        &format!(
            "/api/admin/v1/generations/{}",
            slow["id"].as_str().expect("id")
        ),
        &op,
        None,
    )
    .await;
    assert_eq!(story["prompt"], "slow [sandbox:slow=30]");
    assert_eq!(story["params"]["duration"], "3");
    for bad in ["0", "169", "x"] {
        let (status, e) = send(
            &app,
            "GET",
            &format!("/api/admin/v1/overview?hours={bad}"),
            &op,
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(e["error"]["details"][0]["field"], "hours");
    }
}
