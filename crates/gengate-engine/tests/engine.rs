//! The engine's rules, driven through its handle without HTTP, on SQLite
//! and on PostgreSQL: money moves once (debit at create, refund of exactly
//! that on failure or cancel), refusals change nothing, cancels racing the
//! runner (and each other) never refund twice, one idempotency key makes
//! one task however many requests race on it, a job whose worker died
//! is taken over when its lease lapses, keys stop authenticating when
//! revoked or expired, and vendor callbacks need our token.

use clap::Parser;
use gengate_core::Credits;
use gengate_core::clock::SystemClock;
use gengate_core::credits::LedgerKind;
use gengate_core::generation::{Task, TaskErrorCode, TaskStatus, parse_create_request};
use gengate_core::idempotency::{IdempotencyKey, canonical_json};
use gengate_core::ids::{AccountId, ApiKeyId, TaskId};
use gengate_core::scope::Scope;
use gengate_core::spend::SpendLimit;
use gengate_engine::accounts;
use gengate_engine::accounts::auth::AuthError;
use gengate_engine::config::EngineArgs;
use gengate_engine::generations::idempotency::{self, IdemStart};
use gengate_engine::generations::{CancelError, GenerationError, WaitUntil};
use gengate_engine::{Background, CallbackOutcome, Engine};
use gengate_store::{CreateTaskError, RateOverrides};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: EngineArgs,
}

#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

struct Env {
    engine: Engine,
    _dir: tempfile::TempDir,
}

/// An engine on a fresh database, built from flags as the binary builds it.
async fn env(db: Db, extra: &[&str]) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match db {
        Db::Sqlite => gengate_store::testing::fresh_sqlite_url(dir.path()),
        Db::Postgres => gengate_store::testing::fresh_postgres_url().await,
    };
    let data_dir = dir.path().display().to_string();
    let mut argv = vec![
        "engine",
        "--data-dir",
        &data_dir,
        "--database-url",
        &url,
        "--no-bootstrap",
        "--runner-poll-ms",
        "50",
        "--sweep-ms",
        "200",
    ];
    argv.extend_from_slice(extra);
    let args = Wrapper::parse_from(argv).args;
    let engine = Engine::build(
        &args,
        Arc::new(SystemClock),
        "http://127.0.0.1:9".to_owned(),
        &gengate_outbound::Real,
    )
    .await
    .expect("engine builds");
    Env { engine, _dir: dir }
}

/// An account with `credits` and a key with every scope (and `limit`).
async fn account(
    e: &Engine,
    name: &str,
    credits: i64,
    limit: Option<SpendLimit>,
) -> (AccountId, ApiKeyId) {
    let now = e.clock.now();
    let a = accounts::create_account(e.store.as_ref(), name, credits, now)
        .await
        .expect("account");
    let k = accounts::issue_key(
        e.store.as_ref(),
        &a.id,
        "test",
        Scope::ALL.to_vec(),
        None,
        RateOverrides::default(),
        now,
    )
    .await
    .expect("key");
    if limit.is_some() {
        accounts::set_spend_limit(e.store.as_ref(), &k.record.id, limit)
            .await
            .expect("limit");
    }
    (a.id, k.record.id)
}

fn request(e: &Engine, prompt: &str) -> Value {
    let _ = e;
    json!({"model": "kling-3-0", "prompt": prompt, "params": {"mode": "std", "duration": "3", "aspect_ratio": "1:1"}})
}

async fn create(
    e: &Engine,
    acc: &AccountId,
    key: &ApiKeyId,
    prompt: &str,
) -> Result<Task, GenerationError> {
    let req =
        parse_create_request(&e.catalog.current(), &request(e, prompt)).expect("valid request");
    e.create_generation(acc, key, req, Vec::new(), None)
        .await
        .map(|(t, _)| t)
}

/// Waits for the task to end (long polls through the engine), at most `within`.
async fn ended(e: &Engine, acc: &AccountId, id: &TaskId, within: Duration) -> Task {
    let start = Instant::now();
    loop {
        let task = e
            .get_generation(acc, id)
            .await
            .expect("read")
            .expect("task exists");
        if task.status.is_terminal() {
            return Arc::unwrap_or_clone(task);
        }
        assert!(
            start.elapsed() < within,
            "task {id} still {:?} after {within:?}",
            task.status
        );
        e.wait_for_change(
            acc,
            Arc::unwrap_or_clone(task),
            Duration::from_secs(2),
            WaitUntil::Terminal,
        )
        .await
        .expect("wait");
    }
}

