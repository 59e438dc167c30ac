//! One conformance suite, run against SQLite and PostgreSQL: every property
//! the rest of gengate relies on from its store.

use gengate_core::credits::LedgerKind;
use gengate_core::generation::{
    Prompt, StoredMedia, StoredResult, TaskError, TaskErrorCode, TaskStatus,
};
use gengate_core::ids::TaskId;
use gengate_core::params::NormalizedParams;
use gengate_core::{Credits, Timestamp};
use gengate_store::testing::{fresh_postgres_url, fresh_sqlite_url, raw_execute};
use gengate_store::*;
use std::sync::Arc;
use std::time::Duration;

struct Db {
    store: DynStore,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_sqlite_url(dir.path());
    let store = connect(&url, &ConnectOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    Db {
        store,
        url,
        _dir: Some(dir),
    }
}

async fn postgres() -> Db {
    let url = fresh_postgres_url().await;
    let store = connect(&url, &ConnectOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    Db {
        store,
        url,
        _dir: None,
    }
}

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn new_task(account: &gengate_core::ids::AccountId, price: i64, now: Timestamp) -> NewTask {
    NewTask {
        id: TaskId::generate(),
        account_id: account.clone(),
        model: "kling-3-0".into(),
        prompt: Prompt::from_stored("a cat — ک 🎬".into()),
        params: NormalizedParams::from_stored(serde_json::json!({"duration": "5", "mode": "pro"})),
        references: vec![],
        price: Credits::new(price).unwrap(),
        price_version: Some("p-test".into()),
        client_request_id: None,
        provider: "sandbox".into(),
        now,
        deadline_at: now.plus(Duration::from_secs(60)),
    }
}

macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name(super::sqlite().await).await } )* }
        mod on_postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name(super::postgres().await).await } )* }
    };
}

both_engines!(
    accounts_keys_and_values_round_trip,
    credits_never_go_negative_and_ledger_sums_match,
    the_database_itself_refuses_negative_balances_and_ledger_edits,
    create_task_debits_once_in_one_transaction,
    failed_task_refunds_exactly_once,
    state_machine_is_compare_and_set,
    idempotency_keys_start_replay_conflict_and_release,
    idempotency_holds_die_with_their_process,
    leases_are_exclusive_and_lapse,
    listing_is_newest_first_with_cursor_and_filters,
    concurrent_debits_never_overdraw,
    a_failing_create_among_concurrent_ones_spoils_none,
    concurrent_creates_across_accounts_keep_each_ledger_in_order,
    a_woken_job_is_due_now_and_never_later,
    operators_and_the_audit_log_round_trip,
    an_operators_credit_change_its_audit_line_and_its_answer_commit_together,
    the_overview_counts_open_tasks_and_reads_recent_successes,
);

async fn the_overview_counts_open_tasks_and_reads_recent_successes(db: Db) {
    use gengate_store::operators::OpenTasks;
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 1000, "g", t(1))
        .await
        .unwrap();
    assert_eq!(s.open_tasks().await.unwrap(), OpenTasks::default());
    let result = StoredResult { media: vec![] };
    let mut ids = vec![];
    for i in 0..5 {
        ids.push(
            s.create_task(&new_task(&a.id, 10, t(10 + i)), None)
                .await
                .unwrap()
                .id,
        );
    }
    // 0, 1, 2 succeed at 100, 200, 300; 3 runs; 4 waits.
    for (i, id) in ids.iter().enumerate().take(4) {
        s.mark_processing(id, t(50)).await.unwrap();
        if i < 3 {
            s.succeed_task(id, &result, t(100 * (i as i64 + 1)))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        s.open_tasks().await.unwrap(),
        OpenTasks {
            queued: 1,
            processing: 1
        }
    );
    let recent = s.recent_successes(t(150), 10).await.unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|f| (f.created_at, f.ended_at))
            .collect::<Vec<_>>(),
        vec![(t(12), t(300)), (t(11), t(200))]
    );
    assert!(recent.iter().all(|f| f.provider == "sandbox"));
    assert_eq!(s.recent_successes(t(0), 1).await.unwrap().len(), 1);
    // All in one hour: five created, three ended.
    let hour = |ms: i64| ms - ms % 3_600_000;
    let flow = s.hourly_flow(t(0)).await.unwrap();
    let mut want = vec![(hour(t(10).as_millis()), 5, 0)];
    if hour(t(300).as_millis()) == want[0].0 {
        want[0].2 = 3;
    } else {
        want.push((hour(t(300).as_millis()), 0, 3));
    }
    assert_eq!(flow, want);
    assert!(s.hourly_flow(t(1000)).await.unwrap().is_empty());
}

