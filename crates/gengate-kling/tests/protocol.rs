//! The client against the fake over loopback HTTP: the happy paths of the protocol.
#![cfg(feature = "fake")]

mod common;

use std::time::Duration;

use common::*;
use gengate_kling::fake::{FakeConfig, MODERATION_MESSAGE, PROMPT_MODERATION, PROMPT_REJECT};
use gengate_kling::{ErrorClass, Family, KlingError, TaskStatus, parse_callback};
use serde_json::json;

#[tokio::test]
async fn text2video_create_sends_the_documented_body() {
    let fake = fake().await;
    let client = client(&fake);
    let mut req = t2v("task_t2v_body");
    req.mode = "pro".into();
    req.duration_seconds = 10;
    req.aspect_ratio = Some("9:16".into());
    req.multi_shot = true;
    req.callback_url = Some("https://hooks.test/kling/abc".into());

    let task = client.create(&req).await.expect("create");

    assert_eq!(task.status, TaskStatus::Submitted);
    assert_eq!(task.external_task_id.as_deref(), Some("task_t2v_body"));
    assert!(!task.task_id.is_empty());
    assert_eq!(
        fake.create_bodies(),
        vec![json!({
            "model_name": "kling-v3",
            "prompt": "a lighthouse at dusk, slow dolly in",
            "mode": "pro",
            "duration": "10",
            "sound": "on",
            "aspect_ratio": "9:16",
            "multi_shot": true,
            "shot_type": "intelligence",
            "callback_url": "https://hooks.test/kling/abc",
            "external_task_id": "task_t2v_body",
        })]
    );
}

#[tokio::test]
async fn image2video_create_maps_frames_and_omits_aspect_ratio() {
    let fake = fake().await;
    let client = client(&fake);
    let mut req = i2v("task_i2v_body");
    // Set on purpose: the client must drop it for image2video.
    req.aspect_ratio = Some("16:9".into());
    req.image = Some("data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==".into());
    req.image_tail = Some("https://images.test/last.jpg".into());

    let task = client.create(&req).await.expect("create");

    assert_eq!(task.status, TaskStatus::Submitted);
    assert_eq!(
        fake.create_bodies(),
        vec![json!({
            "model_name": "kling-v3",
            "prompt": "the cat turns its head",
            "mode": "std",
            "duration": "10",
            "sound": "off",
            "multi_shot": false,
            "image": "iVBORw0KGgoAAAANSUhEUg==",
            "image_tail": "https://images.test/last.jpg",
            "external_task_id": "task_i2v_body",
        })]
    );
    let stored = fake.task(&task.task_id).expect("fake holds the task");
    assert_eq!(stored.family, Family::Image2Video);
}

#[tokio::test]
async fn tasks_progress_to_succeed_with_a_downloadable_video() {
    let fake = fake().await;
    let client = client(&fake);
    for req in [t2v("task_life_t2v"), i2v("task_life_i2v")] {
        let created = client.create(&req).await.expect("create");
        let done = wait_for(&client, req.family, &created.task_id, |t| {
            t.status.is_terminal()
        })
        .await;

        assert_eq!(done.status, TaskStatus::Succeed);
        assert_eq!(done.task_id, created.task_id);
        assert_eq!(done.external_task_id, Some(req.external_task_id.clone()));
        assert_eq!(done.status_msg, None);
        assert_eq!(done.videos.len(), 1);
        let video = &done.videos[0];
        assert!((video.duration - (req.duration_seconds as f64 + 0.041)).abs() < 1e-9);
        assert!(video.url.starts_with(fake.base_url().as_str()));
        let (created_at, updated_at) = (
            done.created_at_ms.expect("created_at"),
            done.updated_at_ms.expect("updated_at"),
        );
        assert!(updated_at >= created_at && created_at > 1_600_000_000_000);

        let bytes = client
            .download(&video.url, 1 << 20)
            .await
            .expect("download");
        assert_eq!(&bytes[..], gengate_kling::fake::DEFAULT_VIDEO_BYTES);
    }
}

#[tokio::test]
async fn a_task_is_only_found_under_its_own_family() {
    let fake = fake().await;
    let client = client(&fake);
    let task = client.create(&t2v("task_family")).await.expect("create");

    let err = client
        .get(Family::Image2Video, &task.task_id)
        .await
        .expect_err("other family");
    assert_eq!(err.code(), Some(1203));
    assert_eq!(err.class(), ErrorClass::NotFound);
    let err = client
        .get(Family::Text2Video, "999")
        .await
        .expect_err("unknown id");
    assert_eq!(err.class(), ErrorClass::NotFound);
}

