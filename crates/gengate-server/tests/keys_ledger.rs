//! The API additions the console needs (issue 12), over real HTTP on SQLite
//! and PostgreSQL: the account's ledger (`/api/v1/credits/transactions`) and
//! its own keys (`/api/v1/keys`, scope `keys:manage`).

mod common;

use common::{Engine, TestApp, kling};
use gengate_core::credits::LedgerKind;
use gengate_core::scope::Scope;
use gengate_store::RateOverrides;
use serde_json::{Value, json};

on_both_engines!(
    the_ledger_lists_every_change_newest_first_in_pages,
    the_ledger_is_the_accounts_own_and_needs_credits_read,
    keys_are_listed_without_secrets_with_their_last_use,
    a_key_creates_keys_no_stronger_than_itself,
    a_revoked_key_is_refused_at_once_and_foreign_keys_are_not_found,
);

async fn the_ledger_lists_every_change_newest_first_in_pages(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acc, key) = app.account("ledger", 1000).await;
    let ok = app
        .post_json(
            "/api/v1/generations",
            &key,
            &kling("a calm sea", json!({"duration": "3"})),
        )
        .await;
    let bad = app
        .post_json(
            "/api/v1/generations",
            &key,
            &kling("boom [sandbox:fail]", json!({"duration": "3"})),
        )
        .await;
    let ok_id = ok["id"].as_str().expect("task id").to_owned();
    let bad_id = bad["id"].as_str().expect("task id").to_owned();
    assert_eq!(
        app.wait_terminal(&key, &ok_id, 60).await["status"],
        "succeeded"
    );
    assert_eq!(
        app.wait_terminal(&key, &bad_id, 60).await["status"],
        "failed"
    );
    let st = &app.running.engine;
    gengate_engine::accounts::change_credits(
        st.store.as_ref(),
        &acc,
        LedgerKind::Adjust,
        -10,
        "goodwill correction",
        st.clock.now(),
    )
    .await
    .expect("adjust");

    // Two pages of two and one of one, newest first.
    let mut all = Vec::new();
    let mut path = "/api/v1/credits/transactions?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = app.get_json(&path, &key).await;
        assert_eq!(page["object"], "list", "{page}");
        let data = page["data"].as_array().expect("data").clone();
        assert!(data.len() <= 2);
        pages += 1;
        all.extend(data.clone());
        if page["has_more"] == false {
            break;
        }
        let last = data.last().expect("a full page")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(last.starts_with("ctx_"), "{last}");
        path = format!("/api/v1/credits/transactions?limit=2&starting_after={last}");
    }
    assert_eq!(pages, 3);
    let kinds: Vec<&str> = all.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    // The two debits may land in either order relative to each other's
    // refund, but the newest is the adjustment and the oldest the grant.
    assert_eq!(kinds.first(), Some(&"adjustment"));
    assert_eq!(kinds.last(), Some(&"grant"));
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(sorted, ["adjustment", "debit", "debit", "grant", "refund"]);
    let refund = all.iter().find(|t| t["kind"] == "refund").unwrap();
    assert_eq!(refund["amount"], 90);
    assert_eq!(refund["task_id"], bad_id.as_str());
    let debits: Vec<&Value> = all.iter().filter(|t| t["kind"] == "debit").collect();
    assert!(debits.iter().all(|d| d["amount"] == -90));
    let adj = &all[0];
    assert_eq!(adj["amount"], -10);
    assert_eq!(adj["reason"], "goodwill correction");
    assert_eq!(adj["task_id"], Value::Null);
    assert_eq!(adj["balance_after"], 900);
    assert!(adj["created_at"].as_str().unwrap().ends_with('Z'));
    // The balance is the sum of the amounts, and the newest balance_after.
    let sum: i64 = all.iter().map(|t| t["amount"].as_i64().unwrap()).sum();
    assert_eq!(sum, 900);
    assert_eq!(app.balance(&acc).await, 900);
    let ids: std::collections::HashSet<&str> =
        all.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "no row twice across pages");

    // Bad paging names every bad field.
    let r = app
        .get(
            "/api/v1/credits/transactions?limit=0&starting_after=task_x",
            &key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "validation_failed");
    let fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["limit", "starting_after"]);
    app.assert_ledger_balances().await;
}

async fn the_ledger_is_the_accounts_own_and_needs_credits_read(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (_, a) = app.account("alice", 300).await;
    let (bob, b) = app.account("bob", 50).await;
    let v = app.get_json("/api/v1/credits/transactions", &a).await;
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["kind"], "grant");
    assert_eq!(data[0]["amount"], 300);
    // Bob's cursor is only a position: it shows none of Bob's rows to Alice.
    let bobs = app.get_json("/api/v1/credits/transactions", &b).await;
    let bob_cursor = bobs["data"][0]["id"].as_str().unwrap().to_owned();
    let v = app
        .get_json(
            &format!("/api/v1/credits/transactions?starting_after={bob_cursor}"),
            &a,
        )
        .await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["amount"] == 300),
        "{v}"
    );
    let narrow = app
        .key(
            &bob,
            vec![Scope::GenerationsRead],
            None,
            RateOverrides::default(),
        )
        .await;
    let r = app
        .get("/api/v1/credits/transactions", &narrow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "api_scope_denied");
}

