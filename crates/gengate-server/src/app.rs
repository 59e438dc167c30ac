//! Wiring: builds the shared state from the configuration, starts the HTTP
//! server and the background workers, and stops them.

use crate::blobs::Blobs;
use crate::config::{Role, ServeConfig};
use crate::events::TaskEvents;
use crate::files::FilesService;
use crate::limits::{Limiter, LocalLimiter};
use crate::providers::ProviderRouting;
use crate::providers::sandbox::SandboxProvider;
use crate::signing::{MediaLinks, SigningKey};
use anyhow::Context;
use gengate_core::catalog::Catalog;
use gengate_core::clock::{SharedClock, SystemClock};
use gengate_store::DynStore;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Settings the request path reads, resolved once at start.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub public_base_url: String,
    pub public_api_disabled: bool,
    pub rate_create_per_min: u32,
    pub rate_read_per_min: u32,
    pub rate_upload_per_min: u32,
    pub max_json_bytes: usize,
    pub idempotency_keep: Duration,
    /// How long a running request's hold on its key lasts without a heartbeat.
    pub idempotency_lease: Duration,
}

/// What every handler and background task shares. A handle: axum clones the
/// state for each extractor of each request, so a clone is one reference
/// count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    pub store: DynStore,
    pub catalog: Arc<Catalog>,
    pub clock: SharedClock,
    pub limiter: Arc<dyn Limiter>,
    pub keys: Arc<crate::keycache::KeyCache>,
    /// Ended tasks, for status reads without a store query.
    pub ended_tasks: Arc<crate::taskcache::TerminalTasks>,
    pub config: Arc<RuntimeConfig>,
    pub metrics: PrometheusHandle,
    pub links: Arc<MediaLinks>,
    pub files: Arc<FilesService>,
    pub providers: Arc<ProviderRouting>,
    pub blobs: Blobs,
    pub events: Arc<TaskEvents>,
    /// Vendor callbacks that arrived while a task's job may have been leased (issue 5).
    pub nudges: Arc<crate::callbacks::Nudges>,
    /// Poked when a job is enqueued so an idle runner looks at once.
    pub runner_wakeup: Arc<Notify>,
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// This process's node and boot ids (idempotency holds carry them).
    pub node: Arc<crate::node::NodeIdentity>,
    /// Its role and what it runs (runner slots, dispatcher), for readyz and metrics.
    pub status: Arc<crate::node::NodeStatus>,
}

/// `bound` is the address actually listened on (it differs from the
/// configured one when that asks for port 0).
pub async fn build_state(
    cfg: &ServeConfig,
    clock: SharedClock,
    bound: Option<SocketAddr>,
) -> anyhow::Result<AppState> {
    let catalog = match &cfg.catalog {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading catalog {}", p.display()))?;
            Catalog::from_json(&text)?
        }
        None => Catalog::builtin()?,
    };
    std::fs::create_dir_all(&cfg.db.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.db.data_dir.display()))?;
    let store = gengate_store::connect(&cfg.db.url(), &cfg.db.connect_options())
        .await
        .with_context(|| format!("connecting to {}", crate::config::redact_url(&cfg.db.url())))?;
    store.migrate().await.context("running migrations")?;
    let node =
        crate::node::NodeIdentity::load(cfg.reliability.node_id.as_deref(), &cfg.db.data_dir)
            .context("loading the node id")?;
    // Requests of this node's previous run died with it: their keys are free
    // at once, not when their leases run out.
    let released = store
        .release_idempotency_holds_of_node(&node.node, &node.boot)
        .await
        .context("releasing the idempotency holds of this node's previous run")?;
    tracing::info!(node = %node.node, boot = %node.boot, released_idempotency_holds = released, "node identity");
    let configured_key = std::env::var("GENGATE_SIGNING_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    // Links and vendor callback tokens signed on one node are checked on
    // another: split roles only make sense with one key for all of them.
    anyhow::ensure!(
        cfg.role == Role::All || configured_key.is_some(),
        "--role {} needs GENGATE_SIGNING_KEY: every node must sign media links and callback \
         tokens with the same key, and a key generated into this node's data directory \
         would be its own (docs/DEPLOY.md)",
        role_name(cfg.role)
    );
    let key = SigningKey::load_or_create(configured_key.as_deref(), &cfg.db.data_dir)
        .context("loading the signing key")?;
    let public_base_url = match (&cfg.public_base_url, bound) {
        (None, Some(addr)) => format!("http://{addr}"),
        _ => cfg.public_base_url(),
    };
    let links = Arc::new(MediaLinks {
        key,
        base_url: public_base_url.clone(),
        ttl: Duration::from_secs(24 * 3600),
        clock: clock.clone(),
    });
    let config = Arc::new(RuntimeConfig {
        public_base_url,
        public_api_disabled: cfg.public_api_disabled,
        rate_create_per_min: cfg.rate_create_per_min,
        rate_read_per_min: cfg.rate_read_per_min,
        rate_upload_per_min: cfg.rate_upload_per_min,
        max_json_bytes: cfg.max_json_bytes,
        idempotency_keep: Duration::from_secs(cfg.idempotency_hours.max(24) * 3600),
        idempotency_lease: Duration::from_millis(cfg.reliability.idempotency_lease_ms.max(100)),
    });
    let blobs = match &cfg.blob_url {
        Some(url) => Blobs::s3(url)?,
        None => Blobs::local(&cfg.db.data_dir.join("blobs"))?,
    };
    let sandbox: Arc<dyn crate::providers::Provider> =
        Arc::new(SandboxProvider::new(cfg.sandbox_concurrency, clock.clone()));
    // Kling upstream (issue 5): with credentials, the catalog's "kling" family runs there.
    let (all_providers, kling_route) = crate::providers::kling::wire(
        &cfg.kling,
        sandbox,
        clock.clone(),
        Duration::from_millis(cfg.reliability.provider_unhealthy_fail_after_ms),
    )?;
    let routes = [("kling".to_owned(), kling_route)].into_iter().collect();
    let providers = ProviderRouting::new(all_providers, routes, "sandbox");
    tracing::info!("{}", providers.describe());
    let catalog = Arc::new(catalog);
    let webhook_wakeup = Arc::new(Notify::new());
    let webhook_settings = crate::webhooks::WebhookSettings::from_args(&cfg.webhooks);
    if cfg.webhooks.webhook_allow_insecure {
        tracing::warn!(
            "webhook URLs may be http:// and private hosts (--webhook-allow-insecure): local development only"
        );
    }
    let webhooks = Arc::new(crate::webhooks::Webhooks::new(
        store.clone(),
        clock.clone(),
        links.clone(),
        catalog.clone(),
        webhook_settings,
        webhook_wakeup.clone(),
    )?);
    Ok(AppState(Arc::new(AppStateInner {
        webhooks,
        files: Arc::new(FilesService::new(
            store.clone(),
            links.clone(),
            blobs.clone(),
            Duration::from_secs(cfg.file_ttl_hours.max(1) * 3600),
            Arc::new(crate::decode_budget::DecodeBudget::new(
                cfg.max_decode_memory,
                Duration::from_millis(cfg.decode_wait_ms),
            )),
        )),
        providers: Arc::new(providers),
        blobs,
        events: Arc::new(TaskEvents::with_listener(webhook_wakeup)),
        store,
        catalog,
        clock,
        limiter: limiter(cfg)?,
        keys: Arc::new(crate::keycache::KeyCache::new(
            Duration::from_millis(cfg.key_cache_ms),
            100_000,
        )),
        ended_tasks: Arc::new(crate::taskcache::TerminalTasks::new(
            cfg.ended_task_cache_entries,
        )),
        config,
        metrics: crate::telemetry::prometheus(),
        links,
        runner_wakeup: Arc::new(Notify::new()),
        nudges: Arc::new(crate::callbacks::Nudges::new()),
        node: Arc::new(node),
        status: Arc::new(crate::node::NodeStatus::new(
            role_name(cfg.role),
            cfg.role != Role::Worker,
        )),
    })))
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::All => "all",
        Role::Api => "api",
        Role::Worker => "worker",
    }
}

