//! The client against the fake over loopback HTTP: tokens, error codes and broken answers.
#![cfg(feature = "fake")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use gengate_kling::fake::Fault;
use gengate_kling::{
    ErrorClass, Family, KlingClaims, KlingClient, KlingCredentials, KlingError, ManualClock,
    documented_http_status,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::json;

fn bearer(auth: &Option<String>) -> String {
    auth.as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("bearer token")
        .to_owned()
}

#[tokio::test]
async fn the_token_is_cached_for_25_minutes_then_reminted() {
    let fake = fake().await;
    let clock = Arc::new(ManualClock::starting_now());
    let client = client(&fake).with_clock(clock.clone());

    // Both clocks move together, as they would in real life.
    client.list(Family::Text2Video, 1, 30).await.expect("first");
    clock.advance(24 * 60);
    fake.set_clock_skew_secs(24 * 60);
    client
        .list(Family::Text2Video, 1, 30)
        .await
        .expect("cached");
    clock.advance(60);
    fake.set_clock_skew_secs(25 * 60);
    client.list(Family::Text2Video, 1, 30).await.expect("fresh");

    let tokens: Vec<_> = fake
        .requests()
        .iter()
        .map(|r| bearer(&r.authorization))
        .collect();
    assert_eq!(tokens.len(), 3);
    assert_eq!(tokens[0], tokens[1]);
    assert_ne!(tokens[1], tokens[2]);

    let header = jsonwebtoken::decode_header(&tokens[0]).expect("header");
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<KlingClaims>(
        &tokens[2],
        &DecodingKey::from_secret(fake.credentials().secret_key.as_bytes()),
        &v,
    )
    .expect("signed with the secret")
    .claims;
    assert_eq!(claims.iss, fake.credentials().access_key);
    assert_eq!(claims.exp - claims.nbf, 1805);
}

#[tokio::test]
async fn an_expired_token_is_reminted_and_the_call_retried_once() {
    let fake = fake().await;
    let clock = Arc::new(ManualClock::starting_now());
    let client = client(&fake).with_clock(clock.clone());
    let task = client.create(&t2v("task_refresh")).await.expect("create");

    // Our cached token is still "fresh" by our clock, but Kling's clock says it expired.
    clock.advance(24 * 60);
    fake.set_clock_skew_secs(1850);
    let got = client
        .get(Family::Text2Video, &task.task_id)
        .await
        .expect("retried with a new token");
    assert_eq!(got.task_id, task.task_id);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3, "create, refused get, retried get");
    assert_eq!(
        bearer(&reqs[0].authorization),
        bearer(&reqs[1].authorization)
    );
    assert_ne!(
        bearer(&reqs[1].authorization),
        bearer(&reqs[2].authorization)
    );
}

#[tokio::test]
async fn an_injected_1004_is_retried_transparently() {
    let fake = fake().await;
    fake.inject_fault(Fault::Error(1004));
    let client = client(&fake);

    client.create(&t2v("task_1004")).await.expect("second try");

    assert_eq!(fake.requests().len(), 2);
    assert_eq!(fake.creates_received(), 1);
    assert_eq!(fake.tasks_by_external_id("task_1004"), 1);
}

#[tokio::test]
async fn auth_is_retried_exactly_once_then_surfaces() {
    let fake = fake().await;
    let wrong = KlingClient::new(
        fake.base_url(),
        KlingCredentials::new(fake.credentials().access_key, "not-the-secret"),
        transport(),
    );

    let err = wrong
        .create(&t2v("task_bad_secret"))
        .await
        .expect_err("bad secret");

    assert_eq!(err.code(), Some(1000));
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(matches!(
        err,
        KlingError::Api {
            http_status: 401,
            ..
        }
    ));
    assert_eq!(fake.requests().len(), 2, "one try and one retry");
    assert_eq!(fake.creates_received(), 0);

    let unknown_key = KlingClient::new(
        fake.base_url(),
        KlingCredentials::new("someone-else", fake.credentials().secret_key),
        transport(),
    );
    let err = unknown_key
        .list(Family::Text2Video, 1, 30)
        .await
        .expect_err("unknown iss");
    assert_eq!(err.code(), Some(1000));
}