async fn keys_are_listed_without_secrets_with_their_last_use(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (_, key) = app.account("lister", 0).await;
    // The list call itself is a use; the last-used write is in the background.
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = app.get_json("/api/v1/keys", &key).await;
        if !listed["data"][0]["last_used_at"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["has_more"], false);
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{listed}");
    let k = &data[0];
    assert_eq!(k["object"], "api_key");
    assert!(k["id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(k["prefix"], &key[..16]);
    assert_eq!(k["name"], "test");
    assert_eq!(
        k["scopes"].as_array().unwrap().len(),
        Scope::ALL.len(),
        "an operator key has every scope, keys:manage included"
    );
    assert!(
        k["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("keys:manage"))
    );
    assert!(k["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        k["last_used_at"].as_str().is_some(),
        "last use recorded: {k}"
    );
    assert_eq!(k["expires_at"], Value::Null);
    assert_eq!(k["revoked_at"], Value::Null);
    let text = listed.to_string();
    assert!(!text.contains(&key[16..]), "the secret never appears");
    assert!(k.get("secret").is_none() && k.get("key_hash").is_none());
}

fn detail_fields(v: &Value) -> Vec<String> {
    v["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|p| p["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn a_key_creates_keys_no_stronger_than_itself(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, full) = app.account("minter", 500).await;

    // A full key makes a narrow one; the secret is in this answer only.
    let r = app
        .post(
            "/api/v1/keys",
            &full,
            &json!({"name": "read only", "scopes": ["credits:read", "keys:manage"],
                    "expires_at": "2099-01-01T00:00:00.000Z"}),
        )
        .header("Idempotency-Key", "mint-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let secret = made["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("gg_live_"));
    assert_eq!(made["prefix"], &secret[..16]);
    assert_eq!(made["scopes"], json!(["credits:read", "keys:manage"]));
    assert_eq!(made["expires_at"], "2099-01-01T00:00:00.000Z");
    // The new key works within its scopes and nowhere else.
    let v = app.get_json("/api/v1/credits", &secret).await;
    assert_eq!(v["current_credits"], 500);
    let r = app
        .post("/api/v1/generations", &secret, &kling("x", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A replay answers the same key, without the secret (stored nowhere).
    let r = app
        .post(
            "/api/v1/keys",
            &full,
            &json!({"name": "read only", "scopes": ["credits:read", "keys:manage"],
                    "expires_at": "2099-01-01T00:00:00.000Z"}),
        )
        .header("Idempotency-Key", "mint-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["id"], made["id"]);
    assert!(again.get("secret").is_none(), "{again}");
    let stored = gengate_store::testing::raw_count(
        &app.database_url,
        &format!(
            "SELECT COUNT(*) FROM idempotency_keys WHERE response_body LIKE '%{}%'",
            &secret[16..]
        ),
    )
    .await
    .unwrap();
    assert_eq!(stored, 0, "the secret is not kept for replays");

    let count = || async {
        app.running
            .engine
            .store
            .list_api_keys(Some(&acc))
            .await
            .unwrap()
            .len()
    };
    assert_eq!(count().await, 2);
    // The narrow key cannot grant what it lacks, nor outlive itself, and
    // every bad field is named; nothing is created.
    let r = app
        .post(
            "/api/v1/keys",
            &secret,
            &json!({"name": "", "scopes": ["credits:read", "generations:create", "root"],
                    "expires_at": "2100-01-01T00:00:00Z", "owner": "me"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "validation_failed");
    assert_eq!(
        detail_fields(&v),
        ["owner", "name", "scopes[1]", "scopes[2]", "expires_at"]
    );
    assert_eq!(count().await, 2);
    // Left out, scopes and expiry are the caller's own.
    let v = app
        .post_json("/api/v1/keys", &secret, &json!({"name": "child"}))
        .await;
    assert_eq!(v["scopes"], json!(["credits:read", "keys:manage"]), "{v}");
    assert_eq!(v["expires_at"], "2099-01-01T00:00:00.000Z");
    assert!(v["secret"].as_str().is_some());
    assert_eq!(count().await, 3);
    // Without keys:manage, the keys endpoints are refused.
    let plain = app
        .key(
            &acc,
            vec![Scope::CreditsRead],
            None,
            RateOverrides::default(),
        )
        .await;
    for r in [
        app.get("/api/v1/keys", &plain).send().await.unwrap(),
        app.post("/api/v1/keys", &plain, &json!({"name": "x"}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), 403);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "api_scope_denied");
    }
}

async fn a_revoked_key_is_refused_at_once_and_foreign_keys_are_not_found(engine: Engine) {
    // A long key cache: revoking through the API still takes effect at once on this node.
    let app = TestApp::spawn_with(engine, &["--no-runner", "--key-cache-ms", "60000"]).await;
    let (_, owner) = app.account("owner", 100).await;
    let (_, stranger) = app.account("stranger", 100).await;
    let made = app
        .post_json("/api/v1/keys", &owner, &json!({"name": "temp"}))
        .await;
    let (id, secret) = (
        made["id"].as_str().unwrap().to_owned(),
        made["secret"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        app.get_json("/api/v1/credits", &secret).await["current_credits"],
        100
    );

    // Another account's key id is not found, and changes nothing.
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        app.get_json("/api/v1/credits", &secret).await["current_credits"],
        100
    );
    let r = app
        .http
        .delete(app.url("/api/v1/keys/not-a-key"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = app
        .http
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], id.as_str());
    let revoked_at = v["revoked_at"].as_str().expect("revoked_at").to_owned();
    assert!(v.get("secret").is_none());
    let r = app.get("/api/v1/credits", &secret).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "api_key_revoked");
    // Again: the same answer, the first revocation time kept.
    let v: Value = app
        .http
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["revoked_at"], revoked_at.as_str());
    let listed = app.get_json("/api/v1/keys", &owner).await;
    let row = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("revoked keys stay listed")
        .clone();
    assert_eq!(row["revoked_at"], revoked_at.as_str());
    // Newest first.
    assert_eq!(listed["data"][0]["id"], id.as_str());
}
