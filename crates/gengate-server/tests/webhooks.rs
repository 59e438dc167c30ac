//! Webhooks over real HTTP: endpoint management, the URL rules at creation
//! and at delivery, signatures checked by the Python reference
//! implementation, the retry schedule, hostile receivers, and a kill -9 in
//! the middle of a delivery.

mod common;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{Engine, TestApp, kling};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

on_both_engines!(
    endpoints_are_managed_and_private_to_their_account,
    deliveries_verify_with_the_reference_implementation,
    a_delivery_cut_by_kill_9_is_sent_after_restart,
    credits_low_and_spend_limit_events_go_out_once_each,
);

const FAST: [&str; 6] = [
    "--webhook-allow-insecure",
    "--webhook-time-scale",
    "0.001",
    "--webhook-poll-ms",
    "50",
    "--sandbox-concurrency",
];

fn fast_flags() -> Vec<&'static str> {
    let mut v = FAST.to_vec();
    v.push("2");
    v
}

// ---------------------------------------------------------------------------
// A receiver on loopback that answers from a script and records every hit.

#[derive(Clone, Debug)]
enum Reply {
    Status(u16),
    /// Answer with this status and `Retry-After: secs`.
    RetryAfter(u16, u64),
    Hang,
    Redirect,
    /// A 500 with a 50 MB body.
    Huge,
}

#[derive(Clone, Debug)]
struct Hit {
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    plan: Arc<Mutex<VecDeque<Reply>>>,
    /// Answer when the plan is used up.
    then: Arc<Mutex<Option<Reply>>>,
}

