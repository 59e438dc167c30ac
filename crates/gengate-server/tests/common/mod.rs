//! The shared harness: start the real server on 127.0.0.1:0 against a fresh
//! SQLite file or a fresh PostgreSQL database, and talk HTTP to it.
#![allow(dead_code)]

pub mod browser;
pub mod proxy;
pub mod services;

use clap::Parser;
use gengate_core::ids::AccountId;
use gengate_core::scope::Scope;
use gengate_server::app::{Running, start};
use gengate_server::config::ServeConfig;
use gengate_store::RateOverrides;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    cfg: ServeConfig,
}

pub struct TestApp {
    pub base: String,
    pub running: Running,
    pub http: reqwest::Client,
    pub engine: Engine,
    pub database_url: String,
    pub data_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds a config the way the binary does, from flags.
pub fn config(
    engine: Engine,
    dir: &std::path::Path,
    database_url: &str,
    extra: &[&str],
) -> ServeConfig {
    let mut args = vec![
        "gengate".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--database-url".into(),
        database_url.to_owned(),
        "--no-bootstrap".into(),
        "--log-format".into(),
        "text".into(),
        "--runner-poll-ms".into(),
        "50".into(),
        "--sweep-ms".into(),
        "200".into(),
    ];
    let _ = engine;
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Wrapper::parse_from(args).cfg
}

pub async fn database_url(engine: Engine, dir: &std::path::Path) -> String {
    match engine {
        Engine::Sqlite => gengate_store::testing::fresh_sqlite_url(dir),
        Engine::Postgres => gengate_store::testing::fresh_postgres_url().await,
    }
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, &[]).await
    }

    pub async fn spawn_with(engine: Engine, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = database_url(engine, dir.path()).await;
        let cfg = config(engine, dir.path(), &url, extra);
        let running = start(&cfg).await.expect("server starts");
        let base = format!("http://{}", running.addr);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        Self {
            base,
            running,
            http,
            engine,
            database_url: url,
            data_dir: dir.path().to_owned(),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A new account with `credits` and a key with every scope.
    /// An operator of the admin API and its key (made as the command line makes one).
    #[allow(dead_code)] // not every test file drives the admin API
    pub async fn operator(&self, name: &str, role: gengate_core::operator::OperatorRole) -> String {
        let st = &self.running.engine;
        gengate_engine::admin::create_operator(
            st.store.as_ref(),
            &gengate_engine::admin::Actor::cli(),
            name,
            role,
            None,
            st.clock.now(),
        )
        .await
        .expect("operator")
        .1
    }

    pub async fn account(&self, name: &str, credits: i64) -> (AccountId, String) {
        let st = &self.running.engine;
        let a = gengate_engine::accounts::create_account(
            st.store.as_ref(),
            name,
            credits,
            st.clock.now(),
        )
        .await
        .expect("account");
        let key = self
            .key(&a.id, Scope::ALL.to_vec(), None, RateOverrides::default())
            .await;
        (a.id, key)
    }

    pub async fn key(
        &self,
        account: &AccountId,
        scopes: Vec<Scope>,
        expires: Option<gengate_core::Timestamp>,
        rates: RateOverrides,
    ) -> String {
        let st = &self.running.engine;
        gengate_engine::accounts::issue_key(
            st.store.as_ref(),
            account,
            "test",
            scopes,
            expires,
            rates,
            st.clock.now(),
        )
        .await
        .expect("key")
        .secret
    }

    pub fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(key).json(body)
    }

    pub fn get(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(key)
    }

    /// POST JSON and parse the JSON answer, whatever its status.
    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> Value {
        self.post(path, key, body)
            .send()
            .await
            .expect("POST")
            .json()
            .await
            .expect("JSON answer")
    }

    /// Revokes `key` straight in the store, as the CLI or another node would.
    pub async fn revoke(&self, key: &str) {
        let st = &self.running.engine;
        let rec = st
            .store
            .find_api_key_by_prefix(&key[..16])
            .await
            .expect("store")
            .expect("a key with that prefix");
        st.store
            .revoke_api_key(&rec.id, st.clock.now())
            .await
            .expect("revoke");
    }

    /// GET and parse the JSON answer, whatever its status.
    pub async fn get_json(&self, path: &str, key: &str) -> Value {
        self.get(path, key)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON answer")
    }

    pub async fn balance(&self, account: &AccountId) -> i64 {
        self.running
            .engine
            .store
            .balance(account)
            .await
            .expect("balance")
            .get()
    }

    pub async fn assert_ledger_balances(&self) {
        let bad = self
            .running
            .engine
            .store
            .ledger_mismatches()
            .await
            .expect("audit");
        assert!(bad.is_empty(), "ledger does not balance: {bad:?}");
    }

    /// Long-polls a task until it ends (or panics after `secs`).
    pub async fn wait_terminal(&self, key: &str, id: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let v: Value = self
                .get(&format!("/api/v1/generations/{id}?wait=5"), key)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            let s = v["status"].as_str().unwrap_or_default().to_owned();
            if s == "succeeded" || s == "failed" {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "task {id} did not end in {secs}s: {v}"
            );
        }
    }
}

