//! Tasks that really run: sandbox renders read back from storage, failure
//! and refund paths, deadlines, and a kill -9 in the middle (long polls: `long_poll.rs`).

mod common;

use common::{Engine, TestApp, kling};
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_engines!(
    failure_triggers_refund_exactly_once,
    a_task_past_its_deadline_times_out_and_is_refunded,
    kill_9_mid_run_loses_nothing,
);

async fn download(app: &TestApp, url: &str) -> Vec<u8> {
    let r = app.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "download {url}");
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_sandbox_variant_has_the_requested_shape() {
    let app = TestApp::spawn_with(Engine::Sqlite, &["--sandbox-concurrency", "2"]).await;
    let (_, key) = app.account("shapes", 100_000).await;
    // (mode, aspect, duration, sound, multi_shots, width, height)
    let variants = [
        ("std", "16:9", 3, false, false, 1280, 720),
        ("std", "9:16", 3, true, false, 720, 1280),
        ("std", "1:1", 4, false, true, 720, 720),
        ("pro", "16:9", 3, true, false, 1920, 1080),
        ("pro", "9:16", 3, false, true, 1080, 1920),
        ("pro", "1:1", 15, true, true, 1080, 1080),
        ("std", "16:9", 15, false, false, 1280, 720),
    ];
    let mut ids = vec![];
    for (mode, ar, d, sound, multi, ..) in variants {
        let body = kling(
            &format!("shape {mode} {ar} {d}s"),
            json!({"mode": mode, "aspect_ratio": ar, "duration": d, "sound": sound, "multi_shots": multi}),
        );
        let v: Value = app
            .post("/api/v1/generations", &key, &body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    for (id, (mode, ar, d, sound, multi, w, h)) in ids.iter().zip(variants) {
        let v = app.wait_terminal(&key, id, 240).await;
        assert_eq!(
            v["status"], "succeeded",
            "{mode} {ar} {d} {sound} {multi}: {v}"
        );
        assert_eq!(v["final_credits"], 90);
        let media = &v["result"]["media"][0];
        assert_eq!(
            (media["width"].as_u64(), media["height"].as_u64()),
            (Some(w), Some(h))
        );
        assert_eq!(media["has_audio"], sound);
        assert_eq!(media["mime_type"], "video/mp4");
        let bytes = download(&app, v["result"]["primary_url"].as_str().unwrap()).await;
        assert_eq!(media["size_bytes"].as_u64(), Some(bytes.len() as u64));
        // Read the stored file back, trusting nothing the encoder said.
        let info = gengate_media::inspect_mp4(&bytes).unwrap();
        assert_eq!((info.width, info.height), (w as u32, h as u32));
        assert_eq!(info.video_frames, 24 * d as u64, "{mode} {ar} {d}");
        assert!(
            (info.video_duration_seconds - d as f64).abs() <= 0.05,
            "duration {}",
            info.video_duration_seconds
        );
        assert_eq!(info.has_audio, sound);
        if sound {
            assert!((info.audio_duration_seconds.unwrap() - d as f64).abs() <= 0.05);
        }
        assert!(
            info.faststart,
            "moov must precede mdat so browsers can stream"
        );
    }
    app.assert_ledger_balances().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_links_serve_ranges_and_refuse_tampering() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (_, key) = app.account("media", 1000).await;
    let v: Value = app
        .post(
            "/api/v1/generations",
            &key,
            &kling(
                "range",
                json!({"mode": "std", "duration": 3, "aspect_ratio": "1:1"}),
            ),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v = app
        .wait_terminal(&key, v["id"].as_str().unwrap(), 120)
        .await;
    let url = v["result"]["primary_url"].as_str().unwrap().to_owned();
    let whole = download(&app, &url).await;
    let r = app
        .http
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-199/{}", whole.len())
    );
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &whole[100..200]);
    let r = app
        .http
        .get(&url)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &whole[whole.len() - 10..]
    );
    let r = app
        .http
        .get(&url)
        .header("range", format!("bytes={}-", whole.len() + 5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    // A changed key, expiry or signature is refused; so is no signature.
    let tampered = url.replace("/0.mp4", "/1.mp4");
    assert_eq!(app.http.get(&tampered).send().await.unwrap().status(), 404);
    let later = url.replacen("expires=", "expires=9", 1);
    assert_eq!(app.http.get(&later).send().await.unwrap().status(), 404);
    let unsigned = url.split('?').next().unwrap();
    assert_eq!(app.http.get(unsigned).send().await.unwrap().status(), 404);
}

async fn failure_triggers_refund_exactly_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acc, key) = app.account("fails", 180).await;
    let a: Value = app
        .post(
            "/api/v1/generations",
            &key,
            &kling("boom [sandbox:fail]", json!({})),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b: Value = app
        .post(
            "/api/v1/generations",
            &key,
            &kling("bad [sandbox:moderate]", json!({})),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a = app.wait_terminal(&key, a["id"].as_str().unwrap(), 60).await;
    let b = app.wait_terminal(&key, b["id"].as_str().unwrap(), 60).await;
    assert_eq!(a["status"], "failed");
    assert_eq!(a["error"]["code"], "generation_failed");
    assert_eq!(b["error"]["code"], "content_rejected");
    for t in [&a, &b] {
        assert_eq!(t["final_credits"], 0);
        assert_eq!(t["reserved_credits"], 90);
        assert_eq!(t["result"], Value::Null);
    }
    assert_eq!(app.balance(&acc).await, 180);
    let ledger = app.running.engine.store.ledger(&acc).await.unwrap();
    let refunds: Vec<_> = ledger
        .iter()
        .filter(|e| e.kind == gengate_core::credits::LedgerKind::Refund)
        .collect();
    assert_eq!(refunds.len(), 2);
    assert!(refunds.iter().all(|e| e.amount == 90));
    app.assert_ledger_balances().await;
}

fn short_deadline_catalog(dir: &std::path::Path, secs: u64) -> String {
    let mut cat: Value = serde_json::from_str(gengate_core::catalog::BUILTIN_CATALOG).unwrap();
    cat["models"][0]["internal"]["deadline_seconds"] = json!(secs);
    let p = dir.join(format!("catalog-{secs}.json"));
    std::fs::write(&p, cat.to_string()).unwrap();
    p.display().to_string()
}

async fn a_task_past_its_deadline_times_out_and_is_refunded(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = short_deadline_catalog(dir.path(), 2);
    // A worker holds the task (slow) past the deadline.
    let app = TestApp::spawn_with(engine, &["--catalog", &catalog]).await;
    let (acc, key) = app.account("late", 90).await;
    let v: Value = app
        .post(
            "/api/v1/generations",
            &key,
            &kling("[sandbox:slow=30]", json!({})),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v = app.wait_terminal(&key, v["id"].as_str().unwrap(), 30).await;
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error"]["code"], "generation_timeout");
    assert_eq!(app.balance(&acc).await, 90);
    app.assert_ledger_balances().await;

    // No worker at all: the task still ends, by the sweeper of any node.
    let idle = TestApp::spawn_with(engine, &["--catalog", &catalog, "--no-runner"]).await;
    let (acc, key) = idle.account("orphan", 90).await;
    let v: Value = idle
        .post(
            "/api/v1/generations",
            &key,
            &kling("nobody runs me", json!({})),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v = idle
        .wait_terminal(&key, v["id"].as_str().unwrap(), 30)
        .await;
    assert_eq!(v["error"]["code"], "generation_timeout");
    assert_eq!(idle.balance(&acc).await, 90);
    idle.assert_ledger_balances().await;
}

/// Starts the real binary, submits 200 tasks, SIGKILLs it mid-run, starts
/// it again: every task ends, none succeeds twice, money balances.
async fn kill_9_mid_run_loses_nothing(engine: Engine) {
    let db = common::seeded(engine, 200 * 90).await;
    let (store, key) = (db.store.clone(), db.key.clone());
    let acc_id = db.account.clone();
    let mut server = common::Binary::new(
        &db,
        &[
            "--lease-ms",
            "1500",
            "--runner-poll-ms",
            "50",
            "--sandbox-concurrency",
            "2",
            "--rate-create-per-min",
            "100000",
        ],
    );
    let http = reqwest::Client::new();
    let base = server.base.clone();
    server.start().await;
    let posts = (0..200).map(|i| {
        // Half fail at once; the others render, a few slowly, so the kill finds work in flight.
        let prompt = match i % 10 {
            0 | 2 | 4 | 6 | 8 => format!("crash {i} [sandbox:fail]"),
            1 => format!("crash {i} [sandbox:slow=2]"),
            _ => format!("crash {i}"),
        };
        http.post(format!("{base}/api/v1/generations"))
            .bearer_auth(&key)
            .header("Idempotency-Key", format!("k{i}"))
            .json(&kling(
                &prompt,
                json!({"mode": "std", "duration": 3, "aspect_ratio": "1:1"}),
            ))
            .send()
    });
    let accepted = join_all(posts)
        .await
        .into_iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 202))
        .count();
    assert_eq!(accepted, 200);
    // Kill -9 only once some tasks have ended and some are mid-render.
    use gengate_core::generation::TaskStatus;
    let count = |status: TaskStatus| {
        let store = store.clone();
        let acc = acc_id.clone();
        async move {
            store
                .list_tasks(
                    &acc,
                    &gengate_store::TaskFilter {
                        limit: 100,
                        status: Some(status),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .0
                .len()
        }
    };
    // A render can end between the look and the kill, so the kill is retried
    // (restarting in between) until one lands with work in flight; every
    // extra kill is one more crash the run must survive.
    let mut landed = false;
    for attempt in 1..=5 {
        let watch_until = Instant::now() + Duration::from_secs(60);
        loop {
            let (p, s) = (
                count(TaskStatus::Processing).await,
                count(TaskStatus::Succeeded).await,
            );
            if p > 0 && s > 0 {
                break;
            }
            assert!(Instant::now() < watch_until, "never saw tasks mid-render");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.kill9();
        let (p, s, q) = (
            count(TaskStatus::Processing).await,
            count(TaskStatus::Succeeded).await,
            count(TaskStatus::Queued).await,
        );
        eprintln!("kill {attempt}: {p} processing, {s} succeeded, {q} queued");
        if p > 0 && q > 0 {
            landed = true;
            break;
        }
        server.start().await;
    }
    assert!(landed, "no kill landed mid-run in five tries");

    server.start().await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (open_q, _) = store
            .list_tasks(
                &acc_id,
                &gengate_store::TaskFilter {
                    limit: 1,
                    status: Some(gengate_core::generation::TaskStatus::Queued),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let (open_p, _) = store
            .list_tasks(
                &acc_id,
                &gengate_store::TaskFilter {
                    limit: 1,
                    status: Some(gengate_core::generation::TaskStatus::Processing),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if open_q.is_empty() && open_p.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tasks did not all end after restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill9();

    let mut all = vec![];
    let mut after = None;
    loop {
        let (page, more) = store
            .list_tasks(
                &acc_id,
                &gengate_store::TaskFilter {
                    limit: 100,
                    starting_after: after.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        after = page.last().map(|t| t.id.clone());
        all.extend(page);
        if !more {
            break;
        }
    }
    assert_eq!(all.len(), 200, "an accepted task was lost");
    let succeeded = all
        .iter()
        .filter(|t| t.status == gengate_core::generation::TaskStatus::Succeeded)
        .count();
    let failed = all
        .iter()
        .filter(|t| t.status == gengate_core::generation::TaskStatus::Failed)
        .count();
    assert_eq!(succeeded + failed, 200);
    assert_eq!(succeeded, 100, "every render task should succeed");
    let ledger = store.ledger(&acc_id).await.unwrap();
    use gengate_core::credits::LedgerKind;
    let reserves = ledger
        .iter()
        .filter(|e| e.kind == LedgerKind::Reserve)
        .count();
    let refunds = ledger
        .iter()
        .filter(|e| e.kind == LedgerKind::Refund)
        .count();
    assert_eq!((reserves, refunds), (200, failed));
    assert_eq!(
        store.balance(&acc_id).await.unwrap().get(),
        90 * failed as i64
    );
    assert!(store.ledger_mismatches().await.unwrap().is_empty());
    // Exactly one stored result per succeeded task.
    for t in all
        .iter()
        .filter(|t| t.status == gengate_core::generation::TaskStatus::Succeeded)
    {
        assert_eq!(t.result.as_ref().unwrap().media.len(), 1);
        assert_eq!(t.final_credits.get(), 90);
    }
}
