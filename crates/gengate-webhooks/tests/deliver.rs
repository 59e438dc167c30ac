//! The deliverer against real sockets on 127.0.0.1. These tests use the development
//! policy (http and private hosts allowed) except where they prove the guard.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use gengate_webhooks::{
    Attempt, Deliverer, DelivererConfig, SNIPPET_BYTES, SigningSecret, UrlPolicy, signature_header,
    verify,
};
use support::{Receiver, Reply, peak_rss_bytes};

const DEVELOPMENT: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};

const BODY: &str = r#"{"id":"evt_1","type":"webhook.test","api_version":"2026-05-11"}"#;

fn deliverer(policy: UrlPolicy, timeout: Duration) -> Deliverer {
    Deliverer::new(DelivererConfig {
        timeout,
        policy,
        ..DelivererConfig::default()
    })
    .expect("client builds")
}

fn dev_deliverer() -> Deliverer {
    deliverer(DEVELOPMENT, Duration::from_secs(5))
}

async fn post(d: &Deliverer, url: &str) -> Attempt {
    d.deliver(
        url,
        "msg_1",
        1_700_000_000,
        "v1,c2ln",
        Bytes::from_static(BODY.as_bytes()),
    )
    .await
}

fn respond(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
    Reply::Respond(
        status,
        headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        body.as_bytes().to_vec(),
    )
}

#[tokio::test]
async fn success_sends_a_signed_json_post() {
    let receiver = Receiver::start(respond(200, &[], "ok")).await;
    let secret = SigningSecret::generate();
    let old = SigningSecret::generate();
    let (msg_id, ts) = ("msg_2Lq8aZ", 1_747_000_000);
    let signature = signature_header(&[&secret, &old], msg_id, ts, BODY.as_bytes());

    let attempt = dev_deliverer()
        .deliver(
            &receiver.url("/hooks/gengate?team=7"),
            msg_id,
            ts,
            &signature,
            Bytes::from_static(BODY.as_bytes()),
        )
        .await;

    assert!(attempt.succeeded(), "{attempt:?}");
    assert_eq!(attempt.status_code, Some(200));
    assert_eq!(attempt.error, None);
    assert_eq!(attempt.response_snippet.as_deref(), Some("ok"));
    assert_eq!(attempt.retry_after, None);
    assert!(attempt.duration < Duration::from_secs(5));

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/hooks/gengate?team=7");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("webhook-id"), Some(msg_id));
    assert_eq!(req.header("webhook-timestamp"), Some("1747000000"));
    assert_eq!(req.header("webhook-signature"), Some(signature.as_str()));
    assert!(
        req.header("user-agent")
            .is_some_and(|ua| ua.starts_with("gengate-webhooks/")),
        "{:?}",
        req.header("user-agent")
    );
    assert_eq!(req.body, BODY.as_bytes());
    // What the receiver got verifies with either secret, as a receiver would check it.
    let header = req.header("webhook-signature").unwrap_or_default();
    let ts: i64 = req
        .header("webhook-timestamp")
        .and_then(|t| t.parse().ok())
        .expect("timestamp header");
    assert!(verify(&secret, msg_id, ts, &req.body, header));
    assert!(verify(&old, msg_id, ts, &req.body, header));
}

#[tokio::test]
async fn server_error_is_a_failed_attempt_with_its_status_and_body() {
    let receiver = Receiver::start(respond(500, &[], "boom")).await;
    let attempt = post(&dev_deliverer(), &receiver.url("/")).await;
    assert!(!attempt.succeeded());
    assert_eq!(attempt.status_code, Some(500));
    assert_eq!(attempt.error, None);
    assert_eq!(attempt.response_snippet.as_deref(), Some("boom"));
}