#[tokio::test]
async fn clock_skew_gives_1003_and_1004() {
    let fake = fake().await;
    let client = client(&fake);

    // Kling's clock a minute behind ours: our nbf (now - 5 s) is in its future.
    fake.set_clock_skew_secs(-60);
    let err = client
        .list(Family::Text2Video, 1, 30)
        .await
        .expect_err("not yet valid");
    assert_eq!(err.code(), Some(1003));

    // Kling's clock past our token's lifetime: every fresh token is already expired.
    fake.set_clock_skew_secs(3600);
    let err = client
        .list(Family::Text2Video, 1, 30)
        .await
        .expect_err("expired");
    assert_eq!(err.code(), Some(1004));
    assert_eq!(err.class(), ErrorClass::Auth);
    assert_eq!(fake.requests().len(), 4, "each failure was retried once");
}

#[tokio::test]
async fn missing_and_garbled_authorization_are_1001_and_1002() {
    let fake = fake().await;
    let url = format!(
        "{}v1/videos/text2video?pageNum=1&pageSize=30",
        fake.base_url()
    );
    let raw = reqwest::Client::new();

    let resp = raw.get(&url).send().await.expect("send");
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["code"], 1001);
    assert!(body.get("data").is_none());

    for header in ["Bearer not.a.jwt", "Basic abc"] {
        let body: serde_json::Value = raw
            .get(&url)
            .header("authorization", header)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(body["code"], 1002, "{header}");
    }
}

#[tokio::test]
async fn every_documented_error_code_maps_to_its_class() {
    let fake = fake().await;
    let client = client(&fake);
    let table: &[(i64, ErrorClass)] = &[
        (1000, ErrorClass::Auth),
        (1001, ErrorClass::Auth),
        (1002, ErrorClass::Auth),
        (1003, ErrorClass::Auth),
        (1004, ErrorClass::Auth),
        (1100, ErrorClass::AccountFatal),
        (1101, ErrorClass::AccountFatal),
        (1102, ErrorClass::AccountFatal),
        (1103, ErrorClass::NoAccess),
        (1200, ErrorClass::InvalidParams),
        (1201, ErrorClass::InvalidParams),
        (1202, ErrorClass::NotFound),
        (1203, ErrorClass::NotFound),
        (1300, ErrorClass::ContentRejected),
        (1301, ErrorClass::ContentRejected),
        (1302, ErrorClass::RateLimited),
        (1303, ErrorClass::ConcurrencyLimit),
        (1304, ErrorClass::AccountFatal),
        (5000, ErrorClass::UpstreamRetryable),
        (5001, ErrorClass::UpstreamRetryable),
        (5002, ErrorClass::UpstreamRetryable),
    ];
    for (i, &(code, class)) in table.iter().enumerate() {
        fake.inject_fault(Fault::Error(code));
        if class == ErrorClass::Auth {
            // The client retries auth failures once; fail the retry too.
            fake.inject_fault(Fault::Error(code));
        }
        let err = client
            .create(&t2v(&format!("task_code_{i}")))
            .await
            .expect_err("injected");
        let KlingError::Api {
            http_status,
            code: got,
            ref request_id,
            ..
        } = err
        else {
            panic!("{code}: expected an API error, got {err:?}");
        };
        assert_eq!(got, code);
        assert_eq!(Some(http_status), documented_http_status(code), "{code}");
        assert!(request_id.is_some(), "{code}: request_id kept");
        assert_eq!(err.class(), class, "{code}");
        assert_eq!(
            err.outcome_unknown(),
            class == ErrorClass::UpstreamRetryable,
            "{code}"
        );
        assert_eq!(fake.pending_faults(), 0, "{code}: no fault left over");
    }
    assert_eq!(fake.creates_received(), 0);
}

