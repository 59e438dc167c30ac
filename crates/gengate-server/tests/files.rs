//! The Files API over real HTTP, with real and hostile files made here:
//! every rejection leaves no row and no blob behind, and references in
//! generations resolve only to live files of the caller.

mod common;

use common::{Engine, TestApp, kling};
use gengate_media::corpus;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

on_both_engines!(
    uploads_are_judged_by_their_bytes_and_rejections_leave_nothing,
    references_resolve_only_to_live_files_of_the_caller,
);

async fn upload(
    app: &TestApp,
    key: &str,
    kind: &str,
    name: &str,
    declared: &str,
    bytes: Vec<u8>,
    model: Option<&str>,
) -> (u16, Value) {
    let mut form = Form::new().text("kind", kind.to_owned());
    if let Some(m) = model {
        form = form.text("model", m.to_owned());
    }
    let form = form.part(
        "file",
        Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str(declared)
            .unwrap(),
    );
    let r = app
        .http
        .post(app.url("/api/v1/files"))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn counts(app: &TestApp) -> (i64, usize) {
    let rows = gengate_store::testing::raw_count(&app.database_url, "SELECT COUNT(*) FROM files")
        .await
        .unwrap();
    let dir = app.data_dir.join("blobs").join("files");
    let blobs = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    (rows, blobs)
}

async fn uploads_are_judged_by_their_bytes_and_rejections_leave_nothing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, key) = app.account("uploader", 0).await;

    // Rejections: each names the problem, and nothing is stored.
    let ten_mib_plus_one = {
        let mut b = corpus::png(400, 400);
        b.resize(10 * 1024 * 1024 + 1, 0);
        b
    };
    let rejected: Vec<(&str, &str, &str, Vec<u8>, &str)> = vec![
        (
            "image",
            "notes.png",
            "image/png",
            corpus::text_named_png(),
            "not a recognised",
        ),
        (
            "image",
            "anim.gif",
            "image/gif",
            corpus::gif(320, 320),
            "image/gif",
        ),
        (
            "image",
            "cut.png",
            "image/png",
            corpus::truncated_png(),
            "truncated",
        ),
        (
            "image",
            "bomb.png",
            "image/png",
            corpus::decompression_bomb_png(),
            "60000x60000",
        ),
        (
            "image",
            "big.png",
            "image/png",
            ten_mib_plus_one,
            "larger than",
        ),
        (
            "video",
            "still.png",
            "video/mp4",
            corpus::png(320, 320),
            "does not match kind video",
        ),
        (
            "audio",
            "clip.mp4",
            "audio/mpeg",
            corpus::mp4_stub(2.0, "isom"),
            "does not match kind audio",
        ),
        (
            "sticker",
            "a.png",
            "image/png",
            corpus::png(320, 320),
            "kind must be one of",
        ),
    ];
    for (kind, name, declared, bytes, says) in rejected {
        let (s, v) = upload(&app, &key, kind, name, declared, bytes, None).await;
        assert_eq!(s, 400, "{name}: {v}");
        assert_eq!(v["error"]["code"], "validation_failed");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{name}: {msg}");
        assert_eq!(counts(&app).await, (0, 0), "{name} left something behind");
    }
    // With model rules: kling-3-0 wants ≥ 300 px a side.
    let (s, v) = upload(
        &app,
        &key,
        "image",
        "small.png",
        "image/png",
        corpus::png(200, 400),
        Some("kling-3-0"),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(counts(&app).await, (0, 0));

    // A chunked upload with no length that runs past the limit is cut off.
    let chunks = (0..12).map(|i| {
        Ok::<_, std::io::Error>(if i == 0 {
            corpus::png(320, 320)
        } else {
            vec![0u8; 1024 * 1024]
        })
    });
    let part = Part::stream(reqwest::Body::wrap_stream(futures_util::stream::iter(
        chunks,
    )))
    .file_name("stream.png")
    .mime_str("image/png")
    .unwrap();
    let form = Form::new().text("kind", "image").part("file", part);
    let r = app
        .http
        .post(app.url("/api/v1/files"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"][0]["issue"], "too_large");
    assert_eq!(counts(&app).await, (0, 0));

    // Accepted: types from the bytes, sizes and durations measured.
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Vec<u8>,
        &'a str,
        Option<(u64, u64)>,
        Option<f64>,
    );
    let accepted: Vec<Case> = vec![
        (
            "image",
            "a.png",
            "image/png",
            corpus::png(640, 360),
            "image/png",
            Some((640, 360)),
            None,
        ),
        (
            "image",
            "b.jpg",
            "image/jpeg",
            corpus::jpeg(512, 512),
            "image/jpeg",
            Some((512, 512)),
            None,
        ),
        (
            "image",
            "c.webp",
            "image/webp",
            corpus::webp(300, 750),
            "image/webp",
            Some((300, 750)),
            None,
        ),
        // The declared type is ignored: PNG bytes declared as JPEG are a PNG.
        (
            "image",
            "lying.jpg",
            "image/jpeg",
            corpus::png(333, 444),
            "image/png",
            Some((333, 444)),
            None,
        ),
        // A PNG with a ZIP appended is a PNG (it decodes; the tail is inert).
        (
            "image",
            "poly.png",
            "image/png",
            corpus::png_zip_polyglot(),
            "image/png",
            None,
            None,
        ),
        (
            "video",
            "v.mp4",
            "video/mp4",
            corpus::mp4_stub(3.5, "isom"),
            "video/mp4",
            None,
            Some(3.5),
        ),
        (
            "video",
            "v.mov",
            "video/quicktime",
            corpus::mov_stub(2.25),
            "video/quicktime",
            None,
            Some(2.25),
        ),
        (
            "video",
            "v.webm",
            "video/webm",
            corpus::webm(4.0),
            "video/webm",
            None,
            Some(4.0),
        ),
        (
            "audio",
            "a.wav",
            "audio/wav",
            corpus::wav(1.5, 16_000),
            "audio/wav",
            None,
            Some(1.5),
        ),
        (
            "audio",
            "a.mp3",
            "audio/mpeg",
            corpus::mp3(2.0),
            "audio/mpeg",
            None,
            Some(corpus::mp3_duration(2.0)),
        ),
        (
            "audio",
            "a.ogg",
            "audio/ogg",
            corpus::ogg_opus(3.0),
            "audio/ogg",
            None,
            Some(3.0),
        ),
    ];
    let mut rows = 0;
    for (kind, name, declared, bytes, mime, dims, dur) in accepted {
        let len = bytes.len() as u64;
        let (s, v) = upload(&app, &key, kind, name, declared, bytes, None).await;
        assert_eq!(s, 201, "{name}: {v}");
        rows += 1;
        assert!(v["id"].as_str().unwrap().starts_with("file_"));
        assert_eq!(v["object"], "file");
        assert_eq!(v["mime_type"], mime, "{name}");
        assert_eq!(v["size_bytes"].as_u64(), Some(len));
        assert_eq!(v["name"], name);
        assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
        if let Some((w, h)) = dims {
            assert_eq!(
                (v["width"].as_u64(), v["height"].as_u64()),
                (Some(w), Some(h)),
                "{name}"
            );
        }
        match dur {
            Some(d) => {
                let got = v["duration_seconds"].as_f64().unwrap();
                assert!((got - d).abs() <= 0.05, "{name}: {got} vs {d}");
                assert!(v["duration_token"].as_str().unwrap().starts_with("dt1."));
            }
            None => assert_eq!(v["duration_token"], Value::Null),
        }
        // The link works without a key, and GET returns the same object.
        let url = v["url"].as_str().unwrap();
        let body = app.http.get(url).send().await.unwrap();
        assert_eq!(body.status(), 200);
        assert_eq!(body.bytes().await.unwrap().len() as u64, len);
        let again: Value = app
            .get(
                &format!("/api/v1/files/{}", v["id"].as_str().unwrap()),
                &key,
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(again["id"], v["id"]);
        assert_eq!(again["sha256"], v["sha256"]);
    }
    // Same content twice: two file objects, one blob.
    let (_, blobs_before) = counts(&app).await;
    let (s, _) = upload(
        &app,
        &key,
        "image",
        "again.png",
        "image/png",
        corpus::png(640, 360),
        None,
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(counts(&app).await, (rows + 1, blobs_before));
}

async fn references_resolve_only_to_live_files_of_the_caller(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner"]).await;
    let (acc, key) = app.account("alice", 1000).await;
    let (_, bob) = app.account("bob", 1000).await;
    let (_, img) = upload(
        &app,
        &key,
        "image",
        "first.png",
        "image/png",
        corpus::png(640, 360),
        None,
    )
    .await;
    let (_, img2) = upload(
        &app,
        &key,
        "image",
        "last.webp",
        "image/webp",
        corpus::webp(640, 360),
        None,
    )
    .await;
    let (_, narrow) = upload(
        &app,
        &key,
        "image",
        "narrow.png",
        "image/png",
        corpus::png(1000, 300),
        None,
    )
    .await;
    let (_, tiny) = upload(
        &app,
        &key,
        "image",
        "tiny.png",
        "image/png",
        corpus::png(100, 100),
        None,
    )
    .await;
    let (_, bobs) = upload(
        &app,
        &bob,
        "image",
        "bob.png",
        "image/png",
        corpus::png(640, 360),
        None,
    )
    .await;
    let item = |v: &Value| json!({"url": v["url"], "kind": "image", "name": v["name"], "mimeType": v["mime_type"]});

    // Two own images: accepted, and the task keeps the resolved file ids.
    let r = app
        .post(
            "/api/v1/generations",
            &key,
            &kling(
                "first to last",
                json!({"referenceMediaItems": [item(&img), item(&img2)]}),
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let g: Value = r.json().await.unwrap();
    let task = app
        .running
        .engine
        .store
        .get_task(
            &acc,
            &gengate_core::ids::TaskId::parse(g["id"].as_str().unwrap()).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        task.references
            .iter()
            .map(|r| r.file_id.as_str().to_owned())
            .collect::<Vec<_>>(),
        [img["id"].as_str().unwrap(), img2["id"].as_str().unwrap()]
    );
    let before = app.balance(&acc).await;

    let bad_cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        // Another account's file answers like a missing one.
        (
            json!([item(&bobs)]),
            vec![("params.referenceMediaItems[0].url", "not_found")],
        ),
        (
            json!([{"url": "https://cdn.example.com/x.png", "kind": "image"}]),
            vec![("params.referenceMediaItems[0].url", "not_found")],
        ),
        (
            json!([item(&img), {"url": img["url"].as_str().unwrap().replace("sig=", "sig=0"), "kind": "image"}]),
            vec![("params.referenceMediaItems[1].url", "not_found")],
        ),
        (
            json!([item(&narrow)]),
            vec![("params.referenceMediaItems[0].url", "out_of_range")],
        ),
        (
            json!([item(&tiny), item(&narrow)]),
            vec![
                ("params.referenceMediaItems[0].url", "out_of_range"),
                ("params.referenceMediaItems[1].url", "out_of_range"),
            ],
        ),
        (
            json!([item(&img), item(&img2), item(&img)]),
            vec![("params.referenceMediaItems", "too_long")],
        ),
    ];
    for (items, want) in bad_cases {
        let r = app
            .post(
                "/api/v1/generations",
                &key,
                &kling("x", json!({"referenceMediaItems": items})),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{items}");
        let v: Value = r.json().await.unwrap();
        let mut got: Vec<(String, String)> = v["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["field"].as_str().unwrap().to_owned(),
                    d["issue"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mut want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{items}");
    }
    // Two images with multi_shots is refused before anything is charged.
    let r = app
        .post(
            "/api/v1/generations",
            &key,
            &kling(
                "x",
                json!({"multi_shots": true, "referenceMediaItems": [item(&img), item(&img2)]}),
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        app.balance(&acc).await,
        before,
        "a refused request was charged"
    );

    // Foreign file ids are 404 like missing ones.
    assert_eq!(
        app.get(
            &format!("/api/v1/files/{}", bobs["id"].as_str().unwrap()),
            &key
        )
        .send()
        .await
        .unwrap()
        .status(),
        404
    );
    assert_eq!(
        app.get("/api/v1/files/file_000000000000000000000000", &key)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.assert_ledger_balances().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_files_are_swept_and_no_longer_resolve() {
    let app = TestApp::spawn_with(Engine::Sqlite, &["--no-runner", "--file-ttl-hours", "1"]).await;
    let (_, key) = app.account("ttl", 1000).await;
    let (_, img) = upload(
        &app,
        &key,
        "image",
        "a.png",
        "image/png",
        corpus::png(640, 360),
        None,
    )
    .await;
    assert_eq!(counts(&app).await, (1, 1));
    // Expire it by moving its expiry into the past, then sweep.
    gengate_store::testing::raw_execute(&app.database_url, "UPDATE files SET expires_at = 0")
        .await
        .unwrap();
    app.running.engine.files.sweep_expired().await;
    assert_eq!(counts(&app).await, (0, 0));
    let r = app
        .post(
            "/api/v1/generations",
            &key,
            &kling(
                "x",
                json!({"referenceMediaItems": [{"url": img["url"], "kind": "image"}]}),
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reference_image_drives_a_real_sandbox_render() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (_, key) = app.account("i2v", 1000).await;
    let (_, img) = upload(
        &app,
        &key,
        "image",
        "a.webp",
        "image/webp",
        corpus::webp(640, 360),
        None,
    )
    .await;
    let body = kling(
        "pan over it",
        json!({"mode": "std", "duration": 3, "referenceMediaItems": [{"url": img["url"], "kind": "image"}]}),
    );
    let v: Value = app
        .post("/api/v1/generations", &key, &body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v = app
        .wait_terminal(&key, v["id"].as_str().unwrap(), 120)
        .await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let bytes = app
        .http
        .get(v["result"]["primary_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let info = gengate_media::inspect_mp4(&bytes).unwrap();
    assert_eq!(
        (info.width, info.height, info.video_frames),
        (1280, 720, 72)
    );
}

/// A second model, added as data only, that takes video references and
/// requires the server-signed duration token.
fn catalog_with_clip_model(dir: &std::path::Path) -> String {
    let mut cat: Value = serde_json::from_str(gengate_core::catalog::BUILTIN_CATALOG).unwrap();
    let mut m = cat["models"][0].clone();
    m["id"] = json!("clip-extend");
    m["display_name"] = json!("Clip Extend");
    m["file_kinds"] = json!(["video"]);
    m["reference_media"] = json!({
        "max_files": 1, "kinds": ["video"],
        "limits": {"video": {"max_bytes": 52428800, "mime_types": ["video/mp4", "video/webm"], "requires_duration_token": true}},
        "rule": "one video to extend"
    });
    m["internal"]["rules"] = json!([]);
    cat["models"].as_array_mut().unwrap().push(m);
    let p = dir.join("catalog.json");
    std::fs::write(&p, cat.to_string()).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duration_tokens_are_required_and_cannot_be_forged_or_shared() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_with_clip_model(dir.path());
    let app = TestApp::spawn_with(Engine::Sqlite, &["--no-runner", "--catalog", &catalog]).await;
    let (_, key) = app.account("alice", 1000).await;
    let (_, bob) = app.account("bob", 1000).await;
    let (s, clip) = upload(
        &app,
        &key,
        "video",
        "c.webm",
        "video/webm",
        corpus::webm(2.0),
        Some("clip-extend"),
    )
    .await;
    assert_eq!(s, 201, "{clip}");
    let (_, bobs) = upload(
        &app,
        &bob,
        "video",
        "b.webm",
        "video/webm",
        corpus::webm(3.0),
        None,
    )
    .await;
    let token = clip["duration_token"].as_str().unwrap().to_owned();
    let req = |tok: Option<&str>| {
        let mut item = json!({"url": clip["url"], "kind": "video"});
        if let Some(t) = tok {
            item["durationToken"] = json!(t);
        }
        json!({"model": "clip-extend", "prompt": "extend", "params": {"referenceMediaItems": [item]}})
    };
    let mut altered = token.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == '0' { '1' } else { '0' });
    for (tok, why) in [
        (None, "missing"),
        (Some("dt1.AAAA.0000"), "forged"),
        (Some(altered.as_str()), "altered"),
        (
            Some(bobs["duration_token"].as_str().unwrap()),
            "another file's",
        ),
    ] {
        let r = app
            .post("/api/v1/generations", &key, &req(tok))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{why} token accepted");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["error"]["details"][0]["field"], "params.referenceMediaItems[0].durationToken",
            "{why}"
        );
    }
    // Bob cannot use Alice's file, token or not.
    let r = app
        .post("/api/v1/generations", &bob, &req(Some(&token)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .post("/api/v1/generations", &key, &req(Some(&token)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_past_the_hard_cap_are_refused_before_reading() {
    // A raw socket, because the property is that the server answers from the
    // headers alone: we announce 52 MiB, send none of it, and must still get
    // the 413. (Clients that write the whole body anyway are in hostile.rs:
    // the server's lingering close lets them read the answer too.)
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (_, key) = app.account("big", 0).await;
    let addr = app.running.addr.to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {}\r\n\r\n",
        52 * 1024 * 1024
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n")
                        && String::from_utf8_lossy(&answer).contains("payload_too_large")
                    {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer without the body: the server waited to read it"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    assert_eq!(counts(&app).await, (0, 0));
}
