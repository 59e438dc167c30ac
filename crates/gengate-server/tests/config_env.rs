//! The real `gengate serve` reads on/off environment variables in the usual
//! spellings (`1/0`, `yes/no`, `on/off`, `true/false`, any case). It used to
//! exit on `GENGATE_NO_RUNNER=1` with "possible values: true, false".

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BOOL_VARS: [&str; 5] = [
    "GENGATE_NO_RUNNER",
    "GENGATE_WEBHOOK_ALLOW_INSECURE",
    "GENGATE_NO_BOOTSTRAP",
    "GENGATE_SQLITE_SYNC_FULL",
    "GENGATE_PUBLIC_API_DISABLED",
];

struct Served {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(env: &[(&str, &str)]) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gengate"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--data-dir", &dir.path().display().to_string()])
        .env("GENGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for v in BOOL_VARS {
        cmd.env_remove(v);
    }
    cmd.env_remove("GENGATE_DATABASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Served {
        child: cmd.spawn().expect("spawn gengate"),
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// Status of GET `path`, once the server answers; panics if the process
/// exits first or nothing answers in time.
async fn status_when_up(s: &mut Served, path: &str) -> u16 {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{}{path}", s.base)).send().await {
            return r.status().as_u16();
        }
        if let Ok(Some(code)) = s.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = s.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("gengate exited with {code}: {err}");
        }
        assert!(Instant::now() < deadline, "gengate did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn boolean_environment_variables_take_the_usual_spellings() {
    // On: the public API answers 503 public_api_disabled, which proves the
    // value was read as true, not merely accepted.
    for on in ["1", "yes", "On", "TRUE"] {
        let env: Vec<(&str, &str)> = BOOL_VARS.iter().map(|v| (*v, on)).collect();
        let mut s = serve(&env);
        assert_eq!(
            status_when_up(&mut s, "/api/v1/credits").await,
            503,
            "GENGATE_PUBLIC_API_DISABLED={on}"
        );
    }
    // Off: the same variables set to off spellings leave the API on (401:
    // no key given).
    for off in ["0", "no", "OFF", "false"] {
        let env: Vec<(&str, &str)> = BOOL_VARS.iter().map(|v| (*v, off)).collect();
        let mut s = serve(&env);
        assert_eq!(
            status_when_up(&mut s, "/api/v1/credits").await,
            401,
            "GENGATE_PUBLIC_API_DISABLED={off}"
        );
    }
}

#[tokio::test]
async fn a_boolean_variable_that_means_nothing_stops_the_start_with_its_name() {
    let mut s = serve(&[("GENGATE_NO_RUNNER", "maybe")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(code) = s.child.try_wait().expect("wait") {
            break code;
        }
        assert!(Instant::now() < deadline, "gengate started with maybe");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!code.success());
    let mut err = String::new();
    if let Some(mut e) = s.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(err.contains("maybe"), "{err}");
}
