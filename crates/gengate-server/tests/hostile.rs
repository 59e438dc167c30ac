//! The hostile-input battery (issue 10): malformed paths, queries, bodies
//! and methods on every route the server has, and clients that are slow,
//! idle or too many. Every answer must be a 4xx (or the documented 503) in
//! the JSON envelope whose `requestId` is the `X-Request-Id`, within
//! seconds, and no credit may move. NUL and control characters in text
//! fields have their own tests elsewhere.

mod common;

use common::{Engine, TestApp};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both_engines!(
    every_route_answers_malformed_requests_in_the_envelope,
    slow_and_idle_connections_are_cut_and_long_requests_are_not,
    over_the_connection_cap_is_answered_503_and_closed,
);

/// Generous: the machine running the tests may be busy.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Sends `req` and checks the answer is an error in the envelope; returns
/// the status and the envelope's `error`.
async fn envelope(what: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
    let started = Instant::now();
    let r = req
        .timeout(ANSWER_WITHIN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = r.status().as_u16();
    assert!(
        (400..500).contains(&status),
        "{what}: status {status} is not a 4xx"
    );
    let rid = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{what}: no X-Request-Id"))
        .to_owned();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        ct.starts_with("application/json"),
        "{what}: content-type {ct:?}"
    );
    let v: Value = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let e = v["error"].clone();
    assert!(e["code"].is_string(), "{what}: no code: {v}");
    assert!(e["message"].is_string(), "{what}: no message: {v}");
    assert_eq!(e["requestId"], rid.as_str(), "{what}: requestId: {v}");
    assert!(started.elapsed() < ANSWER_WITHIN, "{what}: too slow");
    (status, e)
}

/// Every operation of the OpenAPI document: `(method, path template, op)`.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.to_uppercase().as_str()) {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