pub fn kling(prompt: &str, params: Value) -> Value {
    serde_json::json!({"model": "kling-3-0", "prompt": prompt, "params": params})
}

/// Expands test functions into one test per engine: `sqlite::name`, `postgres::name`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name(super::common::Engine::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name(super::common::Engine::Postgres).await } )* }
    };
}

/// A database with one account and a key with every scope, made before any
/// server runs (for tests that start the real binary themselves).
pub struct Seeded {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub store: gengate_store::DynStore,
    pub account: AccountId,
    pub key: String,
}

pub async fn seeded(engine: Engine, credits: i64) -> Seeded {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(engine, dir.path()).await;
    let store = gengate_store::connect(&url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let (account, key) = seed_account(store.as_ref(), "seeded", credits).await;
    Seeded {
        dir,
        url,
        store,
        account,
        key,
    }
}

/// An account with `credits` and a key with every scope, straight in the
/// store (no server needed): its id and the key's secret.
pub async fn seed_account(
    store: &dyn gengate_store::Store,
    name: &str,
    credits: i64,
) -> (AccountId, String) {
    use gengate_core::clock::Clock;
    let now = gengate_core::clock::SystemClock.now();
    let acc = gengate_engine::accounts::create_account(store, name, credits, now)
        .await
        .expect("account");
    let key = gengate_engine::accounts::issue_key(
        store,
        &acc.id,
        "k",
        vec![],
        None,
        Default::default(),
        now,
    )
    .await
    .expect("key")
    .secret;
    (acc.id, key)
}

/// The real `gengate` binary on a fixed loopback port, so it can be killed
/// with SIGKILL and started again on the same database and address.
pub struct Binary {
    pub base: String,
    args: Vec<String>,
    child: Option<std::process::Child>,
    http: reqwest::Client,
}

impl Binary {
    pub fn new(db: &Seeded, extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--database-url".into(),
            db.url.clone(),
            "--data-dir".into(),
            db.dir.path().display().to_string(),
            "--no-bootstrap".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self {
            base: format!("http://127.0.0.1:{port}"),
            args,
            child: None,
            http: reqwest::Client::new(),
        }
    }

    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn start(&mut self) {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"))
            .args(&self.args)
            .env("GENGATE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn gengate");
        self.child = Some(child);
        for _ in 0..400 {
            if self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("gengate did not come up at {}", self.base);
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `gengate credits audit`, the operator's command, on the test's database.
pub fn audit_with_the_cli(app: &TestApp) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"))
        .args([
            "credits",
            "audit",
            "--database-url",
            &app.database_url,
            "--data-dir",
            &app.data_dir.display().to_string(),
        ])
        .env("GENGATE_LOG", "warn")
        .output()
        .expect("run gengate credits audit");
    assert!(
        out.status.success(),
        "gengate credits audit failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The text of a node's `/metrics`.
pub async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}
