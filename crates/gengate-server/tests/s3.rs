//! `--blob-url s3://bucket/prefix` against a real S3-protocol server (moto,
//! started here; docs/DEPLOY.md says what it does and does not prove): the
//! real binary, credentials and a path-style endpoint from the usual `AWS_*`
//! variables. Uploads and their signed links, a rendered result, a 24 MiB
//! result from the fake Kling (stored with a multipart upload, served
//! streamed and in ranges), and an object missing from the bucket (404 from
//! the media route, not 500). SQLite then PostgreSQL.

mod common;

use common::services::{Node, S3, free_port};
use common::{Engine, seeded};
use gengate_kling::fake::{FakeConfig, FakeKling};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const BIG: usize = 24 << 20;

async fn wait_terminal(http: &reqwest::Client, base: &str, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = http
            .get(format!("{base}/api/v1/generations/{id}?wait=5"))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        if v["status"] == "succeeded" || v["status"] == "failed" {
            return v;
        }
        assert!(Instant::now() < deadline, "task {id} did not end: {v}");
    }
}

fn big_video() -> bytes::Bytes {
    // An MP4 header on a large body: the fake serves it as Kling's result.
    let mut b = vec![0u8; BIG];
    b[..12].copy_from_slice(b"\0\0\0\x0cftypisom");
    for (i, x) in b.iter_mut().enumerate().skip(12) {
        *x = (i % 251) as u8;
    }
    bytes::Bytes::from(b)
}

async fn results_uploads_and_links_live_in_s3(engine: Engine) {
    let Some(s3) = S3::start().await else {
        return;
    };
    let db = seeded(engine, 10_000).await;
    let fake = FakeKling::start(FakeConfig {
        video_bytes: big_video(),
        submitted_for: Duration::from_millis(100),
        processing_for: Duration::from_millis(300),
        ..FakeConfig::default()
    })
    .await
    .expect("fake kling");
    let port = free_port();
    let args: Vec<String> = [
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--database-url",
        &db.url,
        "--data-dir",
        &db.dir.path().join("node").display().to_string(),
        "--no-bootstrap",
        "--log-format",
        "json",
        "--blob-url",
        &s3.blob_url("s3test"),
        "--runner-poll-ms",
        "50",
        "--kling-base-url",
        fake.base_url().as_str(),
        "--kling-access-key",
        "fake-access-key",
        "--kling-secret-key",
        "fake-secret-key",
        "--kling-poll-ms",
        "200",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut node = Node::new("s3-node", args, s3.env(), db.dir.path());
    let http = reqwest::Client::new();
    node.start(&http).await;
    let base = node.base.clone();
    let key = db.key.clone();

    // An upload: stored in the bucket, served from its signed link.
    let png = gengate_media::corpus::png(64, 48);
    let form = Form::new().text("kind", "image").part(
        "file",
        Part::bytes(png.clone())
            .file_name("ref.png")
            .mime_str("image/png")
            .expect("mime"),
    );
    let r = http
        .post(format!("{base}/api/v1/files"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201);
    let file: Value = r.json().await.expect("JSON");
    let stored = s3.keys("s3test/files/").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let link = file["url"].as_str().expect("file url");
    let r = http.get(link).send().await.expect("file link");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), png);

    // A 24 MiB result: multipart upload, streamed back whole and in ranges.
    let created: Value = http
        .post(format!("{base}/api/v1/generations"))
        .bearer_auth(&key)
        .json(&json!({"model": "kling-3-0", "prompt": "big", "params": {"mode": "std", "duration": 3}}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("JSON");
    let id = created["id"].as_str().expect("id").to_owned();
    let v = wait_terminal(&http, &base, &key, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let url = v["result"]["primary_url"].as_str().expect("url").to_owned();
    let objects = s3.keys("s3test/results/").await;
    assert_eq!(objects, vec![format!("s3test/results/{id}/0.mp4")]);
    let etag = s3.etag(&objects[0]).await;
    assert!(
        etag.ends_with("-3"),
        "24 MiB goes up in three 8 MiB parts: ETag {etag}"
    );
    let r = http.get(&url).send().await.expect("media");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"].to_str().ok(),
        Some(BIG.to_string().as_str())
    );
    let body = r.bytes().await.expect("bytes");
    assert!(body == big_video(), "the result comes back byte for byte");
    let r = http
        .get(&url)
        .header("range", "bytes=-1000")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().ok(),
        Some(format!("bytes {}-{}/{BIG}", BIG - 1000, BIG - 1).as_str())
    );
    assert_eq!(
        r.bytes().await.expect("bytes"),
        big_video().slice(BIG - 1000..)
    );
    let r = http
        .get(&url)
        .header("range", format!("bytes={BIG}-"))
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), 416);

    // The object gone from the bucket behind gengate's back: 404, not 500.
    s3.delete(&format!("s3test/results/{id}/0.mp4")).await;
    let r = http.get(&url).send().await.expect("media");
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.expect("JSON");
    assert_eq!(e["error"]["code"], "not_found");
    node.kill9();
}

on_both_engines!(results_uploads_and_links_live_in_s3);
