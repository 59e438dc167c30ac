//! The engine handle: one `Arc` that the HTTP layer, the background loops
//! and the operator commands share, built once from `EngineArgs`. Its
//! methods are the operations the outside calls; each delegates to the
//! folder that owns the rule.

use crate::accounts::auth::{self, AuthError};
use crate::accounts::keycache::KeyCache;
use crate::accounts::keys::{self, KeyLimitError, KeyView};
use crate::config::{EngineArgs, Role};
use crate::files::FilesService;
use crate::files::decode_budget::DecodeBudget;
use crate::generations::ended_cache::TerminalTasks;
use crate::generations::events::TaskEvents;
use crate::generations::idempotency::{self, IdemHold};
use crate::generations::{self, CancelError, GenerationError, ListQuery, WaitUntil};
use crate::infra::blobs::Blobs;
use crate::infra::connectors::Connectors;
use crate::infra::limits::{Decision, Limiter, LocalLimiter};
use crate::infra::node::{NodeIdentity, NodeStatus};
use crate::infra::signing::{MediaLinks, SigningKey};
use crate::providers::ProviderRouting;
use crate::providers::health::Availability;
use crate::providers::sandbox::SandboxProvider;
use crate::runner::callbacks::Nudges;
use crate::webhooks::Webhooks;
use anyhow::Context;
use gengate_core::Timestamp;
use gengate_core::apikey::request::CreateKey;
use gengate_core::clock::SharedClock;
use gengate_core::generation::{CreateGeneration, Generation, Task, TaskReference};
use gengate_core::ids::{AccountId, ApiKeyId, TaskId};
use gengate_core::params::ReferenceItem;
use gengate_core::scope::RequestClass;
use gengate_core::spend::SpendLimit;
use gengate_store::{Account, ApiKeyRecord, DynStore, StoreError, StoredResponse};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Settings the request path reads, resolved once at start.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How callers and vendors reach this node (signed links, callback URLs).
    pub public_base_url: String,
    pub rate_create_per_min: u32,
    pub rate_read_per_min: u32,
    pub rate_upload_per_min: u32,
    pub idempotency_keep: Duration,
    /// How long a running request's hold on its key lasts without a heartbeat.
    pub idempotency_lease: Duration,
}

/// The engine. A handle: cloning it is one reference count, so every
/// request, loop and extractor may hold one.
#[derive(Clone)]
pub struct Engine(Arc<EngineInner>);

impl std::ops::Deref for Engine {
    type Target = EngineInner;
    fn deref(&self) -> &EngineInner {
        &self.0
    }
}

/// What the engine's parts share. Fields are public to the engine's own
/// modules and to tests that inspect the store; the outside calls methods.
pub struct EngineInner {
    pub store: DynStore,
    /// The catalog now (`current()`), re-read on SIGHUP from `--catalog FILE`.
    pub catalog: Arc<crate::catalog::CatalogSource>,
    pub clock: SharedClock,
    pub limiter: Arc<dyn Limiter>,
    pub keys: Arc<KeyCache>,
    /// Ended tasks, for status reads without a store query.
    pub ended_tasks: Arc<TerminalTasks>,
    pub config: Arc<EngineSettings>,
    pub links: Arc<MediaLinks>,
    pub files: Arc<FilesService>,
    pub providers: Arc<ProviderRouting>,
    /// Downloads vendor outputs (`Output::Url`).
    pub downloads: gengate_transport::SharedTransport,
    pub blobs: Blobs,
    pub events: Arc<TaskEvents>,
    /// Vendor callbacks that arrived while a task's job may have been leased (issue 5).
    pub nudges: Arc<Nudges>,
    /// Poked when a job is enqueued so an idle runner looks at once.
    pub runner_wakeup: Arc<Notify>,
    pub webhooks: Arc<Webhooks>,
    /// This process's node and boot ids (idempotency holds carry them).
    pub node: Arc<NodeIdentity>,
    /// Its role and what it runs (runner slots, dispatcher), for readyz and metrics.
    pub status: Arc<NodeStatus>,
    /// The settings it was built from (the background loops read theirs).
    pub args: EngineArgs,
}

/// What a vendor callback came to: the HTTP layer answers each its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The token is not ours for this provider and task.
    BadToken,
    UnknownProvider,
    UnknownTask,
    /// The store could not be reached; the vendor should retry.
    StoreUnavailable,
    /// The provider did not want a look (nothing new for it).
    Ignored,
    /// The task's job is due now.
    Woken,
    /// The task had already ended.
    AlreadyEnded,
}

