//! The engine's settings: flags and `GENGATE_*` environment variables,
//! read once. The binary flattens `EngineArgs` into `gengate serve` beside
//! the HTTP server's own settings, so every flag keeps its name.
//!
//! Every on/off flag takes `BoolishValueParser`: its environment variable
//! accepts `1/0`, `true/false`, `yes/no`, `on/off` (any case), as operators
//! and container platforms write them; clap's default accepts only
//! `true/false` and made `GENGATE_NO_RUNNER=1` stop the server.

use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// API, runner and webhook dispatcher in one process.
    All,
    /// The public API only: no renders, no upstream calls, no webhook
    /// deliveries (docs/DEPLOY.md).
    Api,
    /// Runner, webhook dispatcher and provider probes; over HTTP only
    /// `/healthz`, `/readyz` and `/metrics`.
    Worker,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` or `postgres://…`. Default: SQLite in the data directory.
    #[arg(long, env = "GENGATE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the embedded database, blobs and the signing key.
    #[arg(long, env = "GENGATE_DATA_DIR", default_value = "./gengate-data")]
    pub data_dir: PathBuf,
    /// Connections in the database pool (PostgreSQL) or reader pool (SQLite).
    #[arg(long, env = "GENGATE_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// SQLite: fsync every commit (survives power loss) instead of at WAL
    /// checkpoints (survives process crashes, faster).
    #[arg(long, env = "GENGATE_SQLITE_SYNC_FULL", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub sqlite_sync_full: bool,
    /// Longest wait for a database connection (including connecting). When
    /// the database is down a request answers `503 service_unavailable`
    /// after at most this long, instead of hanging.
    #[arg(long, env = "GENGATE_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_acquire_timeout_ms: u64,
}

impl DatabaseArgs {
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("gengate.db").display()))
    }

    /// Opens the store and applies its migrations: how `serve`, `migrate`
    /// and the operator commands all start. The data directory is the
    /// caller's (a server needs it whatever the database; an operator
    /// command on PostgreSQL does not).
    pub async fn open(&self) -> anyhow::Result<gengate_store::DynStore> {
        use anyhow::Context;
        let store = gengate_store::connect(&self.url(), &self.connect_options())
            .await
            .with_context(|| format!("connecting to {}", redact_url(&self.url())))?;
        store.migrate().await.context("running migrations")?;
        Ok(store)
    }

    pub fn connect_options(&self) -> gengate_store::ConnectOptions {
        gengate_store::ConnectOptions {
            max_connections: self.db_max_connections,
            sqlite_synchronous_full: self.sqlite_sync_full,
            acquire_timeout: std::time::Duration::from_millis(self.db_acquire_timeout_ms.max(100)),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// How callers (and upstream vendors) reach this server; used in signed
    /// URLs. Default: http://LISTEN.
    #[arg(long, env = "GENGATE_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    #[arg(long, env = "GENGATE_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// A catalog file to use instead of the built-in one.
    #[arg(long, env = "GENGATE_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Credits granted to the `default` account created on first start.
    #[arg(long, env = "GENGATE_BOOTSTRAP_CREDITS", default_value_t = 1000)]
    pub bootstrap_credits: i64,
    /// Skip creating the `default` account and key on an empty database.
    #[arg(long, env = "GENGATE_NO_BOOTSTRAP", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub no_bootstrap: bool,
    /// Default request budgets per API key, per minute, by request class.
    #[arg(long, env = "GENGATE_RATE_CREATE_PER_MIN", default_value_t = 600)]
    pub rate_create_per_min: u32,
    #[arg(long, env = "GENGATE_RATE_READ_PER_MIN", default_value_t = 6000)]
    pub rate_read_per_min: u32,
    #[arg(long, env = "GENGATE_RATE_UPLOAD_PER_MIN", default_value_t = 120)]
    pub rate_upload_per_min: u32,
    /// Shares request budgets across nodes: `redis://[user:password@]host:port[/db]`
    /// (`rediss://` for TLS). Without it every node keeps its own budgets
    /// (one node: exact; N nodes: up to N times the budget).
    #[arg(long, env = "GENGATE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Longest wait for Redis on one request, connecting included; past it
    /// the request is decided by this node alone (see --expected-nodes).
    #[arg(long, env = "GENGATE_REDIS_TIMEOUT_MS", default_value_t = 200)]
    pub redis_timeout_ms: u64,
    /// API nodes behind the load balancer. While Redis is unreachable each
    /// node admits budget ÷ this on its own, so the key's total stays
    /// within its budget.
    #[arg(long, env = "GENGATE_EXPECTED_NODES", default_value_t = 1)]
    pub expected_nodes: u32,
    /// How long an API key's record is reused in process before it is read
    /// again (ms; 0 = read it on every request). Revoking a key, its expiry
    /// or scopes set by the operator take effect within this time.
    #[arg(long, env = "GENGATE_KEY_CACHE_MS", default_value_t = 2_000)]
    pub key_cache_ms: u64,
    /// Ended tasks kept in process for status reads (0 = off). An ended task
    /// never changes, so this costs no staleness; each entry is one stored
    /// task (about 1 KB with a short prompt, up to ~10 KB with a 2,000-character
    /// one), the oldest dropped first.
    #[arg(
        long,
        env = "GENGATE_ENDED_TASK_CACHE_ENTRIES",
        default_value_t = 4_096
    )]
    pub ended_task_cache_entries: usize,
    /// How long idempotency keys are kept (hours, at least 24).
    #[arg(long, env = "GENGATE_IDEMPOTENCY_HOURS", default_value_t = 24)]
    pub idempotency_hours: u64,
    /// Blob storage: `s3://bucket[/prefix]` (AWS_* variables configure the
    /// endpoint and credentials). Default: the data directory.
    #[arg(long, env = "GENGATE_BLOB_URL")]
    pub blob_url: Option<String>,
    /// How long uploaded files (and their links) live, in hours.
    #[arg(long, env = "GENGATE_FILE_TTL_HOURS", default_value_t = 168)]
    pub file_ttl_hours: u64,
    /// Sandbox renders this node runs at once.
    #[arg(long, env = "GENGATE_SANDBOX_CONCURRENCY", default_value_t = 2)]
    pub sandbox_concurrency: usize,
    // --- Kling upstream and vendor outputs (issue 5) ---
    #[command(flatten)]
    pub kling: crate::providers::kling::KlingArgs,
    /// Largest video accepted from a vendor URL. It is held in memory while
    /// it is inspected and stored, so this also bounds memory per running
    /// download (a 15 s 1080p Kling video is tens of MB).
    #[arg(long, env = "GENGATE_MAX_OUTPUT_BYTES", default_value_t = 512 << 20)]
    pub max_output_bytes: u64,
    /// Image decoding memory this node holds at once, in bytes, summed over
    /// concurrent uploads (each decode's cost is read from the image header
    /// first). An image needing more than this alone is refused (400).
    #[arg(long, env = "GENGATE_MAX_DECODE_MEMORY", default_value_t = 512 << 20)]
    pub max_decode_memory: u64,
    /// How long an upload waits for decode memory before `503 server_busy`.
    #[arg(long, env = "GENGATE_DECODE_WAIT_MS", default_value_t = 2_000)]
    pub decode_wait_ms: u64,
    /// Do not run tasks on this node (they stay queued); for API-only nodes and benchmarks.
    #[arg(long, env = "GENGATE_NO_RUNNER", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub no_runner: bool,
    /// A leased job is retaken by another worker this long after its last heartbeat.
    #[arg(long, env = "GENGATE_LEASE_MS", default_value_t = 30_000)]
    pub lease_ms: u64,
    /// How often an idle runner looks for due jobs.
    #[arg(long, env = "GENGATE_RUNNER_POLL_MS", default_value_t = 500)]
    pub runner_poll_ms: u64,
    /// How often a node with open long polls looks for tasks changed by
    /// other nodes (one query for all of them); a long poll answers within
    /// about this long of a task ending on another node.
    #[arg(long, env = "GENGATE_CHANGE_FEED_MS", default_value_t = 250)]
    pub change_feed_ms: u64,
    /// How often overdue tasks are timed out.
    #[arg(long, env = "GENGATE_SWEEP_MS", default_value_t = 1_000)]
    pub sweep_ms: u64,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    #[command(flatten)]
    pub reliability: ReliabilityArgs,
}

