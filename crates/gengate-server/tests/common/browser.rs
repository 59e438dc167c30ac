//! Running a Playwright script against Debian's Chromium, for the console tests.
//! Without the browser or Playwright: a failure when `CI=true` (`.ci/run` installs
//! both), otherwise a loud skip.

use std::path::PathBuf;
use std::process::Command;

pub fn chromium() -> String {
    std::env::var("GENGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// None when the browser and Playwright are there; else why not.
fn missing_tools() -> Option<String> {
    if !std::path::Path::new(&chromium()).exists() {
        return Some(format!(
            "no Chromium at {} (apt-get install chromium)",
            chromium()
        ));
    }
    let ok = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| {
        "the Python playwright package is missing (python3 -m pip install playwright)".to_owned()
    })
}

/// False (after saying so) when the test must be skipped; panics under `CI=true`.
pub fn available(what: &str) -> bool {
    let Some(why) = missing_tools() else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and the {what} cannot run: {why}");
    }
    eprintln!(
        "\n\n=== SKIPPED the {what}: {why} ===\n=== (.ci/run installs it; CI fails without it) ===\n"
    );
    false
}

/// Where screenshots go: `docs/<docs>` with `GENGATE_UPDATE_SCREENSHOTS=1`, else
/// `target/<docs>-screenshots` (a test run does not modify the working tree).
pub fn shots_dir(docs: &str) -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = if std::env::var_os("GENGATE_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        manifest.join("../../docs").join(docs)
    } else {
        manifest
            .join("../../target")
            .join(format!("{}-screenshots", docs.replace('/', "-")))
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Runs `tests/<script>` with `args` and asserts it succeeded.
pub async fn run(script: &str, args: Vec<String>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(path)
            .args(args)
            .env("GENGATE_CHROMIUM", chromium())
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "browser checks failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GETs a console page or file: 200 with the strict security headers, then 304 for
/// its ETag. Answers the body.
pub async fn assert_served_strictly(app: &super::TestApp, path: &str) -> String {
    let r = app.http.get(app.url(path)).send().await.expect("GET");
    assert_eq!(r.status(), 200, "{path}");
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let etag = h["etag"].to_str().expect("etag").to_owned();
    let body = r.text().await.expect("body");
    let again = app
        .http
        .get(app.url(path))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), 304, "{path}");
    body
}