async fn balance(e: &Engine, acc: &AccountId) -> i64 {
    e.store.balance(acc).await.expect("balance").get()
}

/// Every balance equals the sum of its ledger.
async fn assert_books_balance(e: &Engine) {
    let bad = e.store.ledger_mismatches().await.expect("audit");
    assert!(bad.is_empty(), "ledger mismatches: {bad:?}");
}

/// Ledger rows of `kind` that name `task`.
async fn rows(e: &Engine, acc: &AccountId, task: &TaskId, kind: LedgerKind) -> Vec<i64> {
    e.store
        .ledger(acc)
        .await
        .expect("ledger")
        .into_iter()
        .filter(|r| r.kind == kind && r.task_id.as_ref() == Some(task))
        .map(|r| r.amount)
        .collect()
}

async fn stop(bg: Background) {
    tokio::time::timeout(Duration::from_secs(30), bg.shutdown())
        .await
        .expect("background loops stop");
}

async fn a_failed_task_gives_back_exactly_what_it_took(db: Db) {
    let env = env(db, &[]).await;
    let e = &env.engine;
    let (acc, key) = account(e, "refund", 200, None).await;
    let task = create(e, &acc, &key, "A lighthouse [sandbox:fail]")
        .await
        .expect("created");
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(balance(e, &acc).await, 110, "debited at create");
    let bg = e.start_background();
    let done = ended(e, &acc, &task.id, Duration::from_secs(60)).await;
    stop(bg).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert_eq!(
        done.error.as_ref().map(|x| x.code),
        Some(TaskErrorCode::GenerationFailed)
    );
    assert_eq!(balance(e, &acc).await, 200, "refunded in full");
    assert_eq!(
        rows(e, &acc, &task.id, LedgerKind::Reserve).await,
        vec![-90]
    );
    assert_eq!(rows(e, &acc, &task.id, LedgerKind::Refund).await, vec![90]);
    assert_books_balance(e).await;
}

async fn refusals_change_nothing(db: Db) {
    let env = env(db, &[]).await;
    let e = &env.engine;
    // A spend limit of 100 in total: one task fits, the second does not.
    let limit = SpendLimit::parse(100, None).expect("limit");
    let (acc, key) = account(e, "limited", 1_000, Some(limit)).await;
    create(e, &acc, &key, "first")
        .await
        .expect("first fits the limit");
    match create(e, &acc, &key, "second").await {
        Err(GenerationError::SpendLimit(r)) => {
            assert_eq!(r.spent, Credits::new(90).expect("credits"));
            assert_eq!(r.price, Credits::new(90).expect("credits"));
            assert_eq!(r.frees_at, None, "a fixed total frees only by refunds");
        }
        other => panic!("expected a spend-limit refusal, got {other:?}"),
    }
    assert_eq!(balance(e, &acc).await, 910, "only the first was charged");
    // Too few credits: refused whole.
    let (poor, poor_key) = account(e, "poor", 50, None).await;
    match create(e, &poor, &poor_key, "too dear").await {
        Err(GenerationError::Create(CreateTaskError::InsufficientCredits { balance, price })) => {
            assert_eq!((balance.get(), price.get()), (50, 90));
        }
        other => panic!("expected insufficient credits, got {other:?}"),
    }
    assert_eq!(balance(e, &poor).await, 50);
    let query = gengate_engine::generations::parse_list_query(&Default::default()).expect("query");
    let (tasks, _) = e.list_generations(&poor, &query).await.expect("list");
    assert!(tasks.is_empty(), "a refused create leaves no task");
    let (tasks, _) = e.list_generations(&acc, &query).await.expect("list");
    assert_eq!(tasks.len(), 1);
    assert_books_balance(e).await;
}

