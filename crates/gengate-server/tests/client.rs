//! The Rust SDK (`gengate-client`) against the real server on a loopback
//! port, on SQLite and PostgreSQL — including a create whose answer is lost
//! and a download whose connection breaks.

mod common;

use common::proxy::{Proxy, Sabotage};
use common::{Engine, TestApp};
use futures_util::StreamExt;
use gengate_client::{
    Client, CreateGeneration, CreateWebhook, ErrorCode, GenerationStatus, ListGenerations,
    ListPage, RetryPolicy, UpdateWebhook, Upload, WaitOptions,
};
use std::time::Duration;

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 5,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        ..RetryPolicy::default()
    }
}

fn client(base: &str, key: &str) -> Client {
    Client::builder()
        .base_url(base)
        .api_key(key)
        .retry_policy(fast_retries())
        .build()
        .expect("client")
}

fn small(prompt: &str) -> CreateGeneration {
    CreateGeneration::new("kling-3-0", prompt)
        .param("mode", "std")
        .param("duration", "3")
        .param("aspect_ratio", "1:1")
}

fn waiting() -> WaitOptions {
    WaitOptions {
        poll: Duration::from_secs(5),
        timeout: Some(Duration::from_secs(120)),
    }
}

/// The server handles the create, the proxy loses its answer; the SDK's
/// retry carries the same Idempotency-Key, so the account pays once.
async fn create_whose_answer_is_lost_is_charged_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acc, key) = app.account("lost", 1000).await;
    let proxy = Proxy::start(
        app.running.addr,
        "POST /api/v1/generations",
        Sabotage::DropResponse,
    )
    .await;
    let c = client(&proxy.base, &key);
    let task = c
        .generations()
        .create(&small("lost answer"))
        .await
        .expect("create survives");

    let posts = proxy.heads_starting("POST /api/v1/generations");
    assert_eq!(posts.len(), 2, "one lost attempt and one retry: {posts:?}");
    let idem = |h: &str| {
        h.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("idempotency-key:"))
            .map(str::to_owned)
            .expect("an Idempotency-Key header")
    };
    assert_eq!(idem(&posts[0]), idem(&posts[1]), "the retry reuses the key");

    assert_eq!(app.balance(&acc).await, 910, "charged exactly once");
    let all = c
        .generations()
        .list(&ListGenerations::default())
        .await
        .expect("list");
    assert_eq!(all.data.len(), 1);
    assert_eq!(all.data[0].id, task.id);
    app.assert_ledger_balances().await;

    // The same key from a new logical call is a new task.
    let second = c
        .generations()
        .create(&small("lost answer"))
        .await
        .expect("create");
    assert_ne!(second.id, task.id);
    assert_eq!(app.balance(&acc).await, 820);
}

/// The connection breaks mid-body; the download resumes with Range and the
/// file is byte-for-byte the stored result.
async fn download_resumes_after_a_broken_connection(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, key) = app.account("dl", 1000).await;
    let direct = client(&app.base, &key);
    let done = direct
        .generations()
        .run(&small("a download"), &waiting())
        .await
        .expect("run");
    assert_eq!(done.status, GenerationStatus::Succeeded, "{done:?}");
    let url = done.result.expect("result").primary_url;
    let expected = app
        .http
        .get(&url)
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    assert!(
        expected.len() > 20_000,
        "a real video: {} bytes",
        expected.len()
    );

    let proxy = Proxy::start(
        app.running.addr,
        "GET /media/",
        Sabotage::CutBodyAfter(10_000),
    )
    .await;
    let via_proxy = url.replace(&app.base, &proxy.base);
    assert_ne!(via_proxy, url);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.mp4");
    let mut resumes = 0;
    let n = direct
        .download_to_path(&via_proxy, &path, |p| resumes = resumes.max(p.resumes))
        .await
        .expect("download survives the cut");
    assert_eq!(n, expected.len() as u64);
    assert_eq!(std::fs::read(&path).expect("file"), expected.as_ref());
    assert_eq!(resumes, 1);
    let gets = proxy.heads_starting("GET /media/");
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(
        gets[1].to_ascii_lowercase().contains("range: bytes=10000-"),
        "resumed from the last byte written: {}",
        gets[1]
    );
    assert!(!dir.path().join("out.mp4.part").exists());

    // Streaming to a writer resumes the same way.
    let proxy = Proxy::start(
        app.running.addr,
        "GET /media/",
        Sabotage::CutBodyAfter(3_000),
    )
    .await;
    let mut buf: Vec<u8> = Vec::new();
    direct
        .download_to_writer(&url.replace(&app.base, &proxy.base), &mut buf, |_| {})
        .await
        .expect("stream");
    assert_eq!(buf, expected.as_ref());
}