/// Crash and outage behaviour (issue 10; docs/RELIABILITY.md).
#[derive(Debug, Clone, Args)]
pub struct ReliabilityArgs {
    /// This node's id, kept across restarts so a restarted node releases the
    /// idempotency holds of its previous run at once. Default: generated
    /// into the data directory (`node-id`) on the first start. Give every
    /// node its own.
    #[arg(long, env = "GENGATE_NODE_ID")]
    pub node_id: Option<String>,
    /// Lease of a running request on its Idempotency-Key; a heartbeat extends
    /// it while the request runs. A hold whose holder stopped renewing it is
    /// taken over by a retry after this long.
    #[arg(long, env = "GENGATE_IDEMPOTENCY_LEASE_MS", default_value_t = 10_000)]
    pub idempotency_lease_ms: u64,
    /// Queued tasks of a provider that has been unhealthy (refusing our
    /// credentials) this long fail as `upstream_unavailable` and are refunded.
    #[arg(
        long,
        env = "GENGATE_PROVIDER_UNHEALTHY_FAIL_AFTER_MS",
        default_value_t = 300_000
    )]
    pub provider_unhealthy_fail_after_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Local development only: accept http:// webhook URLs and hosts that are
    /// or resolve to loopback/private addresses. Off in production.
    #[arg(long, env = "GENGATE_WEBHOOK_ALLOW_INSECURE", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub webhook_allow_insecure: bool,
    /// Multiplies the retry schedule (5 s … 10 h); tests compress hours into
    /// milliseconds with e.g. 0.001.
    #[arg(long, env = "GENGATE_WEBHOOK_TIME_SCALE", default_value_t = 1.0)]
    pub webhook_time_scale: f64,
    /// Limit for one delivery attempt, connect to last byte.
    #[arg(long, env = "GENGATE_WEBHOOK_TIMEOUT_MS", default_value_t = 15_000)]
    pub webhook_timeout_ms: u64,
    /// How often an idle dispatcher looks for due deliveries (it is also woken
    /// when a task ends on this node).
    #[arg(long, env = "GENGATE_WEBHOOK_POLL_MS", default_value_t = 1_000)]
    pub webhook_poll_ms: u64,
    /// Deliveries this node sends at once.
    #[arg(long, env = "GENGATE_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    pub webhook_concurrency: usize,
}

/// Masks the password of `scheme://user:password@host/…`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((creds, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