impl Receiver {
    async fn start(plan: Vec<Reply>) -> (Self, String) {
        let r = Receiver {
            plan: Arc::new(Mutex::new(plan.into())),
            ..Default::default()
        };
        let app = axum::Router::new().fallback(receive).with_state(r.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        (r, format!("http://{addr}/hook"))
    }

    fn always(&self, reply: Reply) {
        *self.then.lock().unwrap() = Some(reply);
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    async fn wait_hits(&self, n: usize, secs: u64) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let h = self.hits();
            if h.len() >= n {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} hits, wanted {n}",
                h.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    r.hits.lock().unwrap().push(Hit {
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    let next = r.plan.lock().unwrap().pop_front();
    let reply = next
        .or_else(|| r.then.lock().unwrap().clone())
        .unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Reply::RetryAfter(s, secs) => (
            StatusCode::from_u16(s).unwrap(),
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Reply::Redirect => (
            StatusCode::FOUND,
            [("location", "http://127.0.0.1:9/elsewhere")],
        )
            .into_response(),
        Reply::Huge => {
            let chunk = Bytes::from(vec![b'x'; 1 << 20]);
            let stream = futures_util::stream::iter(
                (0..50).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            (StatusCode::INTERNAL_SERVER_ERROR, Body::from_stream(stream)).into_response()
        }
    }
}

// ---------------------------------------------------------------------------

async fn create_endpoint(app: &TestApp, key: &str, body: Value) -> (StatusCode, Value) {
    let r = app
        .post("/api/v1/webhooks", key, &body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

async fn failing_task(app: &TestApp, key: &str, label: &str) -> String {
    let r = app
        .post(
            "/api/v1/generations",
            key,
            &kling(
                &format!("{label} [sandbox:fail]"),
                json!({"duration": 3, "aspect_ratio": "1:1"}),
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

async fn attempts(app: &TestApp, key: &str, endpoint: &str) -> Vec<Value> {
    let v: Value = app
        .get(
            &format!("/api/v1/webhooks/{endpoint}/deliveries?limit=100"),
            key,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"].as_array().unwrap().clone()
}

async fn wait_attempts(app: &TestApp, key: &str, endpoint: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = attempts(app, key, endpoint).await;
        if a.len() >= n {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "endpoint {endpoint} has {} attempts, wanted {n}: {a:?}",
            a.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header(h: &Hit, name: &str) -> String {
    h.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Verifies a delivery with the Standard Webhooks Python package, an
/// implementation we did not write.
fn python_verifies(secret: &str, hit: &Hit) -> Result<(), String> {
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
d = json.load(sys.stdin)
Webhook(d["secret"]).verify(d["body"].encode(), d["headers"])
print("ok")
"#;
    let input = json!({
        "secret": secret,
        "body": String::from_utf8(hit.body.clone()).unwrap(),
        "headers": {
            "webhook-id": header(hit, "webhook-id"),
            "webhook-timestamp": header(hit, "webhook-timestamp"),
            "webhook-signature": header(hit, "webhook-signature"),
        }
    });
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

// ---------------------------------------------------------------------------

async fn endpoints_are_managed_and_private_to_their_account(engine: Engine) {
    let app = TestApp::spawn_with(engine, &["--webhook-allow-insecure"]).await;
    let (alice_id, alice) = app.account("alice", 0).await;
    let (_, bob) = app.account("bob", 0).await;

    // Every bad field is named; nothing is created.
    let (s, v) = create_endpoint(
        &app,
        &alice,
        json!({"name": "", "url": 7, "event_types": ["generation.started"], "secret": "mine"}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], "validation_failed");
    let mut fields: Vec<String> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    assert_eq!(fields, ["event_types[0]", "name", "secret", "url"]);

    // Create: the secret is shown once.
    let r = app
        .post(
            "/api/v1/webhooks",
            &alice,
            &json!({"name": "prod", "url": "http://127.0.0.1:9/hook", "event_types": ["generation.failed"]}),
        )
        .header("Idempotency-Key", "wh-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("whend_"));
    assert_eq!(created["object"], "webhook_endpoint");
    assert_eq!(created["status"], "active");
    assert_eq!(created["event_types"], json!(["generation.failed"]));
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let preview = created["secret_preview"].as_str().unwrap();
    assert!(
        preview.len() < secret.len() / 2,
        "preview shows too much: {preview}"
    );
    for k in [
        "last_success_at",
        "last_failure_at",
        "disabled_at",
        "revoked_at",
    ] {
        assert!(created[k].is_null(), "{k}");
    }
    assert_eq!(created["failure_count"], 0);
    // The same Idempotency-Key replays the same endpoint instead of making another.
    let r = app
        .post(
            "/api/v1/webhooks",
            &alice,
            &json!({"name": "prod", "url": "http://127.0.0.1:9/hook", "event_types": ["generation.failed"]}),
        )
        .header("Idempotency-Key", "wh-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let replay: Value = r.json().await.unwrap();
    assert_eq!(replay["id"], created["id"]);

    let got: Value = app
        .get_json(&format!("/api/v1/webhooks/{id}"), &alice)
        .await;
    assert!(
        got.get("signing_secret").is_none(),
        "secret shown again: {got}"
    );
    assert_eq!(got["name"], "prod");

    // Bob sees nothing of Alice's, and every route answers him like a missing id.
    for (method, path) in [
        ("GET", format!("/api/v1/webhooks/{id}")),
        ("PATCH", format!("/api/v1/webhooks/{id}")),
        ("DELETE", format!("/api/v1/webhooks/{id}")),
        ("POST", format!("/api/v1/webhooks/{id}/rotate-secret")),
        ("POST", format!("/api/v1/webhooks/{id}/test")),
        ("GET", format!("/api/v1/webhooks/{id}/deliveries")),
    ] {
        let r = app
            .http
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(&bob)
            .json(&json!({"name": "stolen"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
    }
    let list: Value = app.get_json("/api/v1/webhooks", &bob).await;
    assert_eq!(list["data"], json!([]));

    // A key without webhooks:manage is refused.
    let narrow = app
        .key(
            &alice_id,
            vec![gengate_core::scope::Scope::GenerationsRead],
            None,
            Default::default(),
        )
        .await;
    let r = app.get("/api/v1/webhooks", &narrow).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // Update only what is sent; disabling stamps disabled_at, enabling clears it.
    let patch = |body: Value| {
        app.http
            .patch(app.url(&format!("/api/v1/webhooks/{id}")))
            .bearer_auth(&alice)
            .json(&body)
            .send()
    };
    let v: Value = patch(json!({"name": "renamed", "status": "disabled"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["status"], "disabled");
    assert!(v["disabled_at"].is_string());
    assert_eq!(v["url"], "http://127.0.0.1:9/hook");
    let v: Value = patch(
        json!({"status": "active", "event_types": ["generation.succeeded", "generation.failed"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["status"], "active");
    assert!(v["disabled_at"].is_null());
    assert_eq!(v["event_types"].as_array().unwrap().len(), 2);
    let r = patch(json!({"status": "paused"})).await.unwrap();
    assert_eq!(r.status(), 400);

    // Rotation shows a new secret once.
    let v: Value = app
        .post_json(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &alice,
            &json!({}),
        )
        .await;
    let rotated = v["signing_secret"].as_str().unwrap();
    assert!(rotated.starts_with("whsec_") && rotated != secret);

    // Pagination.
    let mut ids = vec![id.clone()];
    for i in 0..3 {
        let (_, v) = create_endpoint(
            &app,
            &alice,
            json!({"name": format!("e{i}"), "url": "http://127.0.0.1:9/x"}),
        )
        .await;
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let page1: Value = app.get_json("/api/v1/webhooks?limit=2", &alice).await;
    assert_eq!(page1["has_more"], true);
    let last = page1["data"][1]["id"].as_str().unwrap();
    let page2: Value = app
        .get(
            &format!("/api/v1/webhooks?limit=2&starting_after={last}"),
            &alice,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page2["has_more"], false);
    let mut seen: Vec<String> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["data"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);

    // Delete: answered once with revoked_at, then gone.
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/webhooks/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["revoked_at"].is_string());
    let r = app
        .get(&format!("/api/v1/webhooks/{id}"), &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let list: Value = app.get_json("/api/v1/webhooks?limit=100", &alice).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn urls_are_checked_at_creation() {
    // Production rules: no --webhook-allow-insecure.
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (_, key) = app.account("ssrf", 0).await;
    let refused = [
        "http://93.184.216.34/hook",
        "ftp://93.184.216.34/hook",
        "https://user:pw@93.184.216.34/hook",
        "https://93.184.216.34/hook#frag",
        "https://127.0.0.1/hook",
        "https://127.1/hook",
        "https://0x7f.1/hook",
        "https://0x7f000001/hook",
        "https://2130706433/hook",
        "https://017700000001/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:7f00:1]/hook",
        "https://[64:ff9b::7f00:1]/hook",
        "https://0.0.0.0/hook",
        "https://[::]/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/hook",
        "https://100.64.0.1/hook",
        "https://[fc00::1]/hook",
        "https://224.0.0.1/hook",
        "https://[ff02::1]/hook",
        "https://240.0.0.1/hook",
        "https://255.255.255.255/hook",
        "https://192.0.2.1/hook",
        "https://198.18.0.1/hook",
        "https://localhost/hook",
        "https://localhost./hook",
    ];
    for url in refused {
        let (s, v) = create_endpoint(&app, &key, json!({"name": "x", "url": url})).await;
        assert_eq!(s, 400, "{url} accepted: {v}");
        assert_eq!(v["error"]["code"], "webhook_url_rejected", "{url}: {v}");
        assert_eq!(v["error"]["details"][0]["field"], "url", "{url}");
    }
    // Refused on update too, and the endpoint keeps its URL.
    let (s, v) = create_endpoint(
        &app,
        &key,
        json!({"name": "public", "url": "https://93.184.216.34/hook"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/webhooks/{id}")))
        .bearer_auth(&key)
        .json(&json!({"url": "https://[::ffff:127.0.0.1]/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "webhook_url_rejected");
    let got: Value = app.get_json(&format!("/api/v1/webhooks/{id}"), &key).await;
    assert_eq!(got["url"], "https://93.184.216.34/hook");
    let list: Value = app.get_json("/api/v1/webhooks", &key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn urls_are_checked_again_at_delivery() {
    // The endpoint was created when its name pointed somewhere public; now
    // it resolves to loopback (DNS rebinding). Nothing may connect.
    let app = TestApp::spawn_with(Engine::Sqlite, &["--webhook-poll-ms", "50"]).await;
    let (_, key) = app.account("rebind", 900).await;
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = trap.local_addr().unwrap().port();
    let connections = Arc::new(Mutex::new(0usize));
    let c2 = connections.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = trap.accept().await {
            *c2.lock().unwrap() += 1;
        }
    });
    let mut ids = vec![];
    for (name, later) in [
        ("by-name", format!("https://localhost:{port}/hook")),
        ("mapped", format!("https://[::ffff:127.0.0.1]:{port}/hook")),
    ] {
        let (s, v) = create_endpoint(
            &app,
            &key,
            json!({"name": name, "url": "https://93.184.216.34/hook"}),
        )
        .await;
        assert_eq!(s, 201);
        let id = v["id"].as_str().unwrap().to_owned();
        gengate_store::testing::raw_execute(
            &app.database_url,
            &format!("UPDATE webhook_endpoints SET url = '{later}' WHERE id = '{id}'"),
        )
        .await
        .unwrap();
        ids.push(id);
    }
    failing_task(&app, &key, "rebind").await;
    for id in &ids {
        let a = wait_attempts(&app, &key, id, 1).await;
        assert!(a[0]["status_code"].is_null(), "{a:?}");
        let err = a[0]["error"].as_str().unwrap();
        assert!(
            err.contains("loopback") || err.contains("public"),
            "unexpected error {err}"
        );
    }
    assert_eq!(
        *connections.lock().unwrap(),
        0,
        "a refused URL was connected to"
    );
}

async fn deliveries_verify_with_the_reference_implementation(engine: Engine) {
    let app = TestApp::spawn_with(engine, &fast_flags()).await;
    let (_, key) = app.account("verify", 10_000).await;
    let (rx, url) = Receiver::start(vec![]).await;
    let (_, only_succeeded) = Receiver::start(vec![]).await;
    let (s, v) = create_endpoint(&app, &key, json!({"name": "all", "url": url})).await;
    assert_eq!(s, 201);
    let endpoint = v["id"].as_str().unwrap().to_owned();
    let secret = v["signing_secret"].as_str().unwrap().to_owned();
    let (s, _) = create_endpoint(
        &app,
        &key,
        json!({"name": "succ", "url": only_succeeded, "event_types": ["generation.succeeded"]}),
    )
    .await;
    assert_eq!(s, 201);

    // A failed task: one generation.failed event, whose data is what the status endpoint says.
    let task = failing_task(&app, &key, "verify").await;
    let status = app.wait_terminal(&key, &task, 60).await;
    let hits = rx.wait_hits(1, 30).await;
    let hit = &hits[0];
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["type"], "generation.failed");
    assert_eq!(body["api_version"], "2026-05-11");
    assert!(body["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(header(hit, "webhook-id"), body["id"].as_str().unwrap());
    assert_eq!(header(hit, "content-type"), "application/json");
    assert!(body["created_at"].is_string());
    assert_eq!(
        body["data"], status,
        "event data differs from GET /generations/{{id}}"
    );
    python_verifies(&secret, hit).expect("standardwebhooks rejected our signature");
    // Tampering is caught by the same verifier (the check can fail).
    let mut forged = hit.clone();
    forged.body = hit.body.replace_first(b"failed", b"succeeded");
    assert!(python_verifies(&secret, &forged).is_err());

    // The event is listed, with the same id.
    let events: Value = app
        .get_json("/api/v1/webhook-events?type=generation.failed", &key)
        .await;
    assert_eq!(events["data"][0]["id"], body["id"]);
    assert_eq!(events["data"][0]["object"], "event");

    // A succeeded task goes to both endpoints, media links included.
    let r = app
        .post(
            "/api/v1/generations",
            &key,
            &kling("verify ok", json!({"duration": 3, "aspect_ratio": "1:1"})),
        )
        .send()
        .await
        .unwrap();
    let ok_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app.wait_terminal(&key, &ok_id, 120).await;
    assert_eq!(done["status"], "succeeded");
    let hits = rx.wait_hits(2, 30).await;
    let body: Value = serde_json::from_slice(&hits[1].body).unwrap();
    assert_eq!(body["type"], "generation.succeeded");
    assert_eq!(body["data"]["id"], ok_id.as_str());
    assert!(body["data"]["result"]["primary_url"].is_string());
    python_verifies(&secret, &hits[1]).unwrap();

    // Rotation: for 24 h both secrets sign, so receivers on either verify.
    let v: Value = app
        .post_json(
            &format!("/api/v1/webhooks/{endpoint}/rotate-secret"),
            &key,
            &json!({}),
        )
        .await;
    let new_secret = v["signing_secret"].as_str().unwrap().to_owned();
    failing_task(&app, &key, "after rotation").await;
    let hits = rx.wait_hits(3, 60).await;
    let hit = &hits[2];
    assert_eq!(
        header(hit, "webhook-signature").matches("v1,").count(),
        2,
        "two signatures during the overlap"
    );
    python_verifies(&new_secret, hit).expect("new secret");
    python_verifies(&secret, hit).expect("old secret during the overlap");

    // The test event reaches only its endpoint and verifies too.
    let r = app
        .post(
            &format!("/api/v1/webhooks/{endpoint}/test"),
            &key,
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let hits = rx.wait_hits(4, 30).await;
    let body: Value = serde_json::from_slice(&hits[3].body).unwrap();
    assert_eq!(body["type"], "webhook.test");
    python_verifies(&new_secret, &hits[3]).unwrap();

    // Each event reached each subscribed endpoint exactly once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), 4);
    let ids: std::collections::HashSet<String> =
        rx.hits().iter().map(|h| header(h, "webhook-id")).collect();
    assert_eq!(ids.len(), 4);
}

trait ReplaceFirst {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8>;
}

impl ReplaceFirst for Vec<u8> {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8> {
        match self.windows(from.len()).position(|w| w == from) {
            Some(i) => [&self[..i], to, &self[i + from.len()..]].concat(),
            None => panic!("pattern not found"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_receiver_gets_retries_on_schedule_then_one_delivery() {
    let app = TestApp::spawn_with(Engine::Sqlite, &fast_flags()).await;
    let (_, key) = app.account("retry", 900).await;
    // 1 s of Retry-After is 1 ms at this scale: it floors the 5 s step, no more.
    let (rx, url) = Receiver::start(vec![
        Reply::Status(500),
        Reply::RetryAfter(503, 1),
        Reply::Status(404),
    ])
    .await;
    let (_, v) = create_endpoint(&app, &key, json!({"name": "flaky", "url": url})).await;
    let endpoint = v["id"].as_str().unwrap().to_owned();
    failing_task(&app, &key, "retry").await;
    let hits = rx.wait_hits(4, 60).await;
    let a = wait_attempts(&app, &key, &endpoint, 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.hits().len(), 4, "delivered more than once after success");

    // Same message id on every attempt; each verifies.
    let id = header(&hits[0], "webhook-id");
    assert!(hits.iter().all(|h| header(h, "webhook-id") == id));
    // The schedule, compressed 1000x: 5 s, 5 min, 30 min → 5 ms, 300 ms, 1.8 s (±10 %).
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, want_ms) in gaps.iter().zip([5u64, 300, 1800]) {
        let min = Duration::from_millis(want_ms * 9 / 10);
        assert!(
            *gap >= min,
            "retry came after {gap:?}, schedule says ≥ {min:?}"
        );
        assert!(
            *gap <= Duration::from_millis(want_ms * 11 / 10 + 1500),
            "retry came after {gap:?}, schedule says ~{want_ms} ms"
        );
    }

    // Every attempt is listed, newest first.
    let codes: Vec<Option<i64>> = a.iter().map(|x| x["status_code"].as_i64()).collect();
    assert_eq!(codes, [Some(200), Some(404), Some(503), Some(500)]);
    let numbers: Vec<i64> = a.iter().map(|x| x["attempt"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [4, 3, 2, 1]);
    assert!(
        a.iter()
            .all(|x| x["duration_ms"].is_i64() && x["created_at"].is_string())
    );
    let ep: Value = app
        .get_json(&format!("/api/v1/webhooks/{endpoint}"), &key)
        .await;
    assert!(ep["last_success_at"].is_string());
    assert!(ep["last_failure_at"].is_string());
    assert_eq!(ep["failure_count"], 0, "a success resets the streak");
    assert_eq!(ep["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_receivers_are_failures_and_harm_nothing() {
    let mut flags = fast_flags();
    flags.extend(["--webhook-timeout-ms", "700"]);
    let app = TestApp::spawn_with(Engine::Sqlite, &flags).await;
    let (_, key) = app.account("hostile", 900).await;
    let mut endpoints = vec![];
    for (name, reply) in [
        ("redirect", Reply::Redirect),
        ("hang", Reply::Hang),
        ("huge", Reply::Huge),
    ] {
        let (rx, url) = Receiver::start(vec![]).await;
        rx.always(reply);
        let (s, v) = create_endpoint(&app, &key, json!({"name": name, "url": url})).await;
        assert_eq!(s, 201);
        endpoints.push((name, v["id"].as_str().unwrap().to_owned(), rx));
    }
    let started = Instant::now();
    failing_task(&app, &key, "hostile").await;
    for (name, id, _) in &endpoints {
        let a = wait_attempts(&app, &key, id, 1).await;
        let first = a.last().unwrap();
        match *name {
            "redirect" => {
                assert_eq!(first["status_code"], 302);
                assert!(
                    first["error"].as_str().unwrap().contains("redirect"),
                    "{first}"
                );
            }
            "hang" => {
                assert!(first["status_code"].is_null());
                assert!(
                    first["error"].as_str().unwrap().contains("timed out"),
                    "{first}"
                );
                assert!(first["duration_ms"].as_i64().unwrap() < 5_000);
            }
            _ => {
                assert_eq!(first["status_code"], 500);
                assert!(first["duration_ms"].as_i64().unwrap() < 5_000, "{first}");
            }
        }
    }
    // The redirect target was never visited (the receiver saw only its own hits).
    let redirect_rx = &endpoints[0].2;
    assert!(
        redirect_rx
            .hits()
            .iter()
            .all(|h| header(h, "webhook-id").starts_with("evt_"))
    );
    // The server kept serving meanwhile.
    assert!(started.elapsed() < Duration::from_secs(30));
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ep: Value = app
        .get_json(&format!("/api/v1/webhooks/{}", endpoints[1].1), &key)
        .await;
    assert!(ep["failure_count"].as_i64().unwrap() >= 1);
    assert!(ep["last_failure_at"].is_string());
}

async fn a_delivery_cut_by_kill_9_is_sent_after_restart(engine: Engine) {
    let db = common::seeded(engine, 900).await;
    let key = db.key.clone();
    // The first attempt hangs: the process dies with the delivery in flight.
    let (rx, hook) = Receiver::start(vec![Reply::Hang]).await;
    let mut server = common::Binary::new(
        &db,
        &[
            "--runner-poll-ms",
            "50",
            "--webhook-allow-insecure",
            "--webhook-poll-ms",
            "50",
            "--webhook-timeout-ms",
            "1500",
            "--webhook-time-scale",
            "0.001",
        ],
    );
    let http = reqwest::Client::new();
    let base = server.base.clone();
    server.start().await;
    let v: Value = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"name": "crash", "url": hook}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = v["id"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{base}/api/v1/generations"))
        .bearer_auth(&key)
        .json(&kling("crash [sandbox:fail]", json!({"duration": 3})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    rx.wait_hits(1, 30).await;
    server.kill9();

    server.start().await;
    // The lease (2 × timeout + 1 s) lapses, another attempt is made and succeeds.
    let hits = rx.wait_hits(2, 30).await;
    assert_eq!(
        header(&hits[0], "webhook-id"),
        header(&hits[1], "webhook-id")
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let a = loop {
        let v: Value = http
            .get(format!("{base}/api/v1/webhooks/{endpoint}/deliveries"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let a = v["data"].as_array().unwrap().clone();
        if a.iter().any(|x| x["status_code"] == 200) || Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(a.iter().any(|x| x["status_code"] == 200), "{a:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.hits().len(), 2, "delivered again after a success");
    server.kill9();
}

/// `credits.low` once per dip below the threshold (again only after the balance was
/// back above it), `key.spend_limit_reached` once per window, both signed and
/// delivered like any event; the settings are the account's own.
async fn credits_low_and_spend_limit_events_go_out_once_each(engine: Engine) {
    let mut flags = fast_flags();
    flags.push("--no-runner");
    let app = TestApp::spawn_with(engine, &flags).await;
    let (acct, key) = app.account("alerts", 1000).await;
    let (recv, url) = Receiver::start(vec![]).await;
    let (status, ep) = create_endpoint(&app, &key, json!({"name": "ops", "url": url})).await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    // Bad settings are named and change nothing.
    let r = app
        .http
        .patch(app.url("/api/v1/account"))
        .bearer_auth(&key)
        .json(&json!({"low_balance_threshold": -1, "colour": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    let fields: Vec<&str> = e["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"low_balance_threshold") && fields.contains(&"colour"),
        "{e}"
    );
    let r = app
        .http
        .patch(app.url("/api/v1/account"))
        .bearer_auth(&key)
        .json(&json!({"low_balance_threshold": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = app.get_json("/api/v1/credits", &key).await;
    assert_eq!(c["low_balance_threshold"], 500);
    let create = |i: usize| {
        app.post(
            "/api/v1/generations",
            &key,
            &kling("alert", json!({"duration": "3"})),
        )
        .header("idempotency-key", format!("alert-{i}"))
        .send()
    };
    // 1000 → 460 after six creates: one dip, one event, however many creates follow.
    for i in 0..8 {
        assert_eq!(create(i).await.unwrap().status(), 202);
    }
    let of_type = |t: &str| {
        recv.hits()
            .iter()
            .filter(|h| serde_json::from_slice::<Value>(&h.body).is_ok_and(|v| v["type"] == t))
            .count()
    };
    recv.wait_hits(1, 30).await;
    let low: Vec<Value> = recv
        .hits()
        .iter()
        .filter_map(|h| serde_json::from_slice::<Value>(&h.body).ok())
        .filter(|v| v["type"] == "credits.low")
        .collect();
    assert_eq!(low.len(), 1);
    assert_eq!(low[0]["data"]["balance"], 460, "{}", low[0]);
    assert_eq!(low[0]["data"]["low_balance_threshold"], 500);
    assert!(recv.hits()[0].headers.contains_key("webhook-signature"));
    // Back above (a grant), then below again: a second event, after the re-arm.
    app.running
        .engine
        .store
        .change_credits(
            &acct,
            gengate_core::credits::LedgerKind::Grant,
            1000,
            "top up",
            app.running.engine.clock.now(),
        )
        .await
        .unwrap();
    tokio::time::sleep(gengate_engine::alerts::SWEEP_EVERY * 2).await;
    assert_eq!(of_type("credits.low"), 1, "no event for going back up");
    for i in 8..20 {
        assert_eq!(create(i).await.unwrap().status(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while of_type("credits.low") < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(of_type("credits.low"), 2, "one per dip");
    // A key with a spend limit of two tasks: the third and fourth are refused, one event.
    let k: Value = app
        .post_json(
            "/api/v1/keys",
            &key,
            &json!({"name": "batch", "scopes": ["generations:create"]}),
        )
        .await;
    let (limited, limited_id) = (
        k["secret"].as_str().unwrap().to_owned(),
        k["id"].as_str().unwrap().to_owned(),
    );
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/keys/{limited_id}")))
        .bearer_auth(&key)
        .json(&json!({"spend_limit": {"limit": 180}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for i in 0..4 {
        let r = app
            .post(
                "/api/v1/generations",
                &limited,
                &kling("limited", json!({"duration": "3"})),
            )
            .header("idempotency-key", format!("limited-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), if i < 2 { 202 } else { 402 });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while of_type("key.spend_limit_reached") < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(of_type("key.spend_limit_reached"), 1, "once per window");
    let ev: Value = recv
        .hits()
        .iter()
        .filter_map(|h| serde_json::from_slice::<Value>(&h.body).ok())
        .find(|v| v["type"] == "key.spend_limit_reached")
        .unwrap();
    assert_eq!(ev["data"]["key_id"], limited_id.as_str());
    assert_eq!(ev["data"]["spend_limit"], 180);
    app.assert_ledger_balances().await;
}