/// Models, files, create with a reference, wait with progress, list as a
/// stream, credits, and errors arriving typed.
async fn sdk_round_trip(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, key) = app.account("sdk", 1000).await;
    let c = client(&app.base, &key);

    let models = c.models().list().await.expect("models");
    assert!(models.iter().any(|m| m.id == "kling-3-0"));
    let kling = c.models().get("kling-3-0").await.expect("model");
    assert_eq!(kling.base_credits, 90);
    assert!(kling.param("duration").is_some());
    let missing = c.models().get("nope").await.expect_err("404");
    assert_eq!(missing.api().expect("api error").code, ErrorCode::NotFound);

    let png = gengate_media::corpus::png(640, 360);
    let file = c
        .files()
        .upload(Upload::from_bytes(png.clone(), Some("first.png".into())).model("kling-3-0"))
        .await
        .expect("upload");
    assert_eq!(
        (file.kind.as_str(), file.mime_type.as_str()),
        ("image", "image/png")
    );
    assert_eq!(file.width, Some(640));
    assert_eq!(
        c.files().get(&file.id).await.expect("get file").sha256,
        file.sha256
    );

    let req = small("from a first frame")
        .reference(&file)
        .client_request_id("order-7");
    let task = c.generations().create(&req).await.expect("create");
    let mut seen = Vec::new();
    let done = c
        .generations()
        .wait_with(&task.id, &waiting(), |t| seen.push(t.status))
        .await
        .expect("wait");
    assert_eq!(done.status, GenerationStatus::Succeeded, "{done:?}");
    assert_eq!(seen.last(), Some(&GenerationStatus::Succeeded));
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "changes only: {seen:?}"
    );
    assert_eq!(done.client_request_id.as_deref(), Some("order-7"));

    let failed = c
        .generations()
        .create(&small("[sandbox:fail] please"))
        .await
        .expect("create");
    let updates: Vec<_> = c
        .generations()
        .updates(&failed.id, waiting())
        .collect::<Vec<_>>()
        .await;
    let last = updates.last().expect("updates").as_ref().expect("ok");
    assert_eq!(last.status, GenerationStatus::Failed);
    assert_eq!(
        last.error.as_ref().expect("error").code,
        "generation_failed"
    );
    assert_eq!(c.credits().await.expect("credits").current_credits, 910);

    c.generations()
        .create(&small("third"))
        .await
        .expect("create");
    let all: Vec<_> = c
        .generations()
        .list_all(ListGenerations {
            limit: Some(1),
            ..Default::default()
        })
        .collect::<Vec<_>>()
        .await;
    let ids: Vec<String> = all.into_iter().map(|r| r.expect("page").id).collect();
    assert_eq!(ids.len(), 3, "every page: {ids:?}");
    assert_eq!(ids[2], task.id, "newest first");
    let failed_only = c
        .generations()
        .list(&ListGenerations {
            status: Some(GenerationStatus::Failed),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(failed_only.data.len(), 1);

    let bad = c
        .generations()
        .create(&small("x").param("duration", "16").param("colour", "red"))
        .await
        .expect_err("invalid");
    let api = bad.api().expect("api error");
    assert_eq!((api.status, &api.code), (400, &ErrorCode::ValidationFailed));
    assert!(
        api.request_id
            .as_deref()
            .is_some_and(|r| r.starts_with("req_"))
    );
    let fields: Vec<&str> = api.details.iter().map(|d| d.field.as_str()).collect();
    assert!(
        fields.contains(&"params.duration") && fields.contains(&"params.colour"),
        "{fields:?}"
    );

    let wrong = client(&app.base, "gg_live_not_a_real_key_at_all_0000000000");
    let e = wrong.credits().await.expect_err("401");
    assert!(e.is_auth(), "{e}");
}

/// Endpoint management, and the SDK's verifier accepting what the server's
/// signer signs (and nothing else).
async fn webhooks_and_verification(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--webhook-allow-insecure"]).await;
    let (_, key) = app.account("hooks", 0).await;
    let c = client(&app.base, &key);
    let hooks = c.webhooks();
    let created = hooks
        .create(&CreateWebhook {
            name: "local".into(),
            url: "http://127.0.0.1:9/hook".into(),
            event_types: Some(vec!["generation.succeeded".into()]),
        })
        .await
        .expect("create");
    let secret = created.signing_secret.clone().expect("secret shown once");
    assert!(secret.starts_with("whsec_"));
    let listed = hooks.list(&ListPage::default()).await.expect("list");
    assert_eq!(listed.data.len(), 1);
    assert!(listed.data[0].signing_secret.is_none());
    let renamed = hooks
        .update(
            &created.id,
            &UpdateWebhook {
                name: Some("renamed".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(renamed.name, "renamed");
    let test = hooks.send_test(&created.id).await.expect("test");
    assert_eq!(test.event_type, "webhook.test");
    let events = hooks.events(&ListPage::default()).await.expect("events");
    assert!(events.data.iter().any(|e| e.id == test.id));
    let rotated = hooks.rotate_secret(&created.id).await.expect("rotate");
    assert_ne!(rotated.signing_secret.as_deref(), Some(secret.as_str()));
    hooks.delete(&created.id).await.expect("delete");
    let gone = hooks.get(&created.id).await.expect_err("gone");
    assert_eq!(gone.api().expect("api").code, ErrorCode::NotFound);

    // The server's signer and the SDK's verifier agree.
    let s = gengate_webhooks::SigningSecret::parse(&secret).expect("secret");
    let body = br#"{"id":"evt_1","type":"webhook.test"}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let sig = gengate_webhooks::signature_header(&[&s], "msg_1", now, body);
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("webhook-id", "msg_1".parse().expect("hv"));
    h.insert("webhook-timestamp", now.to_string().parse().expect("hv"));
    h.insert("webhook-signature", sig.parse().expect("hv"));
    assert_eq!(gengate_client::verify_webhook(&secret, &h, body), Ok(()));
    assert!(gengate_client::verify_webhook(&secret, &h, b"{}").is_err());
    let other = rotated.signing_secret.expect("new secret");
    assert!(gengate_client::verify_webhook(&other, &h, body).is_err());
}

on_both_engines!(
    create_whose_answer_is_lost_is_charged_once,
    download_resumes_after_a_broken_connection,
    sdk_round_trip,
    webhooks_and_verification,
);