/// Budgets in Redis when `--redis-url` is given (shared by the nodes),
/// otherwise in this process.
fn limiter(cfg: &ServeConfig) -> anyhow::Result<Arc<dyn Limiter>> {
    Ok(match &cfg.redis_url {
        Some(url) => Arc::new(
            crate::shared_limits::RedisLimiter::new(crate::shared_limits::RedisLimiterConfig {
                url: url.clone(),
                timeout: Duration::from_millis(cfg.redis_timeout_ms.max(1)),
                expected_nodes: cfg.expected_nodes.max(1),
            })
            .with_context(|| format!("--redis-url {}", crate::config::redact_url(url)))?,
        ),
        None => Arc::new(LocalLimiter::new()),
    })
}

/// A started server: its address, state, and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    pub bootstrap: Option<crate::accounts::IssuedKey>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub async fn start(cfg: &ServeConfig) -> anyhow::Result<Running> {
    start_with_clock(cfg, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(cfg: &ServeConfig, clock: SharedClock) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let state = build_state(cfg, clock, Some(addr)).await?;
    let bootstrap = if cfg.no_bootstrap {
        None
    } else {
        crate::accounts::bootstrap(
            state.store.as_ref(),
            cfg.bootstrap_credits,
            state.clock.now(),
        )
        .await
        .context("creating the default account")?
        .map(|(_, key)| key)
    };
    // Logged before the port answers, so whoever sees the node ready can
    // also read who it is.
    tracing::info!(
        node = %state.node.node,
        role = state.status.role,
        public_api = state.status.serves_api,
        runner = crate::background::runs_runner(cfg),
        webhook_dispatcher = crate::background::runs_dispatcher(cfg),
        rate_limits = state.limiter.describe()["backend"].as_str().unwrap_or("local"),
        "node started"
    );
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    {
        // The router is built (and its route table resolved) once; every
        // connection serves a clone of it (an `Arc`). A worker answers
        // health and metrics only.
        let router = if cfg.role == Role::Worker {
            crate::http::ops_router(state.clone())
        } else {
            crate::http::router(state.clone())
        };
        let limits = cfg.http.limits();
        tracing::info!(
            header_timeout_ms = limits.header_timeout.as_millis() as u64,
            body_timeout_ms = limits.body_timeout.as_millis() as u64,
            idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
            max_connections = limits.max_connections,
            "http limits"
        );
        tasks.push(tokio::spawn(crate::server::serve(
            listener,
            router,
            limits,
            stop_rx.clone(),
        )));
    }
    tasks.extend(crate::background::spawn(&state, cfg, stop_rx));
    Ok(Running {
        addr,
        state,
        bootstrap,
        stop,
        tasks,
    })
}
