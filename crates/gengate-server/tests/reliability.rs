//! Crash and outage behaviour (issue 10, docs/RELIABILITY.md): idempotency
//! holds die with their process.

mod common;

use common::{Engine, kling};
use gengate_store::testing::{raw_count, raw_execute};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_engines!(a_retry_after_kill_9_is_answered_at_once_not_409);

/// Makes every task insert hang inside the database, so a create holds its
/// idempotency key for as long as the test wants: PostgreSQL sleeps, SQLite
/// (which cannot sleep, nor use WITH in a trigger) counts a huge cross join.
async fn stall_task_inserts(engine: Engine, url: &str) {
    let statements: &[&str] = match engine {
        Engine::Postgres => &[
            "CREATE FUNCTION test_stall() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(120); RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER test_stall BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION test_stall()",
        ],
        Engine::Sqlite => &[
            "CREATE TABLE test_burn (x INTEGER)",
            "INSERT INTO test_burn WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) SELECT x FROM c",
            "CREATE TRIGGER test_stall BEFORE INSERT ON tasks BEGIN SELECT count(*) FROM test_burn a, test_burn b, test_burn c; END",
        ],
    };
    for s in statements {
        raw_execute(url, s).await.expect("install the stall");
    }
}

/// Undoes `stall_task_inserts` once the stalled process is dead. PostgreSQL
/// would only notice the dead client when the sleep ends, with the account's
/// row still locked, so its leftover sessions are ended first.
async fn unstall_task_inserts(engine: Engine, url: &str) {
    let statements: &[&str] = match engine {
        Engine::Postgres => &[
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            "DROP TRIGGER test_stall ON tasks",
        ],
        Engine::Sqlite => &["DROP TRIGGER test_stall", "DROP TABLE test_burn"],
    };
    for s in statements {
        raw_execute(url, s).await.expect("remove the stall");
    }
}

async fn wait_for_count(url: &str, sql: &str, want: i64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let n = raw_count(url, sql).await.unwrap_or(-1);
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql} stayed {n}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 10 item 6: the real binary is SIGKILLed while a create holds its
/// Idempotency-Key. After the restart, the client's retry with the same key
/// is answered at once — a new 202, then replays of it — not
/// `409 idempotency_conflict` until the hold's lease runs out. The lease is
/// set far longer than the test, so only the restarted node's release of its
/// previous run's holds can free the key.
async fn a_retry_after_kill_9_is_answered_at_once_not_409(engine: Engine) {
    let db = common::seeded(engine, 1000).await;
    let mut server = common::Binary::new(&db, &["--idempotency-lease-ms", "600000"]);
    server.start().await;
    stall_task_inserts(engine, &db.url).await;

    let body = kling("a retried order", json!({"mode": "std", "duration": 5}));
    let http = reqwest::Client::new();
    let send = {
        let (http, url, key, body) = (
            http.clone(),
            server.url("/api/v1/generations"),
            db.key.clone(),
            body.clone(),
        );
        move || {
            http.post(&url)
                .bearer_auth(&key)
                .header("Idempotency-Key", "order-1")
                .json(&body)
                .send()
        }
    };
    let first = tokio::spawn(send());
    let in_flight = "SELECT COUNT(*) FROM idempotency_keys WHERE state = 'in_flight'";
    wait_for_count(&db.url, in_flight, 1, 60).await;
    server.kill9();
    let lost = tokio::time::timeout(Duration::from_secs(30), first)
        .await
        .expect("the killed request ends")
        .expect("join");
    assert!(lost.is_err(), "the killed request got an answer: {lost:?}");
    unstall_task_inserts(engine, &db.url).await;
    // The dead run's hold is still there until a node of the same id starts.
    assert_eq!(raw_count(&db.url, in_flight).await.unwrap(), 1);

    server.start().await;
    let started = Instant::now();
    let retry = send().await.expect("retry");
    let status = retry.status();
    let answer: Value = retry.json().await.expect("json");
    assert_eq!(status, 202, "the retry after the restart: {answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the retry took {:?}",
        started.elapsed()
    );
    let again = send().await.expect("replay");
    assert_eq!(again.status(), 202);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let replayed: Value = again.json().await.expect("json");
    assert_eq!(replayed["id"], answer["id"]);

    // One task, one debit: the killed attempt left nothing behind.
    assert_eq!(
        raw_count(&db.url, "SELECT COUNT(*) FROM tasks")
            .await
            .unwrap(),
        1
    );
    assert_eq!(db.store.balance(&db.account).await.unwrap().get(), 910);
    assert!(db.store.ledger_mismatches().await.unwrap().is_empty());
}