async fn an_operators_credit_change_its_audit_line_and_its_answer_commit_together(db: Db) {
    use gengate_store::operators::{AuditFilter, NewAudit};
    let s = &db.store;
    let a = s.create_account("acme", t(0)).await.unwrap();
    let scope = IdemScope {
        account_id: gengate_core::ids::AccountId::from_trusted("op_test".into()),
        method: "POST".into(),
        path: format!("/api/admin/v1/accounts/{}/credits", a.id),
        key: "grant-1".into(),
    };
    let keep = Duration::from_secs(86_400);
    let h = holder("n1", "b1", "tok");
    assert_eq!(
        s.idempotency_begin(&scope, "fp", &h, t(0), Duration::from_secs(60), keep)
            .await
            .unwrap(),
        IdemBegin::Started
    );
    let line = NewAudit {
        at: t(1),
        actor: "alice".into(),
        action: "credits.grant".into(),
        target: a.id.to_string(),
        account_id: Some(a.id.clone()),
        before: None,
        after: None,
        request_id: Some("req_1".into()),
    };
    let answer = |b: Credits| StoredResponse {
        status: 200,
        headers: vec![],
        body: format!("{{\"balance\":{}}}", b.get()),
    };
    let idem = |token: &'static str| gengate_store::CreditsIdem {
        scope: &scope,
        token,
        expires_at: t(0).plus(keep),
        response: &answer,
    };
    // The hold is not ours (taken over): nothing at all is written.
    let err = s
        .change_credits_audited(
            &a.id,
            LedgerKind::Grant,
            500,
            "invoice",
            t(1),
            &line,
            Some(idem("not-ours")),
        )
        .await;
    assert!(err.is_err());
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 0);
    assert!(s.ledger(&a.id).await.unwrap().is_empty());
    assert!(
        s.audit_page(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .0
        .is_empty()
    );
    // Ours: the change, its line and the stored answer, together.
    let b = s
        .change_credits_audited(
            &a.id,
            LedgerKind::Grant,
            500,
            "invoice",
            t(1),
            &line,
            Some(idem("tok")),
        )
        .await
        .unwrap();
    assert_eq!(b.get(), 500);
    let (lines, _) = s
        .audit_page(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].before, Some(serde_json::json!({"balance": 0})));
    assert_eq!(
        lines[0].after,
        Some(serde_json::json!({"balance": 500, "amount": 500, "reason": "invoice"}))
    );
    assert_eq!(
        s.idempotency_begin(
            &scope,
            "fp",
            &holder("n2", "b2", "tok2"),
            t(2),
            Duration::from_secs(60),
            keep
        )
        .await
        .unwrap(),
        IdemBegin::Replay(answer(b))
    );
    // Below zero: refused, nothing written.
    let refused = s
        .change_credits_audited(
            &a.id,
            LedgerKind::Adjust,
            -501,
            "too much",
            t(3),
            &line,
            None,
        )
        .await;
    assert!(matches!(
        refused,
        Err(CreateTaskError::InsufficientCredits { .. })
    ));
    assert_eq!(
        s.audit_page(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .0
        .len(),
        1
    );
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 500);
}