#[tokio::test]
async fn the_body_code_decides_even_with_a_success_status() {
    let fake = fake().await;
    fake.inject_fault(Fault::ErrorWithStatus {
        http_status: 200,
        code: 1302,
    });
    let err = client(&fake)
        .list(Family::Text2Video, 1, 30)
        .await
        .expect_err("rate limited");
    assert_eq!(err.class(), ErrorClass::RateLimited);
}

#[tokio::test]
async fn kling_refuses_what_the_spec_says_it_refuses() {
    let fake = fake().await;
    let client = client(&fake);

    let mut too_long = t2v("task_16s");
    too_long.duration_seconds = 16;
    let mut no_image = i2v("task_no_image");
    no_image.image = None;
    let mut odd_ratio = t2v("task_ratio");
    odd_ratio.aspect_ratio = Some("4:3".into());
    let mut tail_and_shots = i2v("task_tail_shots");
    tail_and_shots.image_tail = Some("https://images.test/b.png".into());
    tail_and_shots.multi_shot = true;
    for req in [too_long, no_image, odd_ratio, tail_and_shots] {
        let err = client.create(&req).await.expect_err("refused");
        assert_eq!(err.code(), Some(1201), "{}", req.external_task_id);
        assert_eq!(err.class(), ErrorClass::InvalidParams);
        assert!(!err.outcome_unknown());
    }

    // Bodies the client never sends, posted by hand.
    let token = gengate_kling::mint_token(&fake.credentials(), now_secs()).expect("token");
    let post = |family: &str, body: serde_json::Value| {
        let url = format!("{}v1/videos/{family}", fake.base_url());
        let token = token.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("send");
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.expect("json");
            (status, body["code"].as_i64().unwrap_or_default())
        }
    };
    let base = json!({"model_name": "kling-v3", "prompt": "p", "mode": "pro", "duration": "5", "sound": "on"});
    let mut with_cfg = base.clone();
    with_cfg["cfg_scale"] = json!(0.5);
    assert_eq!(post("text2video", with_cfg).await, (400, 1201));
    let mut numeric_duration = base.clone();
    numeric_duration["duration"] = json!(5);
    assert_eq!(post("text2video", numeric_duration).await, (400, 1201));
    let mut no_model = base.clone();
    no_model
        .as_object_mut()
        .expect("object")
        .remove("model_name");
    assert_eq!(post("text2video", no_model).await, (400, 1201));
    let mut i2v_ratio = base.clone();
    i2v_ratio["image"] = json!("https://images.test/a.png");
    i2v_ratio["aspect_ratio"] = json!("16:9");
    assert_eq!(post("image2video", i2v_ratio).await, (400, 1201));
    assert_eq!(
        post("text2video", json!("not an object")).await,
        (400, 1200)
    );
    assert_eq!(fake.tasks().len(), 0);
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_duplicate_external_task_id_is_refused() {
    let fake = fake().await;
    let client = client(&fake);
    client.create(&t2v("task_dup")).await.expect("first");
    let err = client
        .create(&t2v("task_dup"))
        .await
        .expect_err("duplicate");
    assert_eq!(err.code(), Some(1201));
    assert_eq!(fake.tasks_by_external_id("task_dup"), 1);
}

