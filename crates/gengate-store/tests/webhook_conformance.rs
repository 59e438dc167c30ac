//! The webhook tables on both engines: the outbox row exists exactly when a
//! terminal transition does, fan-out honours subscriptions and is
//! idempotent, leases are exclusive, and an endpoint failing for longer than
//! allowed is disabled with its pending deliveries canceled.

use gengate_core::generation::{Prompt, TaskError, TaskErrorCode};
use gengate_core::ids::{TaskId, WebhookEndpointId};
use gengate_core::params::NormalizedParams;
use gengate_core::{Credits, Timestamp};
use gengate_store::testing::{fresh_postgres_url, fresh_sqlite_url};
use gengate_store::webhooks::*;
use gengate_store::*;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn endpoint(
    account: &gengate_core::ids::AccountId,
    types: &[&str],
    enabled: bool,
) -> EndpointRecord {
    EndpointRecord {
        id: WebhookEndpointId::generate(),
        account_id: account.clone(),
        name: "e".into(),
        url: "https://93.184.216.34/h".into(),
        event_types: types.iter().map(|s| (*s).to_owned()).collect(),
        enabled,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        previous_secret: None,
        previous_secret_until: None,
        last_success_at: None,
        last_failure_at: None,
        failure_count: 0,
        failing_since: None,
        created_at: t(0),
        updated_at: t(0),
        disabled_at: None,
        revoked_at: None,
    }
}

async fn failed_task(
    s: &DynStore,
    account: &gengate_core::ids::AccountId,
    at: Timestamp,
) -> TaskId {
    let task = s
        .create_task(
            &NewTask {
                id: TaskId::generate(),
                account_id: account.clone(),
                model: "kling-3-0".into(),
                prompt: Prompt::from_stored("p".into()),
                params: NormalizedParams::from_stored(serde_json::json!({})),
                references: vec![],
                price: Credits::new(90).unwrap(),
                price_version: None,
                client_request_id: None,
                provider: "sandbox".into(),
                now: at,
                deadline_at: at.plus(Duration::from_secs(60)),
            },
            None,
        )
        .await
        .unwrap();
    let err = TaskError {
        code: TaskErrorCode::GenerationFailed,
        message: "x".into(),
    };
    assert_eq!(
        s.fail_task(&task.id, &err, at).await.unwrap(),
        Transition::Won
    );
    // A second terminal attempt loses and writes no second event.
    assert_eq!(
        s.fail_task(&task.id, &err, at).await.unwrap(),
        Transition::Lost
    );
    task.id
}

async fn run(s: DynStore) {
    let a = s.create_account("a", t(0)).await.unwrap();
    s.change_credits(
        &a.id,
        gengate_core::credits::LedgerKind::Grant,
        900,
        "g",
        t(0),
    )
    .await
    .unwrap();
    let all = endpoint(&a.id, &["generation.succeeded", "generation.failed"], true);
    let only_ok = endpoint(&a.id, &["generation.succeeded"], true);
    let off = endpoint(&a.id, &["generation.failed"], false);
    for e in [&all, &only_ok, &off] {
        s.create_endpoint(e).await.unwrap();
    }
    assert_eq!(
        s.get_endpoint(&a.id, &all.id).await.unwrap().as_ref(),
        Some(&all)
    );

    let task = failed_task(&s, &a.id, t(10)).await;
    let (events, more) = s.list_events(&a.id, None, None, 10).await.unwrap();
    assert!(!more);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].task_id.as_ref(), Some(&task));
    assert_eq!(events[0].event_type, "generation.failed");

    assert_eq!(s.fan_out_events(t(11), 100).await.unwrap(), 1);
    assert_eq!(
        s.fan_out_events(t(12), 100).await.unwrap(),
        0,
        "fan-out twice"
    );
    let d = s.deliveries_of_event(&events[0].id).await.unwrap();
    assert_eq!(d, vec![(all.id.clone(), "pending".to_owned(), 0)]);

    // Exclusive leases; a stale holder cannot record.
    let leased = s
        .lease_deliveries("w1", t(20), Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert!(
        s.lease_deliveries("w2", t(21), Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let attempt = NewAttempt {
        status_code: Some(500),
        duration_ms: 12,
        error: None,
        response: Some("oops".into()),
    };
    let r = s
        .record_attempt(
            &leased[0],
            "w2",
            Some(&attempt),
            AttemptOutcome::GaveUp,
            5 * DAY,
            t(22),
        )
        .await
        .unwrap();
    assert!(!r.recorded);
    let r = s
        .record_attempt(
            &leased[0],
            "w1",
            Some(&attempt),
            AttemptOutcome::RetryAt(t(5_000)),
            5 * DAY,
            t(23),
        )
        .await
        .unwrap();
    assert!(r.recorded && !r.endpoint_disabled);
    let e = s.get_endpoint(&a.id, &all.id).await.unwrap().unwrap();
    assert_eq!(
        (e.failure_count, e.failing_since, e.last_failure_at),
        (1, Some(t(23)), Some(t(23)))
    );
    // Not due yet, then due.
    assert!(
        s.lease_deliveries("w1", t(4_999), Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = s
        .lease_deliveries("w1", t(5_000), Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(again[0].attempts, 1);

    // Failing for five days without a success disables the endpoint and
    // cancels what was still pending for it.
    let later = t(23).plus(5 * DAY);
    let r = s
        .record_attempt(
            &again[0],
            "w1",
            Some(&attempt),
            AttemptOutcome::RetryAt(later.plus(DAY)),
            5 * DAY,
            later,
        )
        .await
        .unwrap();
    assert!(r.endpoint_disabled);
    let e = s.get_endpoint(&a.id, &all.id).await.unwrap().unwrap();
    assert!(!e.enabled);
    assert_eq!(e.disabled_at, Some(later));
    let d = s.deliveries_of_event(&events[0].id).await.unwrap();
    assert_eq!(d[0].1, "canceled");
    let (att, _) = s.list_attempts(&all.id, None, 10).await.unwrap();
    assert_eq!(att.iter().map(|x| x.attempt).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(att[0].response.as_deref(), Some("oops"));

    // Disabled endpoints get nothing new; re-enabling forgets the streak.
    failed_task(&s, &a.id, later.plus(Duration::from_secs(1))).await;
    assert_eq!(
        s.fan_out_events(later.plus(Duration::from_secs(2)), 100)
            .await
            .unwrap(),
        0
    );
    let e = s
        .update_endpoint(
            &a.id,
            &all.id,
            &EndpointChanges {
                enabled: Some(true),
                ..Default::default()
            },
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(e.enabled && e.failing_since.is_none() && e.disabled_at.is_none());

    // Rotation keeps the old secret alongside; deletion hides the endpoint.
    let e = s
        .rotate_endpoint_secret(&a.id, &all.id, "whsec_new", later.plus(DAY), later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.previous_secret.as_deref(), Some(all.secret.as_str()));
    assert_eq!(e.secret, "whsec_new");
    assert!(
        s.delete_endpoint(&a.id, &all.id, later)
            .await
            .unwrap()
            .is_some()
    );
    assert!(s.get_endpoint(&a.id, &all.id).await.unwrap().is_none());
    assert!(
        s.get_endpoint_unscoped(&all.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(s.ledger_mismatches().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_rows_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = connect(&fresh_sqlite_url(dir.path()), &ConnectOptions::default())
        .await
        .unwrap();
    s.migrate().await.unwrap();
    run(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_rows_on_postgres() {
    let s = connect(&fresh_postgres_url().await, &ConnectOptions::default())
        .await
        .unwrap();
    s.migrate().await.unwrap();
    run(s).await;
}