async fn cancels_racing_the_runner_and_each_other_refund_once(db: Db) {
    let env = env(db, &["--sandbox-concurrency", "2"]).await;
    let e = &env.engine;
    const N: usize = 8;
    let (acc, key) = account(e, "racer", 90 * N as i64, None).await;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            create(e, &acc, &key, &format!("race {i} [sandbox:slow=1]"))
                .await
                .expect("created")
                .id,
        );
    }
    assert_eq!(balance(e, &acc).await, 0);
    let bg = e.start_background();
    // Each task is canceled twice at once, some time after the runner took
    // it: `[sandbox:slow=1]` keeps it processing for a second, and the
    // cancels come from at once to well past that, so they land while it
    // runs, as the runner settles it, and after it ended.
    let mut racers = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (e, acc, id) = (e.clone(), acc.clone(), id.clone());
        racers.push(tokio::spawn(async move {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                let t = e
                    .get_generation(&acc, &id)
                    .await
                    .expect("read")
                    .expect("task");
                if t.status != TaskStatus::Queued {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(250 * i as u64)).await;
            let (a, b) = tokio::join!(
                e.cancel_generation(&acc, &id),
                e.cancel_generation(&acc, &id)
            );
            [a, b]
        }));
    }
    for r in racers {
        for outcome in r.await.expect("joined") {
            match outcome {
                Ok(_) | Err(CancelError::NotCancelable { .. }) => {}
                Err(other) => panic!("cancel failed: {other}"),
            }
        }
    }
    let mut succeeded = 0;
    for id in &ids {
        let t = ended(e, &acc, id, Duration::from_secs(120)).await;
        let debits = rows(e, &acc, id, LedgerKind::Reserve).await;
        let refunds = rows(e, &acc, id, LedgerKind::Refund).await;
        assert_eq!(debits, vec![-90], "{id}: one debit");
        match t.status {
            TaskStatus::Succeeded => {
                succeeded += 1;
                assert!(refunds.is_empty(), "{id} succeeded and was refunded");
                assert_eq!(t.final_credits.get(), 90);
            }
            TaskStatus::Failed => {
                assert_eq!(
                    t.error.as_ref().map(|x| x.code),
                    Some(TaskErrorCode::Canceled)
                );
                assert_eq!(refunds, vec![90], "{id}: one refund of exactly the debit");
                assert_eq!(t.final_credits.get(), 0);
            }
            other => panic!("{id} ended as {other:?}"),
        }
    }
    stop(bg).await;
    eprintln!("{succeeded} of {N} tasks finished before their cancels");
    assert_eq!(balance(e, &acc).await, 90 * (N as i64 - succeeded));
    assert_books_balance(e).await;
    // Canceling an ended task answers it as it is and moves no money.
    let before = balance(e, &acc).await;
    let again = e
        .cancel_generation(&acc, &ids[0])
        .await
        .expect("ended task");
    assert!(again.status.is_terminal());
    assert_eq!(balance(e, &acc).await, before);
}

async fn one_idempotency_key_makes_one_task(db: Db) {
    let env = env(db, &[]).await;
    let e = &env.engine;
    let (acc, key) = account(e, "idem", 1_000, None).await;
    let body = request(e, "once");
    let canonical = canonical_json(&body);
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (e, acc, key, body, canonical) = (
            e.clone(),
            acc.clone(),
            key.clone(),
            body.clone(),
            canonical.clone(),
        );
        racers.push(tokio::spawn(async move {
            let k = IdempotencyKey::parse("order-1").expect("key");
            match idempotency::begin(
                &e,
                &acc,
                Some(k),
                "POST",
                "/api/v1/generations",
                canonical.as_bytes(),
            )
            .await
            .expect("begin")
            {
                IdemStart::Proceed(hold) => {
                    assert!(hold.is_some(), "a key was sent");
                    let req = parse_create_request(&e.catalog.current(), &body).expect("valid");
                    let (task, _) = e
                        .create_generation(&acc, &key, req, Vec::new(), hold)
                        .await
                        .expect("created");
                    Some(task.id.to_string())
                }
                IdemStart::Replay(stored) => {
                    let v: Value = serde_json::from_str(&stored.body).expect("stored JSON");
                    Some(v["id"].as_str().expect("id").to_owned())
                }
                IdemStart::InFlight => None,
                IdemStart::Mismatch => panic!("same request, same key: no mismatch"),
            }
        }));
    }
    let mut seen = Vec::new();
    for r in racers {
        if let Some(id) = r.await.expect("joined") {
            seen.push(id);
        }
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "every answer names the same task: {seen:?}");
    assert_eq!(balance(e, &acc).await, 910, "charged once");
    // Later: a replay of the same task; another body under the key: a mismatch.
    let k = || Some(IdempotencyKey::parse("order-1").expect("key"));
    match idempotency::begin(
        e,
        &acc,
        k(),
        "POST",
        "/api/v1/generations",
        canonical.as_bytes(),
    )
    .await
    {
        Ok(IdemStart::Replay(stored)) => assert!(stored.body.contains(&seen[0])),
        _ => panic!("expected a replay"),
    }
    assert!(matches!(
        idempotency::begin(e, &acc, k(), "POST", "/api/v1/generations", b"{}").await,
        Ok(IdemStart::Mismatch)
    ));
    assert_books_balance(e).await;
}