fn params<'a>(op: &'a Value, place: &str) -> Vec<&'a str> {
    op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["in"] == place)
                .filter_map(|p| p["name"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// The path with every `{param}` replaced by `value`.
fn fill(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn request(app: &TestApp, method: &str, path: &str, key: &str) -> reqwest::RequestBuilder {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    app.http.request(m, app.url(path)).bearer_auth(key)
}

async fn every_route_answers_malformed_requests_in_the_envelope(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner", "--max-json-bytes", "4096"]).await;
    let (account, key) = app.account("hostile", 1000).await;
    let ledger_before = app
        .running
        .engine
        .store
        .ledger(&account)
        .await
        .expect("ledger")
        .len();
    let doc: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("doc json");
    let ops = operations(&doc);
    assert!(
        ops.len() >= 17,
        "the document lists {} operations",
        ops.len()
    );

    for (method, path, op) in &ops {
        // The document lists what the shared layers answer.
        let documented = |status: &str| op["responses"].get(status).is_some();
        let what = format!("{method} {path}");
        if op.get("security").is_some() {
            for s in ["401", "403", "429", "503"] {
                assert!(documented(s), "{what} does not document {s}");
            }
        }
        if params(op, "header").contains(&"Idempotency-Key") {
            assert!(
                documented("400") && documented("409"),
                "{what}: Idempotency-Key errors"
            );
        }
        if op.get("requestBody").is_some() {
            assert!(
                documented("413") && documented("408"),
                "{what}: body errors"
            );
        }
        if !params(op, "path").is_empty() {
            assert!(documented("400") && documented("404"), "{what}: id errors");
        }
        // Invalid UTF-8 in every path id: 400 naming the parameter.
        let path_params = params(op, "path");
        if !path_params.is_empty() {
            let what = format!("{method} {path} with %FF%FE ids");
            let (status, e) = envelope(
                &what,
                request(&app, method, &fill(path, "%FF%FE"), &key)
                    .header("content-type", "application/json")
                    .body("{}"),
            )
            .await;
            assert_eq!(status, 400, "{what}: {e}");
            assert_eq!(e["code"], "validation_failed", "{what}: {e}");
            assert!(
                path_params.contains(&e["details"][0]["field"].as_str().unwrap_or("")),
                "{what}: the field is not named: {e}"
            );
        }
        let target = fill(path, "x_nothing");
        // Invalid UTF-8 and nonsense in every query parameter.
        for q in params(op, "query") {
            let numeric = ["limit", "wait"].contains(&q);
            for bad in ["%FF%FE", "%C3", "-1", "99999999999999999999", "abc"] {
                if !bad.starts_with('%') && !numeric {
                    continue;
                }
                let what = format!("{method} {target}?{q}={bad}");
                let r = request(&app, method, &format!("{target}?{q}={bad}"), &key);
                let (status, e) = envelope(&what, r).await;
                // An id that names nothing may be looked up first.
                if !(status == 404 && !bad.starts_with('%') && path.contains('{')) {
                    assert_eq!(
                        (status, e["details"][0]["field"].as_str()),
                        (400, Some(q)),
                        "{what}: {e}"
                    );
                }
            }
        }
        // Bodies: malformed, of the wrong type, too large.
        if op.get("requestBody").is_some() {
            let multipart = op["requestBody"]["content"]
                .get("multipart/form-data")
                .is_some();
            let ct = if multipart {
                "multipart/form-data; boundary=XYZ"
            } else {
                "application/json"
            };
            let what = format!("{method} {target} with a malformed body");
            let (status, e) = envelope(
                &what,
                request(&app, method, &target, &key)
                    .header("content-type", ct)
                    .body("{\"model\": \"kling-3-0\", \u{7f}--XYZ garbage"),
            )
            .await;
            assert!(status == 400 || status == 404, "{what}: {status} {e}");
            let what = format!("{method} {target} with a text/plain body");
            let (status, e) = envelope(
                &what,
                request(&app, method, &target, &key)
                    .header("content-type", "text/plain")
                    .body("hello"),
            )
            .await;
            assert!(status == 400 || status == 404, "{what}: {status} {e}");
            if !multipart {
                let what = format!("{method} {target} with 100 KB of JSON");
                let big = format!("{{\"prompt\": \"{}\"}}", "a".repeat(100_000));
                let (status, e) = envelope(
                    &what,
                    request(&app, method, &target, &key)
                        .header("content-type", "application/json")
                        .body(big),
                )
                .await;
                assert!(status == 413 || status == 404, "{what}: {status} {e}");
            }
        }
        // Every method the route does not have: 405 with Allow.
        let documented: Vec<String> = ops
            .iter()
            .filter(|(_, p, _)| p == path)
            .map(|(m, _, _)| m.clone())
            .collect();
        for m in METHODS
            .iter()
            .filter(|m| !documented.contains(&m.to_string()))
        {
            let what = format!("{m} {target}");
            let r = request(&app, m, &target, &key).send().await.expect("send");
            assert!(r.headers().contains_key("allow"), "{what}: no Allow header");
            let (status, e) = envelope(&what, request(&app, m, &target, &key)).await;
            assert_eq!(status, 405, "{what}: {e}");
            assert_eq!(e["code"], "method_not_allowed", "{what}: {e}");
        }
    }

    // The routes outside the document, and no route at all.
    let cases: &[(&str, &str, u16, &str)] = &[
        ("GET", "/api/v1/nope", 404, "not_found"),
        ("GET", "/api/v1/generations/task_x/nope", 404, "not_found"),
        ("GET", "/%FF%FE", 404, "not_found"),
        ("GET", "/no-such-page", 404, "not_found"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("DELETE", "/readyz", 405, "method_not_allowed"),
        ("PUT", "/metrics", 405, "method_not_allowed"),
        ("GET", "/media", 404, "not_found"),
        ("GET", "/media/x.mp4", 404, "not_found"),
        (
            "GET",
            "/media/x.mp4?expires=%FF&sig=%FE",
            400,
            "validation_failed",
        ),
        (
            "GET",
            "/media/%FF%FE.mp4?expires=1&sig=2",
            400,
            "validation_failed",
        ),
        ("POST", "/media/x.mp4", 405, "method_not_allowed"),
        (
            "GET",
            "/internal/callbacks/kling/task_x",
            405,
            "method_not_allowed",
        ),
        ("POST", "/internal/callbacks/kling", 404, "not_found"),
        (
            "POST",
            "/internal/callbacks/kling/task_x?token=nope",
            401,
            "api_key_invalid",
        ),
        (
            "POST",
            "/internal/callbacks/kling/%FF%FE?token=x",
            400,
            "validation_failed",
        ),
        (
            "POST",
            "/internal/callbacks/%FF/task_x?token=%FF",
            400,
            "validation_failed",
        ),
    ];
    for (method, path, want, code) in cases {
        let what = format!("{method} {path}");
        let (status, e) = envelope(&what, request(&app, method, path, &key)).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (*want, Some(*code)),
            "{what}: {e}"
        );
    }
    // A callback body far over its cap: 413 in the envelope.
    let what = "an oversized callback";
    let (status, e) = envelope(
        what,
        request(
            &app,
            "POST",
            "/internal/callbacks/kling/task_x?token=nope",
            &key,
        )
        .body(vec![b'x'; 1024 * 1024]),
    )
    .await;
    assert!(status == 413 || status == 401, "{what}: {status} {e}");
    // Without a key, every authenticated route answers 401 in the envelope.
    for (method, path, op) in &ops {
        if op.get("security").is_some() {
            let what = format!("{method} {path} without a key");
            let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let (status, _) = envelope(&what, app.http.request(m, app.url(&fill(path, "x")))).await;
            assert_eq!(status, 401, "{what}");
        }
    }

    // Nothing of it moved a credit.
    assert_eq!(app.balance(&account).await, 1000);
    let ledger_after = app
        .running
        .engine
        .store
        .ledger(&account)
        .await
        .expect("ledger")
        .len();
    assert_eq!(ledger_after, ledger_before, "ledger rows were written");
    app.assert_ledger_balances().await;
}

/// Reads until the server closes the connection (or `within` passes: then
/// panics). Returns what was read.
/// A client that writes its whole oversized body, as HTTP clients do, must
/// read the 413 and not a connection reset: the server answers from the
/// headers, then drains what is still coming before it closes (a close
/// with unread bytes makes the kernel send RST, which can destroy the
/// answer in the client's buffer before it is read).
#[tokio::test]
async fn oversized_bodies_written_in_full_still_get_their_answer() {
    let app =
        TestApp::spawn_with(Engine::Sqlite, &["--no-runner", "--max-json-bytes", "4096"]).await;
    let (_, key) = app.account("big-bodies", 0).await;
    let big = vec![b'x'; 8 * 1024 * 1024];
    for round in 0..12 {
        for (path, ct) in [
            (
                "/internal/callbacks/kling/task_x?token=nope",
                "application/json",
            ),
            ("/api/v1/generations", "application/json"),
        ] {
            let what = format!("{path}, round {round}");
            let (status, e) = envelope(
                &what,
                request(&app, "POST", path, &key)
                    .header("content-type", ct)
                    .body(big.clone()),
            )
            .await;
            assert_eq!(status, 413, "{what}: {e}");
        }
    }
    // An upload past the hard cap, written in full by the client.
    let huge = vec![b'x'; 52 * 1024 * 1024];
    for round in 0..3 {
        let what = format!("an upload over the cap, round {round}");
        let (status, e) = envelope(
            &what,
            request(&app, "POST", "/api/v1/files", &key)
                .header("content-type", "multipart/form-data; boundary=x")
                .body(huge.clone()),
        )
        .await;
        assert_eq!(status, 413, "{what}: {e}");
    }
}

/// The same on a raw socket, made deterministic: the client sends its
/// headers, is slow to send the body (the answer is out by then), then
/// writes all of it and only then reads. Every write must go through and
/// the 413 must be there to read.
#[tokio::test]
async fn a_body_written_after_the_answer_does_not_reset_the_connection() {
    let app = TestApp::spawn_with(Engine::Sqlite, &["--no-runner"]).await;
    let (_, key) = app.account("slow-body", 0).await;
    for path in [
        "/internal/callbacks/kling/task_x?token=nope",
        "/api/v1/generations",
    ] {
        let mut sock = connect(&app).await;
        let len = 4 * 1024 * 1024;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        );
        sock.write_all(head.as_bytes()).await.expect("head");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = sock.write_all(&vec![b'x'; len]).await;
        assert!(sent.is_ok(), "{path}: writing the body failed: {sent:?}");
        let raw = read_until_closed(&mut sock, path, ANSWER_WITHIN).await;
        let (status, v) = parse_answer(&raw);
        assert_eq!(status, 413, "{path}: {v}");
    }
}

/// Only those closes linger. A client that keeps its idle keep-alive open
/// and never reads gets the idle cut and must not hold the place: at
/// `--max-connections 1`, the next connection right after the cut is
/// served, not refused for the lingering time.
#[tokio::test]
async fn an_idle_cut_does_not_linger() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            "--no-runner",
            "--max-connections",
            "1",
            "--http-idle-timeout-ms",
            "500",
        ],
    )
    .await;
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(ANSWER_WITHIN, idle.read(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    assert_eq!(parse_answer(&buf[..n]).0, 200);
    // The cut: the server's end of the stream. `idle` stays open, unread from here.
    let cut = tokio::time::timeout(ANSWER_WITHIN, idle.read(&mut buf))
        .await
        .expect("cut within the idle timeout");
    assert!(matches!(cut, Ok(0)), "{cut:?}");
    let started = Instant::now();
    loop {
        let mut s = connect(&app).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let (status, _) = parse_answer(&read_until_closed(&mut s, "next", ANSWER_WITHIN).await);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        // The slot comes back when the cut connection's task ends: moments, not 5 s.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the cut connection held its place for {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(idle);
}

async fn read_until_closed(s: &mut TcpStream, what: &str, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("{what}: still open after {within:?}"),
        }
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.running.addr).await.expect("connect")
}