impl CallbackOutcome {
    /// The label in metrics and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadToken => "bad_token",
            Self::UnknownProvider => "unknown_provider",
            Self::UnknownTask => "unknown_task",
            Self::StoreUnavailable => "store_unavailable",
            Self::Ignored => "ignored",
            Self::Woken => "woken",
            Self::AlreadyEnded => "already_ended",
        }
    }
}

/// The background loops of a started engine, and the way to stop them.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Signals every loop and waits for each to end (a render or upstream
    /// step in progress finishes its step; leases carry the rest).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::All => "all",
        Role::Api => "api",
        Role::Worker => "worker",
    }
}

impl Engine {
    /// Builds the engine: catalog, store (migrated), node identity, signing
    /// key, blobs, providers, webhooks, budgets and caches. `public_base_url`
    /// is how callers and vendors reach this node (the binary derives its
    /// default from the address it listens on).
    pub async fn build(
        args: &EngineArgs,
        clock: SharedClock,
        public_base_url: String,
        connectors: &dyn Connectors,
    ) -> anyhow::Result<Engine> {
        let catalog = crate::catalog::CatalogSource::load(args.catalog.clone())?;
        std::fs::create_dir_all(&args.db.data_dir)
            .with_context(|| format!("creating data dir {}", args.db.data_dir.display()))?;
        let store = args.db.open().await?;
        let node = NodeIdentity::load(args.reliability.node_id.as_deref(), &args.db.data_dir)
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
            args.role == Role::All || configured_key.is_some(),
            "--role {} needs GENGATE_SIGNING_KEY: every node must sign media links and callback \
             tokens with the same key, and a key generated into this node's data directory \
             would be its own (docs/DEPLOY.md)",
            role_name(args.role)
        );
        let key = SigningKey::load_or_create(configured_key.as_deref(), &args.db.data_dir)
            .context("loading the signing key")?;
        let links = Arc::new(MediaLinks {
            key,
            base_url: public_base_url.clone(),
            ttl: Duration::from_secs(24 * 3600),
            clock: clock.clone(),
        });
        let config = Arc::new(EngineSettings {
            public_base_url,
            rate_create_per_min: args.rate_create_per_min,
            rate_read_per_min: args.rate_read_per_min,
            rate_upload_per_min: args.rate_upload_per_min,
            idempotency_keep: Duration::from_secs(args.idempotency_hours.max(24) * 3600),
            idempotency_lease: Duration::from_millis(
                args.reliability.idempotency_lease_ms.max(100),
            ),
        });
        let blobs = match &args.blob_url {
            Some(url) => Blobs::s3(url, connectors)?,
            None => Blobs::local(&args.db.data_dir.join("blobs"))?,
        };
        let sandbox: Arc<dyn crate::providers::Provider> = Arc::new(SandboxProvider::new(
            args.sandbox_concurrency,
            clock.clone(),
        ));
        // Kling upstream (issue 5): with credentials, the catalog's "kling" family runs there.
        let (all_providers, kling_route) = crate::providers::kling::wire(
            &args.kling,
            connectors,
            sandbox,
            clock.clone(),
            Duration::from_millis(args.reliability.provider_unhealthy_fail_after_ms),
        )?;
        let routes = [("kling".to_owned(), kling_route)].into_iter().collect();
        let providers = ProviderRouting::new(all_providers, routes, "sandbox");
        tracing::info!("{}", providers.describe());
        let catalog = Arc::new(catalog);
        let webhook_wakeup = Arc::new(Notify::new());
        let webhook_settings = crate::webhooks::WebhookSettings::from_args(&args.webhooks);
        if args.webhooks.webhook_allow_insecure {
            tracing::warn!(
                "webhook URLs may be http:// and private hosts (--webhook-allow-insecure): local development only"
            );
        }
        let webhooks = Arc::new(Webhooks::new(
            store.clone(),
            clock.clone(),
            links.clone(),
            catalog.clone(),
            webhook_settings,
            webhook_wakeup.clone(),
            connectors,
        )?);
        Ok(Engine(Arc::new(EngineInner {
            webhooks,
            files: Arc::new(FilesService::new(
                store.clone(),
                links.clone(),
                blobs.clone(),
                Duration::from_secs(args.file_ttl_hours.max(1) * 3600),
                Arc::new(DecodeBudget::new(
                    args.max_decode_memory,
                    Duration::from_millis(args.decode_wait_ms),
                )),
            )),
            providers: Arc::new(providers),
            downloads: connectors.download_http()?,
            blobs,
            events: Arc::new(TaskEvents::with_listener(webhook_wakeup)),
            store,
            catalog,
            clock,
            limiter: limiter(args)?,
            keys: Arc::new(KeyCache::new(
                Duration::from_millis(args.key_cache_ms),
                100_000,
            )),
            ended_tasks: Arc::new(TerminalTasks::new(args.ended_task_cache_entries)),
            config,
            links,
            runner_wakeup: Arc::new(Notify::new()),
            nudges: Arc::new(Nudges::new()),
            node: Arc::new(node),
            status: Arc::new(NodeStatus::new(
                role_name(args.role),
                args.role != Role::Worker,
            )),
            args: args.clone(),
        })))
    }

    /// On an empty database (unless `--no-bootstrap`): the `default` account
    /// with `--bootstrap-credits` and a key with every scope, returned once.
    pub async fn bootstrap(&self) -> anyhow::Result<Option<crate::accounts::IssuedKey>> {
        if self.args.no_bootstrap {
            return Ok(None);
        }
        Ok(crate::accounts::bootstrap(
            self.store.as_ref(),
            self.args.bootstrap_credits,
            self.clock.now(),
        )
        .await
        .context("creating the default account")?
        .map(|(_, key)| key))
    }

    /// On a database without operators (unless `--no-bootstrap`): operator
    /// `admin` and its key, returned once.
    pub async fn bootstrap_operator(&self) -> anyhow::Result<Option<String>> {
        if self.args.no_bootstrap {
            return Ok(None);
        }
        crate::admin::bootstrap_operator(self.store.as_ref(), self.clock.now())
            .await
            .context("creating the first operator")
    }

    /// The operator behind a presented `gg_op_` key.
    pub async fn authenticate_operator(
        &self,
        key: &str,
    ) -> Result<gengate_store::operators::OperatorRecord, crate::admin::OperatorAuthError> {
        crate::admin::authenticate(self.store.as_ref(), key, self.clock.now()).await
    }

    /// Starts the loops this node's role runs (docs/DEPLOY.md): the deadline
    /// sweeper and housekeeping everywhere, the change feed where the API
    /// is served, the runner, dispatcher and provider prober on workers.
    pub fn start_background(&self) -> Background {
        let (stop, stop_rx) = watch::channel(false);
        Background {
            stop,
            tasks: crate::runner::background::spawn(self, stop_rx),
        }
    }

    /// Whether this node runs tasks (`all` and `worker`, unless `--no-runner`).
    pub fn runs_runner(&self) -> bool {
        crate::runner::background::runs_runner(&self.args)
    }

    /// Whether this node delivers webhooks (`all` and `worker`).
    pub fn runs_dispatcher(&self) -> bool {
        crate::runner::background::runs_dispatcher(&self.args)
    }

    // --- Callers and their keys ---

    /// The key record behind a presented API key, or why it does not authenticate.
    pub async fn authenticate(&self, key: &str) -> Result<Arc<ApiKeyRecord>, AuthError> {
        auth::authenticate(self, key).await
    }

    /// Takes one request of `class` from the key's budget.
    pub async fn admit(&self, record: &ApiKeyRecord, class: RequestClass) -> Decision {
        auth::admit(self, record, class).await
    }

    /// Records the key's last use (in the background, at most once a minute).
    pub fn touch_key(&self, record: &ApiKeyRecord) {
        auth::touch(self, record)
    }

    pub async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.store.get_account(id).await
    }

    /// A page of the account's ledger, newest first (`before_seq` excludes
    /// that row and newer), and whether more follow.
    pub async fn ledger_page(
        &self,
        account: &AccountId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<gengate_store::LedgerEntry>, bool), StoreError> {
        self.store.ledger_page(account, before_seq, limit).await
    }

    /// The account's keys, newest first.
    pub async fn list_keys(&self, account: &AccountId) -> Result<Vec<KeyView>, StoreError> {
        keys::list(self.store.as_ref(), account, self.clock.now()).await
    }

    /// A new key of the account; its secret is in this answer only. A replay
    /// under the request's idempotency key answers the same key without it:
    /// the secret is stored nowhere.
    pub async fn create_key(
        &self,
        account: &AccountId,
        req: CreateKey,
        now: Timestamp,
        hold: Option<IdemHold>,
    ) -> Result<KeyView, StoreError> {
        let outcome = keys::create(self.store.as_ref(), account, req, now).await;
        idempotency::settle(self, hold, outcome, |view| {
            Ok(StoredResponse {
                status: 201,
                headers: vec![],
                body: serde_json::to_string(&view.without_secret())
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
            })
        })
        .await
    }

    /// Sets or clears a key's spend limit (never the calling key's own).
    pub async fn set_key_spend_limit(
        &self,
        account: &AccountId,
        caller: &ApiKeyId,
        id: &ApiKeyId,
        limit: Option<SpendLimit>,
    ) -> Result<Option<KeyView>, KeyLimitError> {
        keys::set_spend_limit(
            self.store.as_ref(),
            account,
            caller,
            id,
            limit,
            self.clock.now(),
        )
        .await
    }

    /// Revokes a key of the account; this node forgets it at once, others
    /// within `--key-cache-ms`.
    pub async fn revoke_key(
        &self,
        account: &AccountId,
        id: &ApiKeyId,
    ) -> Result<Option<KeyView>, StoreError> {
        keys::revoke(
            self.store.as_ref(),
            &self.keys,
            account,
            id,
            self.clock.now(),
        )
        .await
    }

    // --- Generations ---

    /// Resolves a create's reference items to live files of the account.
    pub async fn resolve_references(
        &self,
        account: &AccountId,
        model: &gengate_core::catalog::Model,
        items: &[ReferenceItem],
    ) -> Result<Vec<TaskReference>, gengate_core::error::ValidationErrors> {
        generations::resolve_references(self, account, model, items).await
    }

    /// Debits and creates the task in one transaction, with the idempotency
    /// record when the request holds a key. The hold ends here: completed
    /// with the task, or freed for a retry when the create is refused.
    pub async fn create_generation(
        &self,
        account: &AccountId,
        key: &ApiKeyId,
        req: CreateGeneration,
        references: Vec<TaskReference>,
        hold: Option<IdemHold>,
    ) -> Result<(Task, Generation), GenerationError> {
        let idem = hold.as_ref().map(|h| (&h.scope, h.token.as_str()));
        let outcome = generations::create(self, account, key, req, references, idem).await;
        idempotency::release_on_error(self, hold, outcome).await
    }

    /// One task of the account (ended ones from the in-process cache).
    pub async fn get_generation(
        &self,
        account: &AccountId,
        id: &TaskId,
    ) -> Result<Option<Arc<Task>>, StoreError> {
        generations::get(self, account, id).await
    }

    /// A page of the account's tasks, newest first, and whether more follow.
    pub async fn list_generations(
        &self,
        account: &AccountId,
        query: &ListQuery,
    ) -> Result<(Vec<Task>, bool), GenerationError> {
        generations::list(self, account, query).await
    }

    /// Waits up to `wait` for `task` to change (or end), and returns it as it is then.
    pub async fn wait_for_change(
        &self,
        account: &AccountId,
        task: Task,
        wait: Duration,
        until: WaitUntil,
    ) -> Result<Task, StoreError> {
        generations::wait_for_change(self, account, task, wait, until).await
    }

    /// Cancels a task no upstream holds yet, with a full refund.
    pub async fn cancel_generation(
        &self,
        account: &AccountId,
        id: &TaskId,
    ) -> Result<Task, CancelError> {
        generations::cancel(self, account, id).await
    }

    /// The public view of a task, its links signed now.
    #[inline]
    pub fn view(&self, task: &Task) -> Generation {
        Generation::from_task(task, self.links.as_ref())
    }

    // --- Files ---

    /// Stores an upload (sniffed, checked against its kind's and the
    /// model's limits) and answers its public object, links signed now; the
    /// same object is what a replay under the request's idempotency key gets.
    pub async fn upload_file(
        &self,
        account: &AccountId,
        up: crate::files::Upload,
        hold: Option<IdemHold>,
    ) -> Result<crate::files::FileObject, crate::files::FilesError> {
        let outcome = match self
            .files
            .create(&self.catalog.current(), account, up)
            .await
        {
            Ok(rec) => Ok(self.files.object(&rec)),
            Err(e) => Err(e),
        };
        idempotency::settle(self, hold, outcome, |obj| {
            Ok(StoredResponse {
                status: 201,
                headers: vec![],
                body: serde_json::to_string(obj)
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
            })
        })
        .await
    }

    /// A live file of the account, as the API shows it.
    pub async fn get_file(
        &self,
        account: &AccountId,
        id: &gengate_core::ids::FileId,
    ) -> Result<Option<crate::files::FileObject>, StoreError> {
        Ok(self
            .files
            .get(account, id)
            .await?
            .map(|rec| self.files.object(&rec)))
    }

    // --- Vendors ---

    /// A vendor's status callback for a task. Never trusted for its content:
    /// it only makes the task's job due now, and the provider re-queries the
    /// vendor before changing anything.
    pub async fn vendor_callback(
        &self,
        provider: &str,
        task_id: &str,
        token: &str,
        body: &[u8],
    ) -> CallbackOutcome {
        if !crate::runner::callbacks::verify(&self.links.key, provider, task_id, token) {
            tracing::warn!(%provider, task = %task_id, "vendor callback with a bad token refused");
            return CallbackOutcome::BadToken;
        }
        let Some(p) = self.providers.get(provider) else {
            return CallbackOutcome::UnknownProvider;
        };
        let Some(id) = TaskId::parse(task_id) else {
            return CallbackOutcome::UnknownTask;
        };
        let upstream = match self.store.load_upstream(&id).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "vendor callback: store unavailable");
                return CallbackOutcome::StoreUnavailable;
            }
        };
        if !p.callback(&id, upstream.as_ref(), token, body).await {
            return CallbackOutcome::Ignored;
        }
        match self.store.wake_job(&id, self.clock.now()).await {
            Ok(true) => {
                // If the job is leased right now, wake_job could not move it:
                // the runner looks at the nudge after it releases the job.
                self.nudges.nudge(&id);
                self.runner_wakeup.notify_one();
                CallbackOutcome::Woken
            }
            Ok(false) => CallbackOutcome::AlreadyEnded,
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "vendor callback: could not wake the job");
                CallbackOutcome::StoreUnavailable
            }
        }
    }

    // --- Operations ---

    /// What `/readyz` reports when the database answers: each provider's
    /// health (and pool state), this node's role and slots, the budgets'
    /// backend. `Err` when the database does not answer.
    pub async fn readiness(&self) -> Result<serde_json::Value, StoreError> {
        self.store.ping().await?;
        Ok(serde_json::json!({
            "status": "ready",
            "providers": self.providers_snapshot(),
            "node": self.status.to_json(&self.node),
            "rate_limits": self.limiter.describe(),
        }))
    }

    /// Each provider as this node sees it: health (and why not), and what the
    /// provider adds (the Kling pool: its accounts, slots, submits, failures).
    pub fn providers_snapshot(&self) -> serde_json::Value {
        let now = self.clock.now().as_millis();
        let providers: serde_json::Map<String, serde_json::Value> = self
            .providers
            .all()
            .map(|p| {
                let mut v = match p.health().map(|h| h.check(now)) {
                    None | Some(Availability::Healthy) => {
                        serde_json::json!({"healthy": true})
                    }
                    Some(Availability::Unhealthy {
                        since_ms, reason, ..
                    }) => serde_json::json!({
                        "healthy": false,
                        "since": Timestamp::from_millis(since_ms).rfc3339(),
                        "reason": reason,
                    }),
                };
                if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
                    (p.status(), v.as_object_mut())
                {
                    obj.extend(extra);
                }
                (p.name().to_owned(), v)
            })
            .collect();
        serde_json::Value::Object(providers)
    }

    /// The providers and nodes of the whole cluster, from every node's last report.
    pub async fn cluster(&self) -> Result<serde_json::Value, StoreError> {
        let reports = self.store.node_reports().await?;
        Ok(crate::admin::cluster::merge(&reports, self.clock.now()))
    }
}

/// Budgets in Redis when `--redis-url` is given (shared by the nodes),
/// otherwise in this process.
fn limiter(args: &EngineArgs) -> anyhow::Result<Arc<dyn Limiter>> {
    Ok(match &args.redis_url {
        Some(url) => Arc::new(
            crate::infra::shared_limits::RedisLimiter::new(
                crate::infra::shared_limits::RedisLimiterConfig {
                    url: url.clone(),
                    timeout: Duration::from_millis(args.redis_timeout_ms.max(1)),
                    expected_nodes: args.expected_nodes.max(1),
                },
            )
            .with_context(|| format!("--redis-url {}", crate::config::redact_url(url)))?,
        ),
        None => Arc::new(LocalLimiter::new()),
    })
}