#[tokio::test]
async fn a_lost_create_answer_is_found_by_external_id() {
    let fake = fake().await;
    fake.inject_fault(Fault::LostAnswer);
    let client = client(&fake);

    let err = client
        .create(&t2v("task_lost"))
        .await
        .expect_err("answer lost");
    assert!(matches!(err, KlingError::Network(_)), "{err:?}");
    assert!(err.outcome_unknown());
    assert_eq!(err.class(), ErrorClass::UpstreamRetryable);

    let found = client
        .find_by_external_id(Family::Text2Video, "task_lost")
        .await
        .expect("list")
        .expect("the task was created upstream");
    assert_eq!(found.external_task_id.as_deref(), Some("task_lost"));
    assert_eq!(fake.creates_received(), 1);
    assert_eq!(fake.tasks_by_external_id("task_lost"), 1);
    assert!(
        client
            .find_by_external_id(Family::Image2Video, "task_lost")
            .await
            .expect("list")
            .is_none(),
        "lists are per family"
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_and_the_task_is_still_found() {
    let fake = fake().await;
    fake.inject_fault(Fault::Slow(Duration::from_secs(2)));
    let client = client(&fake).with_request_timeout(Duration::from_millis(300));

    let err = client.create(&t2v("task_slow")).await.expect_err("timeout");
    assert_eq!(err, KlingError::Timeout);
    assert!(err.outcome_unknown());

    let found = client
        .find_by_external_id(Family::Text2Video, "task_slow")
        .await
        .expect("list");
    assert!(found.is_some(), "work was done before the slow answer");
}

#[tokio::test]
async fn a_dropped_connection_creates_nothing() {
    let fake = fake().await;
    fake.inject_fault(Fault::Drop);
    let client = client(&fake);

    let err = client
        .create(&t2v("task_dropped"))
        .await
        .expect_err("dropped");
    assert!(matches!(err, KlingError::Network(_)), "{err:?}");
    assert!(err.outcome_unknown());
    assert_eq!(
        client
            .find_by_external_id(Family::Text2Video, "task_dropped")
            .await
            .expect("list"),
        None
    );
    client
        .create(&t2v("task_dropped"))
        .await
        .expect("safe to resubmit");
    assert_eq!(fake.tasks_by_external_id("task_dropped"), 1);
}

#[tokio::test]
async fn a_malformed_answer_is_retryable() {
    let fake = fake().await;
    fake.inject_fault(Fault::Malformed);
    let client = client(&fake);

    let err = client
        .create(&t2v("task_malformed"))
        .await
        .expect_err("garbled");
    assert!(matches!(err, KlingError::Malformed(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::UpstreamRetryable);
    assert!(err.outcome_unknown());
    assert_eq!(fake.creates_received(), 0);
}

#[tokio::test]
async fn a_proxy_error_page_is_classed_by_its_status() {
    let fake = fake().await;
    fake.inject_fault(Fault::Raw {
        http_status: 502,
        body: "<html><body>502 Bad Gateway</body></html>".into(),
    });
    let client = client(&fake);

    let err = client
        .get(Family::Text2Video, "1")
        .await
        .expect_err("bad gateway");
    let KlingError::Http {
        http_status,
        ref body,
    } = err
    else {
        panic!("expected Http, got {err:?}");
    };
    assert_eq!(http_status, 502);
    assert!(body.contains("Bad Gateway"));
    assert_eq!(err.class(), ErrorClass::UpstreamRetryable);
}

#[tokio::test]
async fn latency_is_added_to_every_answer() {
    let fake = fake().await;
    fake.set_latency(Duration::from_millis(150));
    let client = client(&fake);
    let started = std::time::Instant::now();
    client.list(Family::Text2Video, 1, 30).await.expect("list");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_bad_base_url_is_a_config_error() {
    let client = KlingClient::new(
        url::Url::parse("mailto:kling@example.test").expect("url"),
        KlingCredentials::new("a", "s"),
        transport(),
    );
    let err = client
        .list(Family::Text2Video, 1, 30)
        .await
        .expect_err("cannot be a base");
    assert!(matches!(err, KlingError::Config(_)));
}

#[tokio::test]
async fn a_closed_port_is_a_network_error() {
    let fake = fake().await;
    let base = fake.base_url();
    let creds = fake.credentials();
    drop(fake);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = KlingClient::new(base, creds, transport());
    let err = client
        .list(Family::Text2Video, 1, 30)
        .await
        .expect_err("nothing listening");
    assert!(matches!(err, KlingError::Network(_)), "{err:?}");
    assert!(err.class().is_retryable());
}