/// The status line's code and the body of one HTTP/1.1 answer.
fn parse_answer(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn slow_and_idle_connections_are_cut_and_long_requests_are_not(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            "--no-runner",
            "--http-header-timeout-ms",
            "500",
            "--http-body-timeout-ms",
            "500",
            "--http-idle-timeout-ms",
            "1500",
        ],
    )
    .await;
    let (account, key) = app.account("slow", 1000).await;

    // Half the headers, then nothing: closed, without an answer.
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    read_until_closed(&mut s, "half headers", ANSWER_WITHIN).await;

    // Connected and silent: closed.
    let mut s = connect(&app).await;
    read_until_closed(&mut s, "a silent connection", ANSWER_WITHIN).await;

    // A keep-alive connection left idle after its answer: closed.
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut s, "an idle keep-alive connection", ANSWER_WITHIN).await;
    assert_eq!(
        parse_answer(&got).0,
        200,
        "{}",
        String::from_utf8_lossy(&got)
    );

    // A body that stops after 9 of 1000 bytes: 408 in the envelope, closed.
    let mut s = connect(&app).await;
    let head = format!(
        "POST /api/v1/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let got = read_until_closed(&mut s, "a stalled body", ANSWER_WITHIN).await;
    let (status, v) = parse_answer(&got);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&got));
    assert_eq!(v["error"]["code"], "request_timeout");
    assert!(
        v["error"]["requestId"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_"))
    );

    // The same stall in an upload.
    let mut s = connect(&app).await;
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: 100000\r\n\r\n\
         --XYZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nimage\r\n--XYZ\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nPNG"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let got = read_until_closed(&mut s, "a stalled upload", ANSWER_WITHIN).await;
    let (status, v) = parse_answer(&got);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&got));
    assert_eq!(v["error"]["code"], "request_timeout");

    // A long poll longer than the idle timeout still answers, on time.
    let created = app
        .post_json(
            "/api/v1/generations",
            &key,
            &common::kling("a lighthouse", serde_json::json!({})),
        )
        .await;
    let id = created["id"].as_str().expect("task id").to_owned();
    let started = Instant::now();
    let r = app
        .get(&format!("/api/v1/generations/{id}?wait=3"), &key)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the long poll is answered");
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "the poll did not wait: {:?}",
        started.elapsed()
    );

    // A large download read slowly, for longer than the idle timeout,
    // completes byte for byte.
    let size = 8 * 1024 * 1024;
    let blob: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let st = &app.running.engine;
    st.blobs
        .put("hostile/slow.mp4", blob.clone().into())
        .await
        .expect("blob");
    let url = st.links.sign_ref("hostile/slow.mp4");
    let mut r = app.http.get(&url).send().await.expect("download starts");
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    let mut got = Vec::with_capacity(size);
    while let Some(chunk) = r.chunk().await.expect("download goes on") {
        got.extend_from_slice(&chunk);
        if got.len() % (512 * 1024) < chunk.len() {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    assert!(got == blob, "the download differs ({} bytes)", got.len());
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "the download was not slow enough to test anything: {:?}",
        started.elapsed()
    );

    // None of it moved a credit beyond the one task.
    assert_eq!(app.balance(&account).await, 1000 - 90);
    app.assert_ledger_balances().await;
}

async fn over_the_connection_cap_is_answered_503_and_closed(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--no-runner", "--max-connections", "3"]).await;
    let (account, key) = app.account("cap", 1000).await;
    // Three keep-alive connections, each with an answered request, held open.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&app).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(ANSWER_WITHIN, s.read(&mut buf))
            .await
            .expect("answered")
            .expect("read");
        assert_eq!(parse_answer(&buf[..n]).0, 200);
        held.push(s);
    }
    // The fourth: 503 in the envelope with Retry-After, then closed.
    let mut s = connect(&app).await;
    s.write_all(b"GET /api/v1/credits HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut s, "over the cap", ANSWER_WITHIN).await;
    let text = String::from_utf8_lossy(&got).to_lowercase();
    let (status, v) = parse_answer(&got);
    assert_eq!(status, 503, "{text}");
    assert_eq!(v["error"]["code"], "service_unavailable");
    assert!(
        v["error"]["requestId"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_"))
    );
    assert!(text.contains("retry-after: 1"), "{text}");
    // A place freed is a place taken: once one closes, a new one is served.
    drop(held.pop());
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        let r = app.get("/api/v1/credits", &key).send().await;
        if r.as_ref().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "no place came free: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.balance(&account).await, 1000);
}
