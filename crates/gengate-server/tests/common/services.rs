//! Outside servers the multi-node tests start for themselves: a private
//! `redis-server` on its own port (so it can be stopped without touching
//! the machine's) and an S3-protocol server (`moto_server`, from PyPI
//! `moto[server]`). `.ci/run` installs both; in CI a missing tool fails the
//! test instead of skipping it.

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The signing key every test node shares (split roles refuse to start without one).
pub const TEST_SIGNING_KEY: &str = "multinode-test-signing-key-0123456789abcdef";

/// The tool's path, or `None` (the test skips) when it is missing outside
/// CI. In CI (`CI=true`) a missing tool is a failure.
pub fn tool(name: &str, installed_by: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "{name} is required in CI and is not installed ({installed_by}; see .ci/run)"
        );
        eprintln!("SKIPPED: {name} is not installed ({installed_by})");
    }
    found
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_for_port(port: u16, what: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within {secs}s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private Redis without persistence.
pub struct Redis {
    exe: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Option<Self> {
        let exe = tool("redis-server", "Debian package redis-server")?;
        let mut r = Self {
            exe,
            port: free_port(),
            child: None,
        };
        r.resume();
        Some(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL): budgets kept in it are gone, as after a crash.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same port.
    pub fn resume(&mut self) {
        let child = Command::new(&self.exe)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server", 10);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// moto's S3 server with one bucket. It keeps objects in memory.
pub struct S3 {
    pub port: u16,
    pub bucket: String,
    child: Child,
}

impl S3 {
    pub async fn start() -> Option<Self> {
        let exe = tool("moto_server", "PyPI moto[server]")?;
        let port = free_port();
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        wait_for_port(port, "moto_server", 30);
        let s3 = Self {
            port,
            bucket: "gengate-test".into(),
            child,
        };
        // moto does not check signatures: an unsigned PUT makes the bucket.
        let r = reqwest::Client::new()
            .put(format!("{}/{}", s3.endpoint(), s3.bucket))
            .send()
            .await
            .expect("create bucket");
        assert!(
            r.status().is_success(),
            "creating the bucket: {}",
            r.status()
        );
        Some(s3)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a gengate process needs to use it: the usual `AWS_*`
    /// variables, a path-style endpoint over plain HTTP.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &self.endpoint()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    pub fn blob_url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// Keys under `prefix` (moto's ListObjectsV2, unsigned).
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let body = reqwest::Client::new()
            .get(format!(
                "{}/{}?list-type=2&prefix={prefix}&max-keys=1000",
                self.endpoint(),
                self.bucket
            ))
            .send()
            .await
            .expect("list")
            .text()
            .await
            .expect("list body");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect()
    }

    /// The object's ETag (a multipart upload's ends in `-PARTS`).
    pub async fn etag(&self, key: &str) -> String {
        let r = reqwest::Client::new()
            .head(format!("{}/{}/{key}", self.endpoint(), self.bucket))
            .send()
            .await
            .expect("head");
        assert!(r.status().is_success(), "head {key}: {}", r.status());
        r.headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned()
    }

    /// Deletes one object behind gengate's back (unsigned).
    pub async fn delete(&self, key: &str) {
        let r = reqwest::Client::new()
            .delete(format!("{}/{}/{key}", self.endpoint(), self.bucket))
            .send()
            .await
            .expect("delete");
        assert!(r.status().is_success(), "delete {key}: {}", r.status());
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(name)).expect("log file")
}

/// One gengate process.
pub struct Node {
    pub name: String,
    pub base: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn new(name: &str, args: Vec<String>, env: Vec<(String, String)>, logs: &Path) -> Self {
        let port = args
            .iter()
            .position(|a| a == "--listen")
            .and_then(|i| args.get(i + 1))
            .and_then(|l| l.rsplit(':').next())
            .expect("--listen")
            .to_owned();
        Self {
            name: name.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            args,
            env,
            log: logs.join(format!("{name}.log")),
            child: None,
        }
    }

    pub async fn start(&mut self, http: &reqwest::Client) {
        let log = log_file(
            self.log.parent().expect("log dir"),
            self.log.file_name().and_then(|n| n.to_str()).expect("name"),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_gengate"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("GENGATE_SIGNING_KEY", TEST_SIGNING_KEY)
            .env("GENGATE_LOG", "info,sqlx=warn,hyper=warn")
            // Logs go to stdout, the banner too.
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn gengate");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "{} exited with {status}: {}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "{} did not come up", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn readyz(&self, http: &reqwest::Client) -> Value {
        http.get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("readyz")
            .json()
            .await
            .expect("JSON")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}