async fn a_dead_workers_job_is_taken_over_after_its_lease(db: Db) {
    let env = env(db, &["--lease-ms", "1500"]).await;
    let e = &env.engine;
    let (acc, key) = account(e, "takeover", 200, None).await;
    let task = create(e, &acc, &key, "orphan").await.expect("created");
    // A worker leases the job and dies without a word.
    let leased = e
        .store
        .lease_jobs(
            "dead-worker",
            &["sandbox".to_owned()],
            e.clock.now(),
            Duration::from_millis(1500),
            10,
        )
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1);
    let leased_at = Instant::now();
    let bg = e.start_background();
    let done = ended(e, &acc, &task.id, Duration::from_secs(60)).await;
    let took = leased_at.elapsed();
    stop(bg).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    assert!(
        took >= Duration::from_millis(1400),
        "finished after {took:?}: the job was taken while its lease held"
    );
    assert_eq!(
        rows(e, &acc, &task.id, LedgerKind::Reserve).await,
        vec![-90]
    );
    assert!(rows(e, &acc, &task.id, LedgerKind::Refund).await.is_empty());
    assert_eq!(balance(e, &acc).await, 110);
    assert_books_balance(e).await;
}

async fn keys_authenticate_until_revoked_or_expired(db: Db) {
    let env = env(db, &[]).await;
    let e = &env.engine;
    let now = e.clock.now();
    let a = accounts::create_account(e.store.as_ref(), "auth", 0, now)
        .await
        .expect("account");
    let issue = |expires| {
        accounts::issue_key(
            e.store.as_ref(),
            &a.id,
            "k",
            Scope::ALL.to_vec(),
            expires,
            RateOverrides::default(),
            now,
        )
    };
    let live = issue(None).await.expect("key");
    let record = e
        .authenticate(&live.secret)
        .await
        .expect("a live key authenticates");
    assert_eq!(record.id, live.record.id);
    // The same prefix with another secret is not the key.
    let mut wrong = live.secret.clone();
    let last = wrong.pop().expect("non-empty");
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    assert!(matches!(
        e.authenticate(&wrong).await,
        Err(AuthError::Invalid)
    ));
    assert!(matches!(
        e.authenticate("gg_live_nope").await,
        Err(AuthError::Invalid)
    ));
    // Revoked on this node: refused at once (the key cache forgets it).
    e.revoke_key(&a.id, &live.record.id)
        .await
        .expect("revoke")
        .expect("found");
    assert!(matches!(
        e.authenticate(&live.secret).await,
        Err(AuthError::Revoked)
    ));
    let expired = issue(Some(now.plus(Duration::from_millis(200))))
        .await
        .expect("key");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        e.authenticate(&expired.secret).await,
        Err(AuthError::Expired)
    ));
}

async fn vendor_callbacks_need_our_token(db: Db) {
    let env = env(db, &[]).await;
    let e = &env.engine;
    let (acc, key) = account(e, "callbacks", 200, None).await;
    let task = create(e, &acc, &key, "called back").await.expect("created");
    let id = task.id.as_str();
    let token = gengate_engine::runner::callbacks::token(&e.links.key, "sandbox", &task.id);
    assert_eq!(
        e.vendor_callback("sandbox", id, "forged", b"{}").await,
        CallbackOutcome::BadToken
    );
    // A token is bound to its provider and task.
    assert_eq!(
        e.vendor_callback("kling", id, &token, b"{}").await,
        CallbackOutcome::BadToken
    );
    let other = gengate_engine::runner::callbacks::token(&e.links.key, "nobody", &task.id);
    assert_eq!(
        e.vendor_callback("nobody", id, &other, b"{}").await,
        CallbackOutcome::UnknownProvider
    );
    // The sandbox asks for no callbacks: a genuine one changes nothing.
    assert_eq!(
        e.vendor_callback("sandbox", id, &token, b"{}").await,
        CallbackOutcome::Ignored
    );
    let still = e
        .get_generation(&acc, &task.id)
        .await
        .expect("read")
        .expect("task");
    assert_eq!(still.status, TaskStatus::Queued);
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Db::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Db::Postgres).await })*
        }
    };
}

on_both!(
    a_failed_task_gives_back_exactly_what_it_took,
    refusals_change_nothing,
    cancels_racing_the_runner_and_each_other_refund_once,
    one_idempotency_key_makes_one_task,
    a_dead_workers_job_is_taken_over_after_its_lease,
    keys_authenticate_until_revoked_or_expired,
    vendor_callbacks_need_our_token,
);