#[tokio::test]
async fn only_2xx_statuses_succeed() {
    for status in [200_u16, 201, 204, 299, 300, 304, 400, 404, 410, 429, 503] {
        let receiver = Receiver::start(respond(status, &[], "")).await;
        let attempt = post(&dev_deliverer(), &receiver.url("/")).await;
        assert_eq!(attempt.status_code, Some(status));
        assert_eq!(
            attempt.succeeded(),
            (200..300).contains(&status),
            "{status}: {attempt:?}"
        );
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = Receiver::start(respond(200, &[], "should never be reached")).await;
    let location = target.url("/target");
    let redirector = Receiver::start(respond(301, &[("location", &location)], "")).await;

    let attempt = post(&dev_deliverer(), &redirector.url("/hook")).await;

    assert!(!attempt.succeeded());
    assert_eq!(attempt.status_code, Some(301));
    assert_eq!(
        attempt.error.as_deref(),
        Some(format!("redirect not followed (Location: {location})").as_str())
    );
    // Give a (wrongly) followed redirect time to land before checking it did not.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(redirector.connections(), 1);
    assert_eq!(target.connections(), 0);
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let receiver = Receiver::start(Reply::Hang).await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();

    let attempt = post(&deliverer(DEVELOPMENT, timeout), &receiver.url("/")).await;

    let elapsed = started.elapsed();
    assert!(!attempt.succeeded());
    assert_eq!(attempt.status_code, None);
    assert_eq!(
        attempt.error.as_deref(),
        Some("timed out after 300ms waiting for a response")
    );
    assert!(
        elapsed >= timeout && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(attempt.duration >= timeout, "{:?}", attempt.duration);
    assert_eq!(receiver.requests().len(), 1, "the request itself was sent");
}

#[tokio::test]
async fn a_body_that_stalls_after_the_headers_counts_against_the_same_deadline() {
    let receiver = Receiver::start(Reply::HeadersThenHang(200, 1000)).await;
    let started = Instant::now();

    let attempt = post(
        &deliverer(DEVELOPMENT, Duration::from_millis(300)),
        &receiver.url("/"),
    )
    .await;

    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(attempt.status_code, Some(200));
    assert_eq!(
        attempt.error.as_deref(),
        Some("timed out after 300ms reading the response body")
    );
    assert!(!attempt.succeeded(), "a 2xx whose body never finished");
    assert_eq!(attempt.response_snippet.as_deref(), Some("partial"));
}

#[tokio::test]
async fn a_fifty_megabyte_response_is_not_buffered() {
    const FIFTY_MB: usize = 50 * 1024 * 1024;
    let receiver = Receiver::start(Reply::Stream(FIFTY_MB)).await;
    let peak_before = peak_rss_bytes();

    let attempt = post(&dev_deliverer(), &receiver.url("/")).await;

    assert!(attempt.succeeded(), "{attempt:?}");
    assert_eq!(attempt.status_code, Some(200));
    let snippet = attempt.response_snippet.expect("snippet");
    assert_eq!(snippet.len(), SNIPPET_BYTES);
    assert!(snippet.bytes().all(|b| b == b'a'));
    assert!(
        attempt.duration < Duration::from_secs(5),
        "{:?}",
        attempt.duration
    );

    // The deliverer hung up after its 64 KiB: the receiver's writes start failing long
    // before 50 MB (what it did write sits in kernel socket buffers, not in our heap).
    let stats = &receiver.stats;
    let wait_until = Instant::now() + Duration::from_secs(5);
    while !stats.stream_done.load(Ordering::SeqCst) && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        stats.stream_done.load(Ordering::SeqCst),
        "receiver still writing"
    );
    assert!(
        stats.stream_cut_off.load(Ordering::SeqCst),
        "connection was not closed"
    );
    let streamed = stats.streamed.load(Ordering::SeqCst);
    eprintln!("receiver wrote {streamed} bytes before the deliverer hung up");
    assert!(streamed < FIFTY_MB / 2, "receiver wrote {streamed} bytes");

    if let (Some(before), Some(after)) = (peak_before, peak_rss_bytes()) {
        let grown = after.saturating_sub(before);
        eprintln!("peak RSS {before} -> {after} bytes");
        assert!(grown < 32 * 1024 * 1024, "peak RSS grew by {grown} bytes");
    }
}

#[tokio::test]
async fn retry_after_is_read_in_seconds_and_as_an_http_date() {
    let receiver = Receiver::start(respond(503, &[("retry-after", "120")], "")).await;
    let attempt = post(&dev_deliverer(), &receiver.url("/")).await;
    assert_eq!(attempt.status_code, Some(503));
    assert_eq!(attempt.retry_after, Some(Duration::from_secs(120)));

    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(90));
    let receiver = Receiver::start(respond(429, &[("retry-after", &date)], "")).await;
    let attempt = post(&dev_deliverer(), &receiver.url("/")).await;
    assert_eq!(attempt.status_code, Some(429));
    let after = attempt.retry_after.expect("an HTTP-date Retry-After");
    // HTTP-dates have whole seconds, and a moment passes between formatting and parsing.
    assert!(
        after >= Duration::from_secs(87) && after <= Duration::from_secs(90),
        "{after:?}"
    );

    let receiver = Receiver::start(respond(503, &[("retry-after", "soon")], "")).await;
    let attempt = post(&dev_deliverer(), &receiver.url("/")).await;
    assert_eq!(attempt.retry_after, None);
}