async fn operators_and_the_audit_log_round_trip(db: Db) {
    use gengate_core::operator::{self, OperatorRole};
    use gengate_store::operators::{AuditFilter, NewAudit, NewOperator};
    let s = &db.store;
    let key = operator::generate_key();
    let op = s
        .create_operator(&NewOperator {
            name: "alice".into(),
            role: OperatorRole::Viewer,
            visible_prefix: key.visible_prefix.clone(),
            key_hash: key.hash.clone(),
            created_at: t(0),
            expires_at: Some(t(1000)),
        })
        .await
        .unwrap();
    assert_eq!(op.role, OperatorRole::Viewer);
    assert_eq!(op.expires_at, Some(t(1000)));
    assert_eq!(
        s.find_operator_by_prefix(&key.visible_prefix)
            .await
            .unwrap(),
        Some(op.clone())
    );
    assert_eq!(
        s.find_operator_by_name("alice").await.unwrap(),
        Some(op.clone())
    );
    let again = operator::generate_key();
    assert!(matches!(
        s.create_operator(&NewOperator {
            name: "alice".into(),
            role: OperatorRole::Admin,
            visible_prefix: again.visible_prefix,
            key_hash: again.hash,
            created_at: t(1),
            expires_at: None,
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    s.touch_operator(&op.id, t(50)).await.unwrap();
    s.touch_operator(&op.id, t(40)).await.unwrap();
    let read = s.find_operator_by_name("alice").await.unwrap().unwrap();
    assert_eq!(read.last_used_at, Some(t(50)), "never moves back");
    assert!(s.revoke_operator("alice", t(60)).await.unwrap());
    assert!(!s.revoke_operator("alice", t(61)).await.unwrap(), "once");
    assert!(!s.revoke_operator("nobody", t(61)).await.unwrap());
    assert_eq!(s.list_operators().await.unwrap()[0].revoked_at, Some(t(60)));

    let acct = s.create_account("audited", t(0)).await.unwrap();
    for i in 0..5 {
        s.append_audit(&NewAudit {
            at: t(100 + i),
            actor: if i % 2 == 0 {
                "alice".into()
            } else {
                "cli".into()
            },
            action: if i < 3 {
                "credits.grant".into()
            } else {
                "account.create".into()
            },
            target: acct.id.to_string(),
            account_id: (i != 4).then(|| acct.id.clone()),
            before: Some(serde_json::json!({"balance": i})),
            after: Some(serde_json::json!({"balance": i + 1, "note": "ک"})),
            request_id: Some(format!("req_{i}")),
        })
        .await
        .unwrap();
    }
    let page = |f: AuditFilter| async move { s.audit_page(&f).await.unwrap() };
    let (all, more) = page(AuditFilter {
        limit: 10,
        ..Default::default()
    })
    .await;
    assert!(!more);
    assert_eq!(
        all.iter().map(|e| e.at).collect::<Vec<_>>(),
        (0..5).rev().map(|i| t(100 + i)).collect::<Vec<_>>()
    );
    assert_eq!(
        all[0].after,
        Some(serde_json::json!({"balance": 5, "note": "ک"}))
    );
    assert_eq!(all[0].request_id.as_deref(), Some("req_4"));
    let (first, more) = page(AuditFilter {
        limit: 2,
        ..Default::default()
    })
    .await;
    assert!(more);
    let (rest, more) = page(AuditFilter {
        limit: 10,
        before_seq: Some(first[1].seq),
        ..Default::default()
    })
    .await;
    assert!(!more);
    assert_eq!(rest.len(), 3);
    let (cli, _) = page(AuditFilter {
        actor: Some("cli".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(cli.len(), 2);
    let (of_acct, _) = page(AuditFilter {
        account: Some(acct.id.clone()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(of_acct.len(), 4);
    let (grants, _) = page(AuditFilter {
        action: Some("credits.grant".into()),
        actor: Some("alice".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(grants.len(), 2);
    // Node reports: one row per node, replaced; old ones forgotten.
    use gengate_store::operators::NodeReport;
    let report = |node: &str, at: i64, n: i64| NodeReport {
        node: node.into(),
        role: "all".into(),
        boot: "b1".into(),
        reported_at: t(at),
        report: serde_json::json!({"providers": {"kling": {"submits": n}}}),
    };
    s.report_node(&report("n1", 10, 1)).await.unwrap();
    s.report_node(&report("n2", 20, 2)).await.unwrap();
    s.report_node(&report("n1", 30, 3)).await.unwrap();
    let got = s.node_reports().await.unwrap();
    assert_eq!(got, vec![report("n1", 30, 3), report("n2", 20, 2)]);
    assert_eq!(s.prune_node_reports(t(25)).await.unwrap(), 1);
    assert_eq!(s.node_reports().await.unwrap(), vec![report("n1", 30, 3)]);
}

async fn accounts_keys_and_values_round_trip(db: Db) {
    let s = &db.store;
    let a = s.create_account("acme", t(0)).await.unwrap();
    assert_eq!(s.get_account(&a.id).await.unwrap().unwrap(), a);
    assert!(matches!(
        s.create_account("acme", t(1)).await,
        Err(StoreError::Conflict(_))
    ));
    let k = s
        .create_api_key(&NewApiKey {
            account_id: a.id.clone(),
            name: "ci".into(),
            visible_prefix: "gg_live_abcdefgh".into(),
            key_hash: "00ff".into(),
            scopes: vec![
                gengate_core::scope::Scope::FilesRead,
                gengate_core::scope::Scope::CreditsRead,
            ],
            rates: RateOverrides {
                create_per_min: Some(5),
                read_per_min: None,
                upload_per_min: Some(7),
            },
            expires_at: Some(t(1000)),
            now: t(2),
        })
        .await
        .unwrap();
    let found = s
        .find_api_key_by_prefix("gg_live_abcdefgh")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, k);
    assert_eq!(found.expires_at, Some(t(1000)));
    assert!(s.revoke_api_key(&k.id, t(3)).await.unwrap());
    assert!(!s.revoke_api_key(&k.id, t(4)).await.unwrap());
    assert_eq!(
        s.find_api_key_by_prefix("gg_live_abcdefgh")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(t(3))
    );

    // Unicode prompts, JSON params and millisecond timestamps come back as written.
    s.change_credits(&a.id, LedgerKind::Grant, 100, "grant", t(5))
        .await
        .unwrap();
    let nt = new_task(&a.id, 90, t(7));
    let task = s.create_task(&nt, None).await.unwrap();
    let back = s.get_task(&a.id, &nt.id).await.unwrap().unwrap();
    assert_eq!(back, task);
    assert_eq!(back, nt.as_queued(), "what a create shows before commit");
    assert_eq!(back.prompt.as_str(), "a cat — ک 🎬");
    assert_eq!(back.created_at, t(7));
    assert_eq!(back.params.get_str("duration"), Some("5"));
}

async fn credits_never_go_negative_and_ledger_sums_match(db: Db) {
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    assert_eq!(
        s.change_credits(&a.id, LedgerKind::Grant, 50, "g", t(1))
            .await
            .unwrap()
            .get(),
        50
    );
    assert_eq!(
        s.change_credits(&a.id, LedgerKind::Adjust, -20, "fix", t(2))
            .await
            .unwrap()
            .get(),
        30
    );
    assert!(matches!(
        s.change_credits(&a.id, LedgerKind::Adjust, -31, "too much", t(3))
            .await,
        Err(CreateTaskError::InsufficientCredits { .. })
    ));
    assert!(
        s.change_credits(&a.id, LedgerKind::Grant, -5, "negative grant", t(3))
            .await
            .is_err()
    );
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 30);
    let ledger = s.ledger(&a.id).await.unwrap();
    assert_eq!(
        ledger.iter().map(|e| e.amount).collect::<Vec<_>>(),
        [50, -20]
    );
    assert_eq!(ledger.last().unwrap().balance_after.get(), 30);
    assert!(s.ledger_mismatches().await.unwrap().is_empty());
}

async fn the_database_itself_refuses_negative_balances_and_ledger_edits(db: Db) {
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 10, "g", t(1))
        .await
        .unwrap();
    let neg = raw_execute(
        &db.url,
        &format!("UPDATE accounts SET balance = -1 WHERE id = '{}'", a.id),
    )
    .await;
    assert!(
        neg.is_err(),
        "a negative balance was accepted by the database"
    );
    let upd = raw_execute(&db.url, "UPDATE ledger_entries SET amount = 1000").await;
    assert!(upd.is_err(), "the ledger accepted an update");
    let del = raw_execute(&db.url, "DELETE FROM ledger_entries").await;
    assert!(del.is_err(), "the ledger accepted a delete");
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 10);
}

async fn create_task_debits_once_in_one_transaction(db: Db) {
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 100, "g", t(1))
        .await
        .unwrap();
    let task = s
        .create_task(&new_task(&a.id, 90, t(2)), None)
        .await
        .unwrap();
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(task.reserved_credits.get(), 90);
    assert_eq!(task.final_credits.get(), 0);
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 10);
    match s.create_task(&new_task(&a.id, 90, t(3)), None).await {
        Err(CreateTaskError::InsufficientCredits { balance, price }) => {
            assert_eq!((balance.get(), price.get()), (10, 90));
        }
        other => panic!("expected insufficient credits, got {other:?}"),
    }
    let (tasks, _) = s
        .list_tasks(
            &a.id,
            &TaskFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1, "a refused task left a row behind");
    // The same task id twice is refused and leaves the balance alone.
    let mut dup = new_task(&a.id, 1, t(4));
    dup.id = task.id.clone();
    assert!(s.create_task(&dup, None).await.is_err());
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 10);
    assert!(s.ledger_mismatches().await.unwrap().is_empty());
    let jobs = s
        .lease_jobs("w", &["sandbox".into()], t(10), Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].task_id, task.id);
}

async fn failed_task_refunds_exactly_once(db: Db) {
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 90, "g", t(1))
        .await
        .unwrap();
    let task = s
        .create_task(&new_task(&a.id, 90, t(2)), None)
        .await
        .unwrap();
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 0);
    let err = TaskError {
        code: TaskErrorCode::GenerationFailed,
        message: "boom".into(),
    };
    assert_eq!(
        s.fail_task(&task.id, &err, t(3)).await.unwrap(),
        Transition::Won
    );
    assert_eq!(
        s.fail_task(&task.id, &err, t(4)).await.unwrap(),
        Transition::Lost
    );
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 90);
    let refunds = s
        .ledger(&a.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == LedgerKind::Refund)
        .count();
    assert_eq!(refunds, 1);
    let back = s.get_task(&a.id, &task.id).await.unwrap().unwrap();
    assert_eq!(back.status, TaskStatus::Failed);
    assert_eq!(back.final_credits.get(), 0);
    assert_eq!(back.error, Some(err));
    assert!(s.ledger_mismatches().await.unwrap().is_empty());
    assert!(
        s.lease_jobs("w", &["sandbox".into()], t(10), Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn state_machine_is_compare_and_set(db: Db) {
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 200, "g", t(1))
        .await
        .unwrap();
    let task = s
        .create_task(&new_task(&a.id, 90, t(2)), None)
        .await
        .unwrap();
    let result = StoredResult {
        media: vec![StoredMedia {
            blob_key: "results/x.mp4".into(),
            mime_type: "video/mp4".into(),
            width: Some(1920),
            height: Some(1080),
            duration_seconds: Some(5.0),
            size_bytes: 1234,
            has_audio: false,
        }],
    };
    // Cannot succeed from queued.
    assert_eq!(
        s.succeed_task(&task.id, &result, t(3)).await.unwrap(),
        Transition::Lost
    );
    assert_eq!(
        s.mark_processing(&task.id, t(3)).await.unwrap(),
        Transition::Won
    );
    assert_eq!(
        s.mark_processing(&task.id, t(4)).await.unwrap(),
        Transition::Lost
    );
    assert_eq!(
        s.succeed_task(&task.id, &result, t(5)).await.unwrap(),
        Transition::Won
    );
    let err = TaskError {
        code: TaskErrorCode::GenerationTimeout,
        message: "late".into(),
    };
    assert_eq!(
        s.fail_task(&task.id, &err, t(6)).await.unwrap(),
        Transition::Lost
    );
    let back = s.get_task(&a.id, &task.id).await.unwrap().unwrap();
    assert_eq!(back.status, TaskStatus::Succeeded);
    assert_eq!(back.final_credits.get(), 90);
    assert_eq!(back.result, Some(result));
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 110);
    assert!(s.ledger_mismatches().await.unwrap().is_empty());
}

async fn idempotency_keys_start_replay_conflict_and_release(db: Db) {
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    let scope = IdemScope {
        account_id: a.id.clone(),
        method: "POST".into(),
        path: "/api/v1/generations".into(),
        key: "k1".into(),
    };
    let keep = Duration::from_secs(86_400);
    let lock = Duration::from_secs(60);
    let (h1, h2, h3, h4, h5) = (
        holder("n1", "b1", "r1"),
        holder("n1", "b1", "r2"),
        holder("n2", "b1", "r3"),
        holder("n2", "b1", "r4"),
        holder("n2", "b1", "r5"),
    );
    assert_eq!(
        s.idempotency_begin(&scope, "fp1", &h1, t(0), lock, keep)
            .await
            .unwrap(),
        IdemBegin::Started
    );
    assert_eq!(
        s.idempotency_begin(&scope, "fp1", &h2, t(1), lock, keep)
            .await
            .unwrap(),
        IdemBegin::InFlight
    );
    assert_eq!(
        s.idempotency_begin(&scope, "fp2", &h2, t(1), lock, keep)
            .await
            .unwrap(),
        IdemBegin::Mismatch
    );
    let resp = StoredResponse {
        status: 202,
        headers: vec![("location".into(), "/x".into())],
        body: "{\"a\":1}".into(),
    };
    // Only the holder's token completes it.
    assert!(
        !s.idempotency_complete(&scope, "r2", &resp, t(0).plus(keep))
            .await
            .unwrap()
    );
    assert!(
        s.idempotency_complete(&scope, "r1", &resp, t(0).plus(keep))
            .await
            .unwrap()
    );
    assert_eq!(
        s.idempotency_begin(&scope, "fp1", &h3, t(2), lock, keep)
            .await
            .unwrap(),
        IdemBegin::Replay(resp.clone())
    );
    assert_eq!(
        s.idempotency_begin(&scope, "fp2", &h3, t(2), lock, keep)
            .await
            .unwrap(),
        IdemBegin::Mismatch
    );
    // Another account's same key is independent.
    let b = s.create_account("b", t(0)).await.unwrap();
    let other = IdemScope {
        account_id: b.id.clone(),
        ..scope.clone()
    };
    assert_eq!(
        s.idempotency_begin(&other, "fp2", &h3, t(2), lock, keep)
            .await
            .unwrap(),
        IdemBegin::Started
    );
    // Released keys run afresh; a dead holder's lock lapses.
    s.idempotency_release(&other, "someone-else").await.unwrap();
    assert_eq!(
        s.idempotency_begin(&other, "fp2", &h4, t(2), lock, keep)
            .await
            .unwrap(),
        IdemBegin::InFlight,
        "a release with another token frees nothing"
    );
    s.idempotency_release(&other, "r3").await.unwrap();
    assert_eq!(
        s.idempotency_begin(&other, "fp3", &h4, t(3), lock, keep)
            .await
            .unwrap(),
        IdemBegin::Started
    );
    assert_eq!(
        s.idempotency_begin(&other, "fp3", &h4, t(4), lock, keep)
            .await
            .unwrap(),
        IdemBegin::InFlight
    );
    assert_eq!(
        s.idempotency_begin(
            &other,
            "fp3",
            &h5,
            t(3).plus(lock).plus(Duration::from_millis(1)),
            lock,
            keep
        )
        .await
        .unwrap(),
        IdemBegin::Started
    );
    // Expired records are forgotten.
    assert_eq!(
        s.idempotency_begin(
            &scope,
            "fp9",
            &h5,
            t(0).plus(keep).plus(Duration::from_secs(1)),
            lock,
            keep
        )
        .await
        .unwrap(),
        IdemBegin::Started
    );
}

fn holder(node: &str, boot: &str, token: &str) -> IdemHolder {
    IdemHolder {
        node: node.into(),
        boot: boot.into(),
        token: token.into(),
    }
}

/// Issue 10 item 6: a hold lives as long as its holder's lease (extended by
/// its heartbeat) and no longer than its process: a restarted node releases
/// its earlier boots' holds at once, any node takes over a lapsed one, and a
/// hold is only ever completed, extended or released by its own token.
async fn idempotency_holds_die_with_their_process(db: Db) {
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    let scope = |k: &str| IdemScope {
        account_id: a.id.clone(),
        method: "POST".into(),
        path: "/api/v1/generations".into(),
        key: k.into(),
    };
    let keep = Duration::from_secs(86_400);
    let lease = Duration::from_secs(10);
    let secs = |n: i64| t(n * 1000);
    let (k1, k2, k3) = (scope("k1"), scope("k2"), scope("k3"));
    let resp = StoredResponse {
        status: 202,
        headers: vec![],
        body: "{}".into(),
    };

    // Node A (boot 1) holds k1; its heartbeat keeps the lease alive past the
    // first lease, so node B cannot take it while A runs.
    let a1 = holder("node-a", "boot-1", "a1");
    let b = holder("node-b", "boot-1", "b1");
    assert_eq!(
        s.idempotency_begin(&k1, "fp", &a1, secs(0), lease, keep)
            .await
            .unwrap(),
        IdemBegin::Started
    );
    assert!(s.idempotency_extend(&k1, "a1", secs(20)).await.unwrap());
    assert!(!s.idempotency_extend(&k1, "b1", secs(30)).await.unwrap());
    assert_eq!(
        s.idempotency_begin(&k1, "fp", &b, secs(15), lease, keep)
            .await
            .unwrap(),
        IdemBegin::InFlight
    );
    // A also holds k2; node C holds k3 with its own (unexpired) lease.
    assert_eq!(
        s.idempotency_begin(
            &k2,
            "fp",
            &holder("node-a", "boot-1", "a2"),
            secs(15),
            lease,
            keep
        )
        .await
        .unwrap(),
        IdemBegin::Started
    );
    let c = holder("node-c", "boot-1", "c1");
    assert_eq!(
        s.idempotency_begin(&k3, "fp", &c, secs(15), lease, keep)
            .await
            .unwrap(),
        IdemBegin::Started
    );

    // A is killed and starts again as boot 2: both of its holds go at once,
    // long before their leases end; C's is not A's to release.
    assert_eq!(
        s.release_idempotency_holds_of_node("node-a", "boot-2")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.idempotency_begin(&k1, "fp", &b, secs(16), lease, keep)
            .await
            .unwrap(),
        IdemBegin::Started
    );
    assert_eq!(
        s.idempotency_begin(&k3, "fp", &b, secs(16), lease, keep)
            .await
            .unwrap(),
        IdemBegin::InFlight
    );
    // The dead boot's request can neither extend, complete nor release B's hold.
    assert!(!s.idempotency_extend(&k1, "a1", secs(40)).await.unwrap());
    assert!(
        !s.idempotency_complete(&k1, "a1", &resp, secs(0).plus(keep))
            .await
            .unwrap()
    );
    s.idempotency_release(&k1, "a1").await.unwrap();
    assert_eq!(
        s.idempotency_begin(
            &k1,
            "fp",
            &holder("node-c", "boot-1", "c9"),
            secs(17),
            lease,
            keep
        )
        .await
        .unwrap(),
        IdemBegin::InFlight
    );
    // A node's current boot never releases its own holds.
    let a3 = holder("node-a", "boot-2", "a3");
    assert_eq!(
        s.idempotency_begin(&k2, "fp", &a3, secs(17), lease, keep)
            .await
            .unwrap(),
        IdemBegin::Started
    );
    assert_eq!(
        s.release_idempotency_holds_of_node("node-a", "boot-2")
            .await
            .unwrap(),
        0
    );

    // C stops renewing (it lost the database, or died on a node that never
    // comes back): once its lease is over, any node takes the same request over.
    assert_eq!(
        s.idempotency_begin(&k3, "other-fp", &b, secs(26), lease, keep)
            .await
            .unwrap(),
        IdemBegin::Mismatch
    );
    let b2 = holder("node-b", "boot-1", "b2");
    assert_eq!(
        s.idempotency_begin(&k3, "fp", &b2, secs(26), lease, keep)
            .await
            .unwrap(),
        IdemBegin::Started
    );
    assert!(
        !s.idempotency_complete(&k3, "c1", &resp, secs(0).plus(keep))
            .await
            .unwrap()
    );
    assert!(
        s.idempotency_complete(&k3, "b2", &resp, secs(0).plus(keep))
            .await
            .unwrap()
    );
    assert_eq!(
        s.idempotency_begin(&k3, "fp", &c, secs(27), lease, keep)
            .await
            .unwrap(),
        IdemBegin::Replay(resp.clone())
    );

    // Of many requests racing for one lapsed hold, exactly one wins.
    let k4 = scope("k4");
    assert_eq!(
        s.idempotency_begin(
            &k4,
            "fp",
            &holder("node-d", "boot-1", "d0"),
            secs(30),
            lease,
            keep
        )
        .await
        .unwrap(),
        IdemBegin::Started
    );
    let mut racers = vec![];
    for i in 0..8 {
        let s = s.clone();
        let k4 = k4.clone();
        racers.push(tokio::spawn(async move {
            let h = holder(&format!("node-{i}"), "boot-1", &format!("r{i}"));
            s.idempotency_begin(&k4, "fp", &h, secs(41), lease, keep)
                .await
                .unwrap()
        }));
    }
    let mut started = 0;
    for r in racers {
        if r.await.unwrap() == IdemBegin::Started {
            started += 1;
        }
    }
    assert_eq!(started, 1, "exactly one racer may take a lapsed hold");
}

async fn leases_are_exclusive_and_lapse(db: Db) {
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 1000, "g", t(0))
        .await
        .unwrap();
    for i in 0..6 {
        s.create_task(&new_task(&a.id, 10, t(i)), None)
            .await
            .unwrap();
    }
    let lease = Duration::from_secs(30);
    let w1 = s
        .lease_jobs("w1", &["sandbox".into()], t(100), lease, 4)
        .await
        .unwrap();
    let w2 = s
        .lease_jobs("w2", &["sandbox".into()], t(100), lease, 4)
        .await
        .unwrap();
    assert_eq!(w1.len(), 4);
    assert_eq!(w2.len(), 2);
    let mut all: Vec<_> = w1.iter().chain(&w2).map(|j| j.task_id.clone()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "a job was leased twice");
    assert!(
        s.lease_jobs("w3", &["kling".into()], t(100), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // w1 renews one job; the rest lapse and go to w3.
    assert!(
        s.renew_lease(&w1[0].task_id, "w1", t(100).plus(lease * 3))
            .await
            .unwrap()
    );
    assert!(
        !s.renew_lease(&w1[0].task_id, "w2", t(100).plus(lease * 3))
            .await
            .unwrap()
    );
    let later = t(100).plus(lease).plus(Duration::from_millis(1));
    let w3 = s
        .lease_jobs("w3", &["sandbox".into()], later, lease, 10)
        .await
        .unwrap();
    assert_eq!(w3.len(), 5);
    assert!(
        w3.iter()
            .all(|j| j.attempts == 2 && j.task_id != w1[0].task_id)
    );
    // A released job waits for its run_at.
    s.release_job(&w3[0].task_id, "w3", later.plus(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(
        s.lease_jobs("w4", &["sandbox".into()], later, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.lease_jobs(
            "w4",
            &["sandbox".into()],
            later.plus(Duration::from_secs(10)),
            lease,
            10
        )
        .await
        .unwrap()
        .len(),
        1
    );
}

async fn listing_is_newest_first_with_cursor_and_filters(db: Db) {
    let s = &db.store;
    let a = s.create_account("a", t(0)).await.unwrap();
    let b = s.create_account("b", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 1000, "g", t(0))
        .await
        .unwrap();
    s.change_credits(&b.id, LedgerKind::Grant, 1000, "g", t(0))
        .await
        .unwrap();
    let mut ids = vec![];
    for i in 0..5 {
        let mut nt = new_task(&a.id, 1, t(i));
        if i % 2 == 0 {
            nt.client_request_id =
                Some(gengate_core::generation::ClientRequestId::parse("even").unwrap());
        }
        ids.push(s.create_task(&nt, None).await.unwrap().id);
    }
    let foreign = s
        .create_task(&new_task(&b.id, 1, t(9)), None)
        .await
        .unwrap();
    let page = |after: Option<TaskId>| TaskFilter {
        limit: 2,
        starting_after: after,
        ..Default::default()
    };
    let (p1, more1) = s.list_tasks(&a.id, &page(None)).await.unwrap();
    assert_eq!(
        p1.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        [ids[4].clone(), ids[3].clone()]
    );
    assert!(more1);
    let (p2, _) = s
        .list_tasks(&a.id, &page(Some(ids[3].clone())))
        .await
        .unwrap();
    assert_eq!(p2[0].id, ids[2]);
    let (p3, more3) = s
        .list_tasks(&a.id, &page(Some(ids[1].clone())))
        .await
        .unwrap();
    assert_eq!((p3.len(), more3), (1, false));
    assert!(matches!(
        s.list_tasks(&a.id, &page(Some(foreign.id.clone()))).await,
        Err(StoreError::NotFound(_))
    ));
    let (even, _) = s
        .list_tasks(
            &a.id,
            &TaskFilter {
                limit: 10,
                client_request_id: Some("even".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(even.len(), 3);
    s.mark_processing(&ids[0], t(20)).await.unwrap();
    let (proc_, _) = s
        .list_tasks(
            &a.id,
            &TaskFilter {
                limit: 10,
                status: Some(TaskStatus::Processing),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        proc_.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        [ids[0].clone()]
    );
    assert!(
        s.get_task(&a.id, &foreign.id).await.unwrap().is_none(),
        "a foreign task was visible"
    );
}

async fn concurrent_debits_never_overdraw(db: Db) {
    let s = db.store.clone();
    let a = s.create_account("a", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 900, "g", t(0))
        .await
        .unwrap();
    let mut handles = vec![];
    for i in 0..60 {
        let s: Arc<dyn Store> = s.clone();
        let acc = a.id.clone();
        handles.push(tokio::spawn(async move {
            s.create_task(&new_task(&acc, 90, t(i)), None).await
        }));
    }
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CreateTaskError::InsufficientCredits { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 0);
    assert!(s.ledger_mismatches().await.unwrap().is_empty());
}

/// `wake_job` (vendor callbacks) brings a waiting job forward, never pushes a due one back,
/// and says false once the task has ended.
async fn a_woken_job_is_due_now_and_never_later(db: Db) {
    let s = &db.store;
    let a = s.create_account("w", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 100, "g", t(0))
        .await
        .unwrap();
    let task = new_task(&a.id, 10, t(0));
    let id = task.id.clone();
    s.create_task(&task, None).await.unwrap();
    let lease = Duration::from_secs(30);
    let jobs = s
        .lease_jobs("w1", &["sandbox".into()], t(10), lease, 1)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    // Released to run in an hour, then woken at t(20): due at t(20), not before.
    s.release_job(&id, "w1", t(3_600_000)).await.unwrap();
    assert!(s.wake_job(&id, t(20)).await.unwrap());
    assert!(
        s.lease_jobs("w2", &["sandbox".into()], t(19), lease, 1)
            .await
            .unwrap()
            .is_empty()
    );
    // Waking again later does not push the due time back.
    assert!(s.wake_job(&id, t(500)).await.unwrap());
    assert_eq!(
        s.lease_jobs("w2", &["sandbox".into()], t(20), lease, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // An ended task has no job to wake.
    s.mark_processing(&id, t(30)).await.unwrap();
    let err = TaskError {
        code: TaskErrorCode::GenerationFailed,
        message: "x".into(),
    };
    s.fail_task(&id, &err, t(40)).await.unwrap();
    assert!(!s.wake_job(&id, t(50)).await.unwrap());
    assert!(!s.wake_job(&TaskId::generate(), t(50)).await.unwrap());
}

/// Creates that arrive together may share a transaction (SQLite's group
/// commit); one that fails for its own reason — a duplicate id, an
/// idempotency key taken over — must fail alone and leave the rest whole.
async fn a_failing_create_among_concurrent_ones_spoils_none(db: Db) {
    let s = db.store.clone();
    let a = s.create_account("a", t(0)).await.unwrap();
    s.change_credits(&a.id, LedgerKind::Grant, 90 * 30, "g", t(0))
        .await
        .unwrap();
    let existing = s
        .create_task(&new_task(&a.id, 90, t(1)), None)
        .await
        .unwrap();
    let mut handles = vec![];
    for i in 0..60 {
        let s: Arc<dyn Store> = s.clone();
        let acc = a.id.clone();
        let existing = existing.id.clone();
        handles.push(tokio::spawn(async move {
            let mut task = new_task(&acc, 90, t(10 + i));
            let mut idem = None;
            let kind = match i % 4 {
                // Same id as a stored task: refused by the primary key.
                1 => {
                    task.id = existing;
                    "dup"
                }
                // Completes a key nobody holds: refused as taken over.
                3 => {
                    idem = Some(IdemCompletion {
                        scope: IdemScope {
                            account_id: acc.clone(),
                            method: "POST".into(),
                            path: "/api/v1/generations".into(),
                            key: format!("never-begun-{i}"),
                        },
                        token: "nobody".into(),
                        response: StoredResponse {
                            status: 202,
                            headers: vec![],
                            body: "{}".into(),
                        },
                        expires_at: t(100_000),
                    });
                    "idem"
                }
                _ => "good",
            };
            (kind, s.create_task(&task, idem.as_ref()).await)
        }));
    }
    let (mut good, mut credits_out) = (0, 0);
    for h in handles {
        let (kind, r) = h.await.unwrap();
        match (kind, r) {
            ("good", Ok(_)) => good += 1,
            ("good", Err(CreateTaskError::InsufficientCredits { .. })) => credits_out += 1,
            ("good", Err(e)) => panic!("a good create failed: {e}"),
            (_, Ok(t)) => panic!("a bad create ({kind}) went through: {}", t.id),
            (_, Err(CreateTaskError::InsufficientCredits { .. })) => {}
            (_, Err(_)) => {}
        }
    }
    // 30 good creates, 29 credits' worth left after `existing`.
    assert_eq!((good, credits_out), (29, 1));
    assert_eq!(s.balance(&a.id).await.unwrap().get(), 0);
    let (tasks, _) = s
        .list_tasks(
            &a.id,
            &TaskFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tasks.len(), 30);
    let reserves = s
        .ledger(&a.id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == LedgerKind::Reserve)
        .count();
    assert_eq!(reserves, 30);
    assert!(s.ledger_mismatches().await.unwrap().is_empty());
}

/// Creates of several accounts arriving together (one batch on SQLite, where
/// the batch is debited per account by the sum): each account pays for
/// exactly what its balance covered, and every ledger row's `balance_after`
/// is the running sum of the rows before it.
async fn concurrent_creates_across_accounts_keep_each_ledger_in_order(db: Db) {
    let s = db.store.clone();
    let mut accounts = vec![];
    for (name, credits, covered) in [
        ("five", 90 * 5, 5),
        ("twelve", 90 * 12, 12),
        ("none", 45, 0),
    ] {
        let a = s.create_account(name, t(0)).await.unwrap();
        s.change_credits(&a.id, LedgerKind::Grant, credits, "g", t(0))
            .await
            .unwrap();
        accounts.push((a.id, covered));
    }
    let mut handles = vec![];
    for i in 0..60 {
        let s: Arc<dyn Store> = s.clone();
        let acc = accounts[i % 3].0.clone();
        handles.push(tokio::spawn(async move {
            (
                acc.clone(),
                s.create_task(&new_task(&acc, 90, t(10 + i as i64)), None)
                    .await,
            )
        }));
    }
    let mut paid = std::collections::HashMap::new();
    for h in handles {
        let (acc, r) = h.await.unwrap();
        match r {
            Ok(task) => {
                assert_eq!(task.account_id, acc);
                let stored = s.get_task(&acc, &task.id).await.unwrap();
                assert_eq!(
                    stored.as_ref(),
                    Some(&task),
                    "a create answered what it did not store"
                );
                *paid.entry(acc).or_insert(0) += 1;
            }
            Err(CreateTaskError::InsufficientCredits { balance, price }) => {
                assert!(
                    balance.get() < price.get(),
                    "refused with {balance} >= {price}"
                );
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    for (acc, covered) in &accounts {
        assert_eq!(
            paid.get(acc).copied().unwrap_or(0),
            *covered,
            "account {acc}"
        );
        let ledger = s.ledger(acc).await.unwrap();
        let mut running = 0;
        for e in &ledger {
            running += e.amount;
            assert_eq!(
                e.balance_after.get(),
                running,
                "ledger row {} of {acc}",
                e.seq
            );
        }
        assert_eq!(s.balance(acc).await.unwrap().get(), running);
        let reserves = ledger
            .iter()
            .filter(|e| e.kind == LedgerKind::Reserve)
            .count();
        assert_eq!(reserves, *covered);
    }
    assert!(s.ledger_mismatches().await.unwrap().is_empty());
}
