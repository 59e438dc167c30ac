//! The `gengate` binary's API-user commands against a real server on a
//! loopback port, on SQLite and PostgreSQL: what a user runs, and the exit
//! codes scripts rely on.

mod common;

use common::{Engine, TestApp};
use serde_json::Value;

struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&self.stdout),
                self.stderr
            )
        })
    }
}

/// Runs `gengate ARGS` with stdin, stdout and stderr not terminals.
async fn gengate(url: &str, key: Option<&str>, cwd: &std::path::Path, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("GENGATE_API_KEY")
        .env("GENGATE_URL", url)
        .stdin(std::process::Stdio::null());
    if let Some(k) = key {
        cmd.env("GENGATE_API_KEY", k);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run gengate");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn task_count(app: &TestApp, key: &str) -> usize {
    app.get_json("/api/v1/generations?limit=100", key).await["data"]
        .as_array()
        .map_or(0, Vec::len)
}

/// The issue's own example: a 720×1280, 3 s H.264 MP4 with audio.
async fn generate_downloads_the_requested_video(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acc, key) = app.account("cli", 1000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let r = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &[
            "generate",
            "A lighthouse at dusk",
            "--mode",
            "std",
            "--duration",
            "3",
            "--aspect-ratio",
            "9:16",
            "--sound",
            "--out",
            "x.mp4",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    // Not a terminal: the final task as JSON on stdout, progress on stderr.
    let task = r.json();
    assert_eq!(task["status"], "succeeded");
    assert!(r.stderr.contains("succeeded"), "{}", r.stderr);
    let bytes = std::fs::read(dir.path().join("x.mp4")).expect("x.mp4 written");
    let info = gengate_media::inspect_mp4(&bytes).expect("an MP4");
    assert_eq!((info.width, info.height), (720, 1280));
    assert_eq!(info.video_codec, "avc1");
    assert!(
        (info.video_duration_seconds - 3.0).abs() <= 0.05,
        "{info:?}"
    );
    assert!(info.has_audio);
    assert_eq!(app.balance(&acc).await, 910);

    // `tasks` and `credits` see it; `tasks wait --out -` streams it to stdout.
    let id = task["id"].as_str().expect("id");
    let list = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &["tasks", "list", "--status", "succeeded"],
    )
    .await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert_eq!(list.json()[0]["id"], id);
    let got = gengate(&app.base, Some(&key), dir.path(), &["tasks", "get", id]).await;
    assert_eq!(got.json()["result"]["media"][0]["has_audio"], true);
    let streamed = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &["tasks", "wait", id, "--out", "-"],
    )
    .await;
    assert_eq!(streamed.code, 0, "{}", streamed.stderr);
    assert_eq!(streamed.stdout, bytes);
    let credits = gengate(&app.base, Some(&key), dir.path(), &["credits"]).await;
    assert_eq!(credits.json()["current_credits"], 910);
}

/// A failing task: exit 1, the error code named, the refund said.
async fn failed_task_exits_1_and_says_it_was_refunded(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acc, key) = app.account("cli", 1000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let r = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &[
            "generate",
            "A storm [sandbox:fail]",
            "--mode",
            "std",
            "--duration",
            "3",
            "--out",
            "y.mp4",
        ],
    )
    .await;
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("generation_failed"), "{}", r.stderr);
    assert!(
        r.stderr.contains("90 credits were refunded"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("y.mp4").exists());
    assert_eq!(app.balance(&acc).await, 1000);
}

/// Refused before anything is sent or charged: exit 2, the field named.
async fn invalid_params_exit_2_before_any_charge(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acc, key) = app.account("cli", 1000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let r = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &["generate", "x", "--duration", "16"],
    )
    .await;
    assert_eq!(r.code, 2, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("params.duration"), "{}", r.stderr);
    let r = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &[
            "generate",
            "x",
            "--negative-prompt",
            "blur",
            "--param",
            "mode=turbo",
        ],
    )
    .await;
    assert_eq!(r.code, 2, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains("no parameter \"negative_prompt\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("params.mode"), "{}", r.stderr);
    // Two reference images with multi_shots: only the server knows that
    // rule; its validation_failed details are shown per field.
    std::fs::write(
        dir.path().join("a.png"),
        gengate_media::corpus::png(640, 360),
    )
    .expect("png");
    let r = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &[
            "generate",
            "x",
            "--mode",
            "std",
            "--multi-shots",
            "--ref",
            "a.png",
            "--ref",
            "a.png",
        ],
    )
    .await;
    assert_eq!(r.code, 2, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("params.multi_shots"), "{}", r.stderr);
    let r = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &[
            "generate",
            "x",
            "--mode",
            "std",
            "--out",
            "no/such/dir/x.mp4",
        ],
    )
    .await;
    assert_eq!(r.code, 2, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert_eq!(app.balance(&acc).await, 1000);
    assert_eq!(task_count(&app, &key).await, 0);
}

/// Keys and reachability: exit 3 for a missing or rejected key, 4 for a
/// server that is not there.
async fn auth_and_network_exit_codes(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, key) = app.account("cli", 1000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = gengate(
        &app.base,
        Some("gg_live_not_a_real_key_at_all_0000000000"),
        dir.path(),
        &["generate", "x", "--mode", "std", "--duration", "3"],
    )
    .await;
    assert_eq!(wrong.code, 3, "stderr: {}", wrong.stderr);
    assert!(wrong.stderr.contains("GENGATE_API_KEY"), "{}", wrong.stderr);
    let last = wrong.stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("The server at") && last.contains("api_key_invalid"),
        "one sentence: {}",
        wrong.stderr
    );
    assert!(
        !wrong.stderr.contains("panicked") && !wrong.stderr.contains("Error {"),
        "{}",
        wrong.stderr
    );
    let missing = gengate(&app.base, None, dir.path(), &["tasks", "list"]).await;
    assert_eq!(missing.code, 3, "stderr: {}", missing.stderr);
    assert!(missing.stderr.contains("No API key"), "{}", missing.stderr);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let down = gengate(&dead, Some(&key), dir.path(), &["credits"]).await;
    assert_eq!(down.code, 4, "stderr: {}", down.stderr);
    assert!(down.stderr.contains("cannot reach"), "{}", down.stderr);
}

