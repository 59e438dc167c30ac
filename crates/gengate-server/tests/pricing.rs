//! Prices as data (issue 23) over real HTTP, on both engines: rules priced per request,
//! an account's adjustment, quotes equal to reserves equal to ledger debits, refunds equal
//! to what was taken, the built-in `kling-3-0` at 90, and the catalog re-read on SIGHUP.

mod common;

use common::{Engine, TestApp};
use gengate_core::credits::LedgerKind;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

on_both_engines!(
    quotes_equal_reserves_and_ledger_debits_and_refunds_give_back_exactly_that,
    kling_3_0_stays_fixed_at_90_everywhere,
);

/// The built-in catalog plus `kling-3-0-metered`: kling-3-0 priced by rules.
fn catalog_with_rules(base: i64) -> String {
    let mut doc: Value =
        serde_json::from_str(gengate_core::catalog::BUILTIN_CATALOG).expect("builtin");
    let mut m = doc["models"][0].clone();
    m["id"] = json!("kling-3-0-metered");
    m["display_name"] = json!("Kling 3.0 (metered)");
    m["billing_type"] = json!("RULES");
    m["pricing"] = json!({
        "base": base,
        "per_unit": [{"param": "duration", "credits": 12, "unit": "s"}],
        "surcharges": [
            {"param": "mode", "value": "pro", "credits": 35},
            {"param": "sound", "value": "true", "credits": 17}
        ]
    });
    // Defaults: duration 5, mode pro, sound false.
    m["base_credits"] = json!(base + 60 + 35);
    doc["models"].as_array_mut().expect("models").push(m);
    doc.to_string()
}

async fn metered_app(engine: Engine, base: i64, extra: &[&str]) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("models.json");
    std::fs::write(&path, catalog_with_rules(base)).expect("catalog");
    let mut args = vec!["--catalog", path.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    (TestApp::spawn_with(engine, &args).await, dir)
}

fn random_body(rng: &mut impl Rng) -> Value {
    let pick =
        |rng: &mut dyn rand::RngCore, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_owned();
    json!({
        "model": "kling-3-0-metered",
        "prompt": "priced",
        "params": {
            "duration": rng.random_range(3..=15).to_string(),
            "mode": pick(rng, &["std", "pro"]),
            "sound": pick(rng, &["false", "true"]),
            "aspect_ratio": pick(rng, &["16:9", "9:16", "1:1"]),
        }
    })
}

fn expected(body: &Value, adjustment: i64) -> i64 {
    let p = &body["params"];
    let duration: i64 = p["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("duration");
    let list = 20
        + 12 * duration
        + if p["mode"] == "pro" { 35 } else { 0 }
        + if p["sound"] == "true" { 17 } else { 0 };
    // Rounded up to a whole credit.
    (list * (100 + adjustment) + 99) / 100
}

async fn quotes_equal_reserves_and_ledger_debits_and_refunds_give_back_exactly_that(
    engine: Engine,
) {
    let (app, _dir) = metered_app(engine, 20, &["--no-runner"]).await;
    let (acct, key) = app.account("wholesale", 1_000_000).await;
    assert!(
        app.running
            .engine
            .store
            .set_price_adjustment(&acct, -20)
            .await
            .expect("adjust")
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let mut quoted = Vec::new();
    for i in 0..200 {
        let body = random_body(&mut rng);
        let before = app.balance(&acct).await;
        let q = app
            .post_json("/api/v1/generations/quote", &key, &body)
            .await;
        let credits = q["credits"].as_i64().unwrap_or_else(|| panic!("{q}"));
        assert_eq!(credits, expected(&body, -20), "{body} → {q}");
        assert_eq!(q["billing_type"], "RULES");
        assert_eq!(q["balance_after"], json!(before - credits));
        let lines: i64 = q["breakdown"]
            .as_array()
            .expect("breakdown")
            .iter()
            .map(|l| l["credits"].as_i64().expect("credits"))
            .sum();
        assert_eq!(lines, credits, "the breakdown sums to the price: {q}");
        assert_eq!(app.balance(&acct).await, before, "a quote charges nothing");
        let r = app
            .post("/api/v1/generations", &key, &body)
            .header("idempotency-key", format!("price-{i}"))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), 202);
        let t: Value = r.json().await.expect("task");
        assert_eq!(t["reserved_credits"], json!(credits), "reserve == quote");
        quoted.push((t["id"].as_str().expect("id").to_owned(), credits));
    }
    // Every third task is canceled: its refund is exactly its reserve.
    for (id, _) in quoted.iter().step_by(3) {
        let r = app
            .post(
                &format!("/api/v1/generations/{id}/cancel"),
                &key,
                &json!({}),
            )
            .send()
            .await
            .expect("cancel");
        assert_eq!(r.status(), 200, "{id}");
    }
    let ledger = app
        .running
        .engine
        .store
        .ledger(&acct)
        .await
        .expect("ledger");
    for (n, (id, credits)) in quoted.iter().enumerate() {
        let rows: Vec<_> = ledger
            .iter()
            .filter(|e| e.task_id.as_ref().map(|t| t.as_str()) == Some(id.as_str()))
            .collect();
        let debit: Vec<i64> = rows
            .iter()
            .filter(|e| e.kind == LedgerKind::Reserve)
            .map(|e| e.amount)
            .collect();
        assert_eq!(
            debit,
            vec![-credits],
            "{id}: the ledger's debit is the quote"
        );
        let refund: Vec<i64> = rows
            .iter()
            .filter(|e| e.kind == LedgerKind::Refund)
            .map(|e| e.amount)
            .collect();
        let want = if n % 3 == 0 { vec![*credits] } else { vec![] };
        assert_eq!(
            refund, want,
            "{id}: a refund gives back exactly what was taken"
        );
    }
    // A bad request is refused as a create refuses it, naming every bad field.
    let bad = app
        .post(
            "/api/v1/generations/quote",
            &key,
            &json!({"model": "kling-3-0-metered", "prompt": "", "params": {"duration": "16", "mode": "ultra"}}),
        )
        .send()
        .await
        .expect("quote");
    assert_eq!(bad.status(), 400);
    let e: Value = bad.json().await.expect("json");
    let fields: Vec<&str> = e["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    for f in ["prompt", "params.duration", "params.mode"] {
        assert!(fields.contains(&f), "{f} in {e}");
    }
    // The model shows its rules, so a client can compute the price itself.
    let m = app.get_json("/api/v1/models/kling-3-0-metered", &key).await;
    assert_eq!(m["billing_type"], "RULES");
    assert_eq!(m["pricing"]["per_unit"][0]["credits"], 12);
    assert_eq!(m["base_credits"], 115);
    app.assert_ledger_balances().await;
}