#[tokio::test]
async fn production_policy_refuses_loopback_without_connecting() {
    let receiver = Receiver::start(respond(200, &[], "ok")).await;
    let port = receiver.addr.port();
    let production = deliverer(UrlPolicy::default(), Duration::from_secs(5));

    let attempt = post(&production, &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(
        attempt.error.as_deref(),
        Some("URL refused: scheme must be https")
    );
    let attempt = post(&production, &format!("https://127.0.0.1:{port}/")).await;
    assert_eq!(
        attempt.error.as_deref(),
        Some("URL refused: host 127.0.0.1 is a loopback address")
    );
    let attempt = post(&production, &format!("https://0x7f.1:{port}/")).await;
    assert_eq!(
        attempt.error.as_deref(),
        Some("URL refused: host 127.0.0.1 is a loopback address")
    );
    assert_eq!(attempt.status_code, None);
    assert!(!attempt.succeeded());

    // A host *name* passes the syntax check and reaches the resolver, which refuses
    // the loopback answer before any socket is opened: the DNS-rebinding guard.
    let http_only = deliverer(
        UrlPolicy {
            allow_http: true,
            allow_private: false,
        },
        Duration::from_secs(5),
    );
    let attempt = post(&http_only, &format!("http://localhost:{port}/")).await;
    assert_eq!(attempt.status_code, None);
    let error = attempt.error.expect("refused");
    eprintln!("{error}");
    assert!(
        error.contains("host must resolve to a public address (localhost resolved to 127.0.0.1"),
        "{error}"
    );

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.connections(), 0, "no connection may be made");

    // Control: the same URL under the development policy does connect, so the zero
    // above is the guard's doing and not an unreachable receiver.
    let attempt = post(&dev_deliverer(), &format!("http://localhost:{port}/")).await;
    assert!(attempt.succeeded(), "{attempt:?}");
    assert_eq!(receiver.connections(), 1);
}

#[tokio::test]
async fn connection_refused_is_a_failed_attempt() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);

    let attempt = post(&dev_deliverer(), &format!("http://127.0.0.1:{port}/")).await;

    assert!(!attempt.succeeded());
    assert_eq!(attempt.status_code, None);
    let error = attempt.error.expect("an error");
    eprintln!("{error}");
    assert!(
        error.to_lowercase().contains("connection refused"),
        "{error}"
    );
    assert!(!error.contains(&port.to_string()), "URL left out: {error}");
}

#[tokio::test]
async fn header_values_a_caller_got_wrong_fail_the_attempt_instead_of_panicking() {
    let receiver = Receiver::start(respond(200, &[], "ok")).await;
    let d = dev_deliverer();
    let attempt = d
        .deliver(
            &receiver.url("/"),
            "msg\r\nx-evil: 1",
            1,
            "v1,x",
            Bytes::new(),
        )
        .await;
    assert_eq!(
        attempt.error.as_deref(),
        Some("invalid webhook-id header value")
    );
    assert_eq!(receiver.connections(), 0);
}

#[tokio::test]
async fn a_malformed_url_fails_the_attempt() {
    let attempt = post(&dev_deliverer(), "not a url").await;
    assert_eq!(
        attempt.error.as_deref(),
        Some("URL refused: not a valid URL: relative URL without a base")
    );
}

#[tokio::test]
async fn default_config_matches_the_spec() {
    let config = DelivererConfig::default();
    assert_eq!(config.timeout, Duration::from_secs(15));
    assert_eq!(config.max_response_bytes, 64 * 1024);
    assert_eq!(config.policy, UrlPolicy::default());
    let d = Deliverer::new(config.clone()).expect("client builds");
    assert_eq!(d.config(), &config);
}