/// `--no-wait`, then `tasks wait`; `models`; `files upload`.
async fn no_wait_models_and_files(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, key) = app.account("cli", 1000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let r = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &[
            "generate",
            "later",
            "--mode",
            "std",
            "--duration",
            "3",
            "--aspect-ratio",
            "1:1",
            "--no-wait",
            "--idempotency-key",
            "cli-test-1",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    // The same key again: the same task, not a second charge.
    let again = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &[
            "generate",
            "later",
            "--mode",
            "std",
            "--duration",
            "3",
            "--aspect-ratio",
            "1:1",
            "--no-wait",
            "--idempotency-key",
            "cli-test-1",
        ],
    )
    .await;
    assert_eq!(again.json()["id"], id.as_str());
    let w = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &["tasks", "wait", &id, "--out", "later.mp4"],
    )
    .await;
    assert_eq!(w.code, 0, "{}", w.stderr);
    let bytes = std::fs::read(dir.path().join("later.mp4")).expect("file");
    assert_eq!(gengate_media::inspect_mp4(&bytes).expect("mp4").width, 720);

    let m = gengate(&app.base, None, dir.path(), &["models", "kling-3-0"]).await;
    assert_eq!(m.code, 0, "{}", m.stderr);
    assert_eq!(m.json()["base_credits"], 90);

    std::fs::write(
        dir.path().join("ref.png"),
        gengate_media::corpus::png(640, 360),
    )
    .expect("png");
    let f = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &["files", "upload", "ref.png"],
    )
    .await;
    assert_eq!(f.code, 0, "{}", f.stderr);
    let file = f.json();
    assert_eq!(
        (file["kind"].as_str(), file["width"].as_u64()),
        (Some("image"), Some(640))
    );
}

/// Ctrl-C while waiting: exit 130, how to resume, and the task runs on.
async fn ctrl_c_leaves_the_task_running(engine: Engine) {
    use std::io::BufRead;
    let app = TestApp::spawn(engine).await;
    let (_, key) = app.account("cli", 1000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"))
        .args([
            "generate",
            "slow [sandbox:slow=3]",
            "--mode",
            "std",
            "--duration",
            "3",
            "--aspect-ratio",
            "1:1",
        ])
        .current_dir(dir.path())
        .env("GENGATE_URL", &app.base)
        .env("GENGATE_API_KEY", &key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let pid = child.id().to_string();
    let (code, lines) = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        let mut reader = std::io::BufReader::new(stderr);
        let mut signalled = false;
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            // Waiting has begun once the first status is reported (queued,
            // or processing if the runner was quicker). Not "processing"
            // only: a long poll that starts after the task left `queued`
            // holds until the next change, so `processing` may never be
            // printed (seen on CI).
            if !signalled && (line.contains(" queued ") || line.contains(" processing ")) {
                let _ = std::process::Command::new("kill")
                    .args(["-INT", &pid])
                    .status();
                signalled = true;
            }
            lines.push(std::mem::take(&mut line));
        }
        (child.wait().expect("wait").code(), lines.concat())
    })
    .await
    .expect("join");
    assert_eq!(code, Some(130), "stderr: {lines}");
    let id = lines
        .split_whitespace()
        .find(|w| w.starts_with("task_"))
        .expect("a task id")
        .to_owned();
    assert!(
        lines.contains(&format!("gengate tasks wait {id}")),
        "{lines}"
    );
    let done = app.wait_terminal(&key, &id, 120).await;
    assert_eq!(done["status"], "succeeded", "the task ran on: {done}");
}

on_both_engines!(
    ctrl_c_leaves_the_task_running,
    generate_downloads_the_requested_video,
    failed_task_exits_1_and_says_it_was_refunded,
    invalid_params_exit_2_before_any_charge,
    auth_and_network_exit_codes,
    no_wait_models_and_files,
);

/// Another Kling model of the catalog from the command line (issue 23): its own params
/// (`--negative-prompt`, `--param cfg_scale=…`), its own price, a real MP4 of the
/// asked duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generate_runs_another_kling_model_of_the_catalog() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (acc, key) = app.account("family", 1000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let r = gengate(
        &app.base,
        Some(&key),
        dir.path(),
        &[
            "generate",
            "A paper boat on a pond",
            "--model",
            "kling-v2-1-master",
            "--duration",
            "5",
            "--aspect-ratio",
            "1:1",
            "--negative-prompt",
            "no people",
            "--param",
            "cfg_scale=0.3",
            "--out",
            "boat.mp4",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let task = r.json();
    assert_eq!(
        (task["model"].as_str(), task["reserved_credits"].as_i64()),
        (Some("kling-v2-1-master"), Some(160))
    );
    let bytes = std::fs::read(dir.path().join("boat.mp4")).expect("boat.mp4 written");
    let info = gengate_media::inspect_mp4(&bytes).expect("an MP4");
    assert!(
        (info.video_duration_seconds - 5.0).abs() <= 0.05,
        "{info:?}"
    );
    assert_eq!(info.width, info.height, "1:1");
    assert_eq!(app.balance(&acc).await, 840);
}