async fn kling_3_0_stays_fixed_at_90_everywhere(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acct, key) = app.account("retail", 1000).await;
    let body = common::kling(
        "fixed",
        json!({"duration": "15", "mode": "pro", "sound": "true"}),
    );
    let q = app
        .post_json("/api/v1/generations/quote", &key, &body)
        .await;
    assert_eq!(
        (q["credits"].clone(), q["billing_type"].clone()),
        (json!(90), json!("FIXED"))
    );
    assert_eq!(q["balance_after"], 910);
    let t = app.post_json("/api/v1/generations", &key, &body).await;
    assert_eq!(t["reserved_credits"], 90);
    assert_eq!(app.balance(&acct).await, 910);
    let m = app.get_json("/api/v1/models/kling-3-0", &key).await;
    assert_eq!(
        (m["billing_type"].clone(), m["base_credits"].clone()),
        (json!("FIXED"), json!(90))
    );
    assert!(m.get("pricing").is_none(), "{m}");
    // A key without generations:create cannot ask for a quote.
    let reader = app
        .key(
            &acct,
            vec![gengate_core::scope::Scope::GenerationsRead],
            None,
            Default::default(),
        )
        .await;
    let r = app
        .post("/api/v1/generations/quote", &reader, &body)
        .send()
        .await
        .expect("quote");
    assert_eq!(r.status(), 403);
}

/// SIGHUP re-reads the catalog file: the next quote has the new price, a task created
/// before keeps its old one through to its end, and a broken file changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catalog_edit_and_sighup_change_the_next_price_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("models.json");
    std::fs::write(&path, catalog_with_rules(20)).expect("catalog");
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &["--catalog", path.to_str().expect("utf-8")],
    )
    .await;
    let (acct, key) = app.account("a", 10_000).await;
    let body = json!({"model": "kling-3-0-metered", "prompt": "slow [sandbox:slow=4]", "params": {"duration": "3", "mode": "std"}});
    let old = app.post_json("/api/v1/generations", &key, &body).await;
    assert_eq!(old["reserved_credits"], 20 + 36);
    let hup = || {
        // The test process is the server: signal ourselves.
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok);
    };
    std::fs::write(&path, catalog_with_rules(50)).expect("catalog");
    hup();
    let mut price = 0;
    for _ in 0..100 {
        let q = app
            .post_json("/api/v1/generations/quote", &key, &body)
            .await;
        price = q["credits"].as_i64().unwrap_or(0);
        if price == 50 + 36 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(price, 86, "the next quote has the new price");
    // A broken file is refused whole: the price stays.
    let mut broken: Value = serde_json::from_str(&catalog_with_rules(50)).expect("json");
    let metered = broken["models"].as_array().map_or(0, Vec::len) - 1;
    broken["models"][metered]["pricing"]["surcharges"][0]["credits"] = json!(-1);
    std::fs::write(&path, broken.to_string()).expect("catalog");
    hup();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let q = app
        .post_json("/api/v1/generations/quote", &key, &body)
        .await;
    assert_eq!(q["credits"], 86);
    // The admin API reloads the same way, says why it refused, and audits a reload.
    let op = app
        .operator("pricer", gengate_core::operator::OperatorRole::Admin)
        .await;
    let reload = || {
        app.http
            .post(app.url("/api/admin/v1/catalog/reload"))
            .bearer_auth(&op)
            .send()
    };
    let r = reload().await.expect("reload");
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error"]["details"][0]["field"], "catalog", "{e}");
    let why = e["error"]["details"][0]["message"].as_str().unwrap_or("");
    assert!(
        why.contains("kling-3-0-metered") && why.contains("pricing.surcharges[0].credits"),
        "{why}"
    );
    std::fs::write(&path, catalog_with_rules(60)).expect("catalog");
    assert_eq!(reload().await.expect("reload").status(), 200);
    let q = app
        .post_json("/api/v1/generations/quote", &key, &body)
        .await;
    assert_eq!(q["credits"], 96);
    let audit: Value = app
        .http
        .get(app.url("/api/admin/v1/audit?action=catalog.reload"))
        .bearer_auth(&op)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(1), "{audit}");
    // The old task settles at its old price.
    let id = old["id"].as_str().expect("id");
    let done = app.wait_terminal(&key, id, 90).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["final_credits"], 56);
    let ledger = app
        .running
        .engine
        .store
        .ledger(&acct)
        .await
        .expect("ledger");
    let taken: i64 = ledger
        .iter()
        .filter(|e| e.task_id.as_ref().map(|t| t.as_str()) == Some(id))
        .map(|e| e.amount)
        .sum();
    assert_eq!(taken, -56);
    app.assert_ledger_balances().await;
}