#[tokio::test]
async fn list_is_newest_first_and_find_by_external_id_pages_through_it() {
    let fake = fake_with(FakeConfig {
        concurrency_limit: 100,
        ..fast_config()
    })
    .await;
    let client = client(&fake);
    for i in 0..35 {
        client
            .create(&t2v(&format!("task_list_{i:02}")))
            .await
            .expect("create");
    }
    client
        .create(&i2v("task_list_image"))
        .await
        .expect("create i2v");

    let page1 = client
        .list(Family::Text2Video, 1, 30)
        .await
        .expect("page 1");
    let page2 = client
        .list(Family::Text2Video, 2, 30)
        .await
        .expect("page 2");
    assert_eq!(page1.len(), 30);
    assert_eq!(page2.len(), 5);
    assert_eq!(page1[0].external_task_id.as_deref(), Some("task_list_34"));
    assert_eq!(page2[4].external_task_id.as_deref(), Some("task_list_00"));
    let images = client.list(Family::Image2Video, 1, 30).await.expect("i2v");
    assert_eq!(images.len(), 1);

    let before = fake.requests().len();
    let oldest = client
        .find_by_external_id(Family::Text2Video, "task_list_00")
        .await
        .expect("scan")
        .expect("found on page 2");
    assert_eq!(oldest.external_task_id.as_deref(), Some("task_list_00"));
    let missing = client
        .find_by_external_id(Family::Text2Video, "task_never_sent")
        .await
        .expect("scan");
    assert_eq!(missing, None);
    let lists: Vec<_> = fake.requests()[before..]
        .iter()
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        lists,
        vec![
            "pageNum=1&pageSize=30",
            "pageNum=2&pageSize=30",
            "pageNum=1&pageSize=30",
            "pageNum=2&pageSize=30",
        ]
    );

    let capped = client
        .clone()
        .with_max_list_pages(1)
        .find_by_external_id(Family::Text2Video, "task_list_00")
        .await
        .expect("scan");
    assert_eq!(capped, None, "the page cap stops the scan");
}

#[tokio::test]
async fn callbacks_arrive_at_every_status_change() {
    let fake = fake().await;
    let receiver = CallbackReceiver::start().await;
    let client = client(&fake);
    let mut req = t2v("task_callbacks");
    req.callback_url = Some(receiver.url_for("tok-1"));

    let task = client.create(&req).await.expect("create");
    eventually("three callbacks", || receiver.bodies().len() >= 3).await;

    let got: Vec<_> = receiver
        .bodies()
        .iter()
        .map(|(token, body)| {
            assert_eq!(token, "tok-1");
            parse_callback(body).expect("bare task object")
        })
        .collect();
    let statuses: Vec<_> = got.iter().map(|t| t.status.clone()).collect();
    assert_eq!(
        statuses,
        vec![
            TaskStatus::Submitted,
            TaskStatus::Processing,
            TaskStatus::Succeed
        ]
    );
    assert!(got.iter().all(|t| t.task_id == task.task_id));
    assert_eq!(got[2].external_task_id.as_deref(), Some("task_callbacks"));
    assert_eq!(got[2].videos.len(), 1);
    // The body is the bare task object, not the envelope.
    let raw: serde_json::Value = serde_json::from_slice(&receiver.bodies()[0].1).expect("json");
    assert!(raw.get("code").is_none() && raw.get("task_id").is_some());
    eventually("delivery counted", || fake.callbacks_delivered() == 3).await;
}

