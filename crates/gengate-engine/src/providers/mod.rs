//! Providers do the work behind the API. The trait is shaped for real
//! vendors: the runner calls `advance` whenever a task's job comes due, and
//! the provider decides from its own saved upstream state whether to submit,
//! reconcile after a crash, or poll. State that must survive a crash is saved
//! through `ProviderCtx::save_upstream` *before* the vendor is called.
//!
//! Owns the sandbox renderer's adapter, the Kling pool (accounts, slots,
//! health) and provider health. Imports `infra` and `files` (decode budget
//! for reference images); never `generations`, `runner` or `webhooks`.

pub mod health;
pub mod kling;
pub mod sandbox;

use async_trait::async_trait;
use bytes::Bytes;
use gengate_core::catalog::Model;
use gengate_core::generation::{Task, TaskError};
use gengate_core::ids::TaskId;
use gengate_store::{DynStore, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What a provider produced.
pub enum Output {
    /// Bytes made in process (the sandbox).
    Bytes { bytes: Bytes, mime_type: String },
    /// A vendor URL; the runner downloads it (size-capped) into our storage
    /// before the task may succeed.
    Url { url: String, mime_type: String },
}

pub enum Progress {
    /// Accepted upstream and running: the task is `processing`; look again later.
    Running {
        poll_after: Duration,
    },
    /// Not started: the vendor cannot take it now (rate or concurrency
    /// limit). The task stays `queued`.
    Deferred {
        retry_after: Duration,
        reason: String,
    },
    Finished(Output),
    Failed(TaskError),
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Worth retrying with back-off (network, 5xx, timeouts).
    #[error("transient provider error: {0}")]
    Transient(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything a provider may use while advancing one task.
pub struct ProviderCtx<'a> {
    pub task: &'a Task,
    pub model: &'a Model,
    pub upstream: Option<Value>,
    /// Signed URLs of the task's reference files, in order.
    pub reference_urls: Vec<String>,
    /// Bytes of the reference files, for providers that work locally.
    pub reference_bytes: Vec<Bytes>,
    /// Where a vendor may call back for this task (None when no public base URL is set).
    pub callback_url: Option<String>,
    /// The node's image decode memory budget: decode reference images
    /// under a reservation from it (docs/HARDENING.md).
    pub decode_budget: &'a crate::files::decode_budget::DecodeBudget,
    pub(crate) store: &'a DynStore,
}

impl ProviderCtx<'_> {
    /// Persists upstream bookkeeping now, before any vendor call it protects.
    pub async fn save_upstream(&mut self, v: Value) -> Result<(), StoreError> {
        self.store
            .save_upstream(&self.task.id, &v, gengate_core::Timestamp::from_millis(0))
            .await?;
        self.upstream = Some(v);
        Ok(())
    }
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    /// How many tasks this node works on at once for this provider.
    fn concurrency(&self) -> usize;
    async fn advance(&self, ctx: &mut ProviderCtx<'_>) -> Result<Progress, ProviderError>;
    /// A vendor's callback for `task`, whose URL token the route has already
    /// verified: check the body and answer whether the task's job should be
    /// looked at now. Providers without callbacks refuse.
    async fn callback(
        &self,
        _task: &TaskId,
        _upstream: Option<&Value>,
        _token: &str,
        _body: &[u8],
    ) -> bool {
        false
    }
    /// Whether a task on this provider can still be canceled, judged from
    /// its saved upstream state (`None`: nothing saved yet). The default
    /// says yes only while nothing is saved: whatever a provider saves
    /// before calling a vendor may mean the vendor has the task, and a
    /// vendor without a cancel call will finish it and bill us. Cancel is a
    /// compare-and-set on this very state, so the provider's next save (and
    /// with it the vendor call it protects) and a cancel cannot both happen.
    fn cancelable(&self, upstream: Option<&Value>) -> bool {
        upstream.is_none()
    }
    /// The provider's health, for providers that can lose it (a vendor
    /// refusing our credentials); `None` is always healthy.
    fn health(&self) -> Option<&health::ProviderHealth> {
        None
    }
    /// One check of whether an unhealthy provider recovered; the background
    /// prober calls it one at a time, only while unhealthy.
    async fn probe(&self) -> bool {
        true
    }
    /// Whether new creates for this provider's models are taken now.
    fn availability(&self, now_ms: i64) -> health::Availability {
        self.health()
            .map_or(health::Availability::Healthy, |h| h.check(now_ms))
    }
    /// Periodic upkeep (probing parts of the provider, refreshing gauges); the
    /// background prober calls it every tick, healthy or not.
    async fn maintain(&self) {}
    /// Details for `/readyz` (e.g. Kling's accounts), merged into the
    /// provider's entry.
    fn status(&self) -> Option<Value> {
        None
    }
}

/// Which provider serves which model on this deployment.
pub struct ProviderRouting {
    providers: HashMap<&'static str, Arc<dyn Provider>>,
    /// Provider family in the catalog → provider name here.
    routes: HashMap<String, &'static str>,
    fallback: &'static str,
}

impl ProviderRouting {
    pub fn new(
        providers: Vec<Arc<dyn Provider>>,
        routes: HashMap<String, &'static str>,
        fallback: &'static str,
    ) -> Self {
        Self {
            providers: providers.into_iter().map(|p| (p.name(), p)).collect(),
            routes,
            fallback,
        }
    }

    /// The provider a task of `account_is_sandbox` runs on: a sandbox
    /// account's tasks always run on the sandbox, whatever the model's route.
    pub fn provider_for_account(&self, model: &Model, account_is_sandbox: bool) -> String {
        if account_is_sandbox {
            sandbox::NAME.to_owned()
        } else {
            self.provider_for(model)
        }
    }

    /// Whether `provider` can take new tasks now.
    pub fn availability_of(&self, provider: &str, now_ms: i64) -> health::Availability {
        self.get(provider)
            .and_then(|p| p.health().map(|h| h.check(now_ms)))
            .unwrap_or(health::Availability::Healthy)
    }

    pub fn provider_for(&self, model: &Model) -> String {
        self.routes
            .get(&model.internal.provider)
            .copied()
            .unwrap_or(self.fallback)
            .to_owned()
    }

    /// Whether the provider behind `model` can take new tasks now.
    pub fn availability_for(&self, model: &Model, now_ms: i64) -> health::Availability {
        self.get(&self.provider_for(model))
            .map_or(health::Availability::Healthy, |p| p.availability(now_ms))
    }

    /// Every provider of this node, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.providers.values()
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.providers.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.providers.keys().map(|s| (*s).to_owned()).collect()
    }

    /// A human line for the operator: which model family goes where.
    pub fn describe(&self) -> String {
        let mut routes: Vec<_> = self
            .routes
            .iter()
            .map(|(k, v)| format!("{k}→{v}"))
            .collect();
        routes.sort();
        format!(
            "providers: {} (fallback {})",
            routes.join(", "),
            self.fallback
        )
    }
}
