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
);

async fn operator(app: &TestApp, name: &str, role: OperatorRole) -> String {
    let st = &app.running.engine;
    admin::create_operator(
        st.store.as_ref(),
        &Actor::cli(),
        name,
        role,
        None,
        st.clock.now(),
    )
    .await
    .expect("operator")
    .1
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
    let op = operator(&app, "ops", OperatorRole::Admin).await;
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
    let viewer = operator(&app, "watcher", OperatorRole::Viewer).await;
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
            let (status, v) = send(&app, &method, &path, &viewer, None).await;
            assert_eq!(status, 200, "{method} {path}: {v}");
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
    let op = operator(&app, "alice", OperatorRole::Admin).await;

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
    let op = operator(&app, "bob", OperatorRole::Admin).await;
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

    let soon = st.clock.now().plus(std::time::Duration::from_millis(300));
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
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (status, v) = send(&app, "GET", "/api/admin/v1/audit", &short, None).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (401, json!("operator_key_expired")),
        "{v}"
    );
}