#[tokio::test]
async fn suppressed_callbacks_are_not_sent() {
    let fake = fake().await;
    fake.set_callbacks(false);
    let receiver = CallbackReceiver::start().await;
    let client = client(&fake);
    let mut req = t2v("task_quiet");
    req.callback_url = Some(receiver.url_for("quiet"));

    let task = client.create(&req).await.expect("create");
    wait_for(&client, Family::Text2Video, &task.task_id, |t| {
        t.status.is_terminal()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert!(receiver.bodies().is_empty());
    assert_eq!(fake.callbacks_sent(), 0);
}

#[tokio::test]
async fn a_forced_failure_reports_its_reason_by_query_and_callback() {
    let fake = fake().await;
    fake.hold_progress(true);
    let receiver = CallbackReceiver::start().await;
    let client = client(&fake);
    let mut req = t2v("task_forced_fail");
    req.callback_url = Some(receiver.url_for("f"));
    let task = client.create(&req).await.expect("create");

    assert!(fake.fail_task(&task.task_id, "content moderation: unsafe image"));
    assert!(
        !fake.fail_task(&task.task_id, "again"),
        "a finished task stays finished"
    );

    let got = client
        .get(Family::Text2Video, &task.task_id)
        .await
        .expect("get");
    assert_eq!(got.status, TaskStatus::Failed);
    assert_eq!(
        got.status_msg.as_deref(),
        Some("content moderation: unsafe image")
    );
    assert!(got.videos.is_empty());
    eventually("failure callback", || receiver.bodies().len() == 2).await;
    let last = parse_callback(&receiver.bodies()[1].1).expect("callback");
    assert_eq!(last.status, TaskStatus::Failed);
}

#[tokio::test]
async fn prompt_markers_drive_moderation_outcomes() {
    let fake = fake().await;
    let client = client(&fake);

    let mut rejected = t2v("task_marker_reject");
    rejected.prompt = format!("a scene {PROMPT_REJECT}");
    let err = client.create(&rejected).await.expect_err("refused");
    assert_eq!(err.code(), Some(1301));
    assert_eq!(err.class(), ErrorClass::ContentRejected);

    let mut moderated = t2v("task_marker_moderation");
    moderated.prompt = format!("a scene {PROMPT_MODERATION}");
    let task = client.create(&moderated).await.expect("accepted");
    let done = wait_for(&client, Family::Text2Video, &task.task_id, |t| {
        t.status.is_terminal()
    })
    .await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert_eq!(done.status_msg.as_deref(), Some(MODERATION_MESSAGE));
}

#[tokio::test]
async fn concurrency_over_the_limit_is_1303_until_a_slot_frees() {
    let fake = fake_with(FakeConfig {
        concurrency_limit: 2,
        ..fast_config()
    })
    .await;
    fake.hold_progress(true);
    let client = client(&fake);

    let first = client.create(&t2v("task_slot_1")).await.expect("slot 1");
    client.create(&i2v("task_slot_2")).await.expect("slot 2");
    let err = client
        .create(&t2v("task_slot_3"))
        .await
        .expect_err("no slot");
    assert_eq!(err.code(), Some(1303));
    assert!(matches!(
        err,
        KlingError::Api {
            http_status: 429,
            ..
        }
    ));
    assert_eq!(err.class(), ErrorClass::ConcurrencyLimit);
    assert!(err.class().is_retryable());
    assert!(!err.outcome_unknown());

    // Queries hold no slot.
    client
        .get(Family::Text2Video, &first.task_id)
        .await
        .expect("query");
    assert!(fake.finish_task(&first.task_id));
    client
        .create(&t2v("task_slot_3"))
        .await
        .expect("a slot freed");

    assert_eq!(fake.max_concurrent_observed(), 2);
    assert_eq!(fake.active_tasks(), 2);
    assert_eq!(fake.tasks_by_external_id("task_slot_3"), 1);
}

#[tokio::test]
async fn downloads_are_capped_with_and_without_a_content_length() {
    let fake = fake().await;
    fake.hold_progress(true);
    let client = client(&fake);
    let video: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    fake.set_video_bytes(video.clone());
    let task = client.create(&t2v("task_download")).await.expect("create");
    assert!(fake.finish_task(&task.task_id));
    let done = client
        .get(Family::Text2Video, &task.task_id)
        .await
        .expect("get");
    let url = done.videos[0].url.clone();
    let size = video.len() as u64;

    for chunked in [false, true] {
        fake.set_chunked_files(chunked);
        let got = client.download(&url, size).await.expect("fits exactly");
        assert_eq!(&got[..], &video[..], "chunked={chunked}");
        let err = client.download(&url, size - 1).await.expect_err("too big");
        assert_eq!(err, KlingError::TooLarge, "chunked={chunked}");
    }

    let missing = url.replace(&done.videos[0].id, "nope");
    let err = client
        .download(&missing, size)
        .await
        .expect_err("no such file");
    assert!(matches!(
        err,
        KlingError::Http {
            http_status: 404,
            ..
        }
    ));
    assert_eq!(err.class(), ErrorClass::NotFound);
    let err = client
        .download("file:///etc/passwd", size)
        .await
        .expect_err("not http");
    assert!(matches!(err, KlingError::Malformed(_)));
}

#[tokio::test]
async fn numeric_looking_task_ids_stay_strings() {
    let fake = fake().await;
    let client = client(&fake);
    let task = client.create(&t2v("task_ids")).await.expect("create");
    assert!(task.task_id.len() >= 18 && task.task_id.bytes().all(|b| b.is_ascii_digit()));
    let raw: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}v1/videos/text2video/{}",
            fake.base_url(),
            task.task_id
        ))
        .bearer_auth(gengate_kling::mint_token(&fake.credentials(), now_secs()).expect("token"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(raw["data"]["task_id"].is_string());
    assert!(raw["request_id"].is_string());
    assert_eq!(raw["code"], 0);
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn the_completion_log_gives_each_task_its_finish_time() {
    let fake = fake().await;
    fake.hold_progress(true);
    let client = client(&fake);
    let done = client.create(&t2v("task_done")).await.expect("create");
    let open = client.create(&t2v("task_open")).await.expect("create");
    let before_us = now_us();
    assert!(fake.finish_task(&done.task_id));
    let after_us = now_us();

    let url = fake.base_url().join("fake/completions").expect("url");
    let log: serde_json::Value = http()
        .get(url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let tasks = log["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2, "{log}");
    let find = |ext: &str| {
        tasks
            .iter()
            .find(|t| t["external_task_id"] == ext)
            .unwrap_or_else(|| panic!("{ext} in {log}"))
    };
    let d = find("task_done");
    assert_eq!(d["task_id"], done.task_id.as_str());
    assert_eq!(d["status"], "succeed");
    let at = d["finished_at_us"].as_i64().expect("finished_at_us");
    assert!(
        (before_us..=after_us).contains(&at),
        "{at} not in {before_us}..={after_us}"
    );
    let o = find("task_open");
    assert_eq!(o["task_id"], open.task_id.as_str());
    assert_eq!(o["status"], "submitted");
    assert!(o["finished_at_us"].is_null(), "{log}");
    // The harness looking in is not an API request.
    assert_eq!(fake.request_count(), 2);
}

fn now_us() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_micros()).expect("fits")
}
