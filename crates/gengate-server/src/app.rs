//! Wiring: builds the engine from the configuration, starts the HTTP
//! server and the engine's background loops, and stops them.

use crate::config::{Role, ServeConfig};
use anyhow::Context;
use gengate_core::clock::{SharedClock, SystemClock};
use gengate_engine::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// The HTTP layer's own settings, resolved once at start.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub public_api_disabled: bool,
    pub max_json_bytes: usize,
}

/// What every handler shares: the engine and the HTTP settings. A handle:
/// axum clones the state for each extractor of each request, so a clone is
/// one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    pub engine: Engine,
    pub http: HttpSettings,
    pub metrics: PrometheusHandle,
}

impl AppState {
    pub fn new(engine: Engine, cfg: &ServeConfig) -> Self {
        Self(Arc::new(AppStateInner {
            engine,
            http: HttpSettings {
                public_api_disabled: cfg.public_api_disabled,
                max_json_bytes: cfg.max_json_bytes,
            },
            metrics: crate::telemetry::prometheus(),
        }))
    }
}

/// `bound` is the address actually listened on (it differs from the
/// configured one when that asks for port 0).
pub async fn build_state(
    cfg: &ServeConfig,
    clock: SharedClock,
    bound: Option<SocketAddr>,
) -> anyhow::Result<AppState> {
    let public_base_url = match (&cfg.engine.public_base_url, bound) {
        (None, Some(addr)) => format!("http://{addr}"),
        _ => cfg.public_base_url(),
    };
    let engine =
        Engine::build(&cfg.engine, clock, public_base_url, &gengate_outbound::Real).await?;
    Ok(AppState::new(engine, cfg))
}

/// A started server: its address, state, and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub engine: Engine,
    pub bootstrap: Option<gengate_engine::accounts::IssuedKey>,
    /// The first operator's key (`admin`), on the start that created it.
    pub bootstrap_operator: Option<String>,
    stop: watch::Sender<bool>,
    http: tokio::task::JoinHandle<()>,
    background: gengate_engine::Background,
}

impl Running {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.background.shutdown().await;
        let _ = self.http.await;
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
    let bootstrap = state.engine.bootstrap().await?;
    let bootstrap_operator = state.engine.bootstrap_operator().await?;
    // Logged before the port answers, so whoever sees the node ready can
    // also read who it is.
    tracing::info!(
        node = %state.engine.node.node,
        role = state.engine.status.role,
        public_api = state.engine.status.serves_api,
        runner = state.engine.runs_runner(),
        webhook_dispatcher = state.engine.runs_dispatcher(),
        rate_limits = state.engine.limiter.describe()["backend"].as_str().unwrap_or("local"),
        "node started"
    );
    let (stop, stop_rx) = watch::channel(false);
    let http = {
        // The router is built (and its route table resolved) once; every
        // connection serves a clone of it (an `Arc`). A worker answers
        // health and metrics only.
        let router = if cfg.engine.role == Role::Worker {
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
        tokio::spawn(crate::server::serve(listener, router, limits, stop_rx))
    };
    let background = state.engine.start_background();
    tokio::spawn(reload_catalog_on_sighup(state.engine.clone()));
    Ok(Running {
        addr,
        engine: state.engine.clone(),
        bootstrap,
        bootstrap_operator,
        stop,
        http,
        background,
    })
}

/// `kill -HUP` re-reads `--catalog FILE` (issue 23): the new catalog replaces the old
/// one whole, or, when the file is unreadable or any model in it is invalid, the old one
/// stays and the log says why. Tasks keep the price they were created with.
async fn reload_catalog_on_sighup(engine: gengate_engine::Engine) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the catalog is read at start only");
            return;
        };
        while hup.recv().await.is_some() {
            match engine.catalog.reload() {
                Ok(models) => tracing::info!(?models, "SIGHUP: catalog reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: catalog NOT reloaded, the previous one stays")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = engine;
}
