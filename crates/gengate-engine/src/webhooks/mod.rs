//! Webhooks (API.md §8): endpoint management and the dispatcher that
//! delivers the outbox. Events are written by the store in the same
//! transaction as a task's terminal state; here they are fanned out to
//! endpoints, rendered with the status endpoint's serializer, signed
//! (Standard Webhooks) and sent, with every attempt recorded.
//!
//! Imports `infra` (signing, links), the store, its flags (`config`) and the
//! `Engine` handle its dispatcher runs on; never `runner` or `generations`
//! (events are the store's).

use crate::Engine;
use crate::infra::connectors::Connectors;
use crate::infra::signing::MediaLinks;
use bytes::Bytes;
use gengate_core::Timestamp;
use gengate_core::clock::SharedClock;
use gengate_core::error::{ErrorCode, FieldIssue, ValidationErrors};
use gengate_core::generation::{Generation, Task, TaskStatus, parse_create_request};
use gengate_core::ids::{AccountId, EventId, TaskId, WebhookEndpointId};
use gengate_core::text;
use gengate_core::webhook::{CreateEndpoint, EventEnvelope, EventType, EventTypes, UpdateEndpoint};
use gengate_store::webhooks::{
    AttemptOutcome, AttemptRecord, EndpointChanges, EndpointRecord, EventRecord, LeasedDelivery,
    NewAttempt,
};
use gengate_store::{DynStore, StoreError};
use gengate_webhooks::{
    DISABLE_AFTER, Deliver, DelivererConfig, SigningSecret, UrlPolicy, UrlRejection,
    check_url_resolving, next_retry_delay, random_jitter_unit, signature_header,
};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};

/// How long the old secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub policy: UrlPolicy,
    pub time_scale: f64,
    pub timeout: Duration,
    pub idle_poll: Duration,
    pub concurrency: usize,
}

impl WebhookSettings {
    pub fn from_args(a: &crate::config::WebhookArgs) -> Self {
        Self {
            policy: UrlPolicy {
                allow_http: a.webhook_allow_insecure,
                allow_private: a.webhook_allow_insecure,
            },
            time_scale: a.webhook_time_scale,
            timeout: Duration::from_millis(a.webhook_timeout_ms.max(1)),
            idle_poll: Duration::from_millis(a.webhook_poll_ms.max(1)),
            concurrency: a.webhook_concurrency.max(1),
        }
    }

    /// A delivery stays ours for its whole attempt (bounded by the timeout)
    /// plus slack; a dispatcher that died mid-attempt loses it to another
    /// after this, which is when at-least-once may mean twice.
    fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(1)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(ValidationErrors),
    #[error("webhook URL rejected: {0}")]
    UrlRejected(UrlRejection),
    #[error("webhook endpoint not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebhookError {
    /// The public code, so the HTTP layer maps it without knowing the rules.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::ValidationFailed,
            Self::UrlRejected(_) => ErrorCode::WebhookUrlRejected,
            Self::NotFound => ErrorCode::NotFound,
            Self::Store(_) => ErrorCode::InternalError,
        }
    }
}

/// The endpoint object of API.md §8.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointView {
    pub id: WebhookEndpointId,
    #[cfg_attr(feature = "openapi", schema(example = "webhook_endpoint"))]
    pub object: &'static str,
    pub name: String,
    pub url: String,
    pub event_types: Vec<String>,
    /// `active` or `disabled`.
    pub status: &'static str,
    pub secret_preview: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_success_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_failure_at: Option<Timestamp>,
    pub failure_count: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub updated_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub disabled_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub revoked_at: Option<Timestamp>,
    /// Only in the answers to create and rotate-secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

impl EndpointView {
    fn of(e: &EndpointRecord) -> Self {
        Self {
            id: e.id.clone(),
            object: "webhook_endpoint",
            name: e.name.clone(),
            url: e.url.clone(),
            event_types: e.event_types.clone(),
            status: if e.enabled { "active" } else { "disabled" },
            secret_preview: SigningSecret::parse(&e.secret)
                .map(|s| s.preview())
                .unwrap_or_default(),
            last_success_at: e.last_success_at,
            last_failure_at: e.last_failure_at,
            failure_count: e.failure_count,
            created_at: e.created_at,
            updated_at: e.updated_at,
            disabled_at: e.disabled_at,
            revoked_at: e.revoked_at,
            signing_secret: None,
        }
    }

    fn with_secret(e: &EndpointRecord) -> Self {
        Self {
            signing_secret: Some(e.secret.clone()),
            ..Self::of(e)
        }
    }
}

/// One delivery attempt as `/deliveries` lists it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptView {
    /// `whatt_<n>`; pass as `starting_after` to page.
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(example = "webhook_delivery_attempt"))]
    pub object: &'static str,
    pub delivery_id: String,
    pub event_id: EventId,
    pub event_type: String,
    /// 1 for the first try of this event at this endpoint.
    pub attempt: i64,
    /// The receiver's HTTP status; null when it never answered.
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: Timestamp,
}

impl AttemptView {
    fn of(a: &AttemptRecord) -> Self {
        Self {
            id: attempt_cursor(a.seq),
            object: "webhook_delivery_attempt",
            delivery_id: a.delivery_id.to_string(),
            event_id: a.event_id.clone(),
            event_type: a.event_type.clone(),
            attempt: a.attempt,
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            error: a.error.clone(),
            created_at: a.created_at,
        }
    }
}

fn attempt_cursor(seq: i64) -> String {
    format!("whatt_{seq}")
}

pub fn parse_attempt_cursor(s: &str) -> Option<i64> {
    s.strip_prefix("whatt_")?.parse().ok().filter(|n| *n > 0)
}

pub struct Webhooks {
    store: DynStore,
    clock: SharedClock,
    links: Arc<MediaLinks>,
    catalog: Arc<crate::catalog::CatalogSource>,
    deliverer: Arc<dyn Deliver>,
    pub settings: WebhookSettings,
    /// Poked when tasks end on this node so deliveries go out at once.
    pub wakeup: Arc<Notify>,
}

impl Webhooks {
    pub fn new(
        store: DynStore,
        clock: SharedClock,
        links: Arc<MediaLinks>,
        catalog: Arc<crate::catalog::CatalogSource>,
        settings: WebhookSettings,
        wakeup: Arc<Notify>,
        connectors: &dyn Connectors,
    ) -> anyhow::Result<Self> {
        let deliverer = connectors.webhook_deliverer(DelivererConfig {
            timeout: settings.timeout,
            policy: settings.policy,
            ..Default::default()
        })?;
        Ok(Self {
            store,
            clock,
            links,
            catalog,
            deliverer,
            settings,
            wakeup,
        })
    }

    async fn checked_url(&self, url: &str) -> Result<String, WebhookError> {
        check_url_resolving(url, &self.settings.policy)
            .await
            .map(|u| u.to_string())
            .map_err(WebhookError::UrlRejected)
    }

    pub async fn create(
        &self,
        account: &AccountId,
        req: CreateEndpoint,
    ) -> Result<EndpointView, WebhookError> {
        let url = self.checked_url(&req.url).await?;
        let now = self.clock.now();
        let rec = EndpointRecord {
            id: WebhookEndpointId::generate(),
            account_id: account.clone(),
            name: req.name.as_str().to_owned(),
            url,
            event_types: strings(&req.event_types),
            enabled: true,
            secret: SigningSecret::generate().expose().to_owned(),
            previous_secret: None,
            previous_secret_until: None,
            last_success_at: None,
            last_failure_at: None,
            failure_count: 0,
            failing_since: None,
            created_at: now,
            updated_at: now,
            disabled_at: None,
            revoked_at: None,
        };
        self.store.create_endpoint(&rec).await?;
        Ok(EndpointView::with_secret(&rec))
    }

    pub async fn list(
        &self,
        account: &AccountId,
        starting_after: Option<&WebhookEndpointId>,
        limit: u32,
    ) -> Result<(Vec<EndpointView>, bool), WebhookError> {
        match self
            .store
            .list_endpoints(account, starting_after, limit)
            .await
        {
            Ok((v, more)) => Ok((v.iter().map(EndpointView::of).collect(), more)),
            Err(StoreError::NotFound(_)) => Err(bad_cursor()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
    ) -> Result<EndpointView, WebhookError> {
        self.store
            .get_endpoint(account, id)
            .await?
            .map(|e| EndpointView::of(&e))
            .ok_or(WebhookError::NotFound)
    }

    pub async fn update(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
        req: UpdateEndpoint,
    ) -> Result<EndpointView, WebhookError> {
        // Existence first, so a foreign id with a bad URL is still a 404.
        if self.store.get_endpoint(account, id).await?.is_none() {
            return Err(WebhookError::NotFound);
        }
        let url = match &req.url {
            Some(u) => Some(self.checked_url(u).await?),
            None => None,
        };
        let changes = EndpointChanges {
            name: req.name.map(|n| n.as_str().to_owned()),
            url,
            event_types: req.event_types.as_ref().map(strings),
            enabled: req.enabled,
        };
        let rec = self
            .store
            .update_endpoint(account, id, &changes, self.clock.now())
            .await?
            .ok_or(WebhookError::NotFound)?;
        Ok(EndpointView::of(&rec))
    }

    pub async fn delete(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
    ) -> Result<EndpointView, WebhookError> {
        let rec = self
            .store
            .delete_endpoint(account, id, self.clock.now())
            .await?
            .ok_or(WebhookError::NotFound)?;
        Ok(EndpointView::of(&rec))
    }

    pub async fn rotate(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
    ) -> Result<EndpointView, WebhookError> {
        let now = self.clock.now();
        let secret = SigningSecret::generate();
        let rec = self
            .store
            .rotate_endpoint_secret(
                account,
                id,
                secret.expose(),
                now.plus(ROTATION_OVERLAP),
                now,
            )
            .await?
            .ok_or(WebhookError::NotFound)?;
        Ok(EndpointView::with_secret(&rec))
    }

    /// Queues a `webhook.test` event for this endpoint only.
    pub async fn send_test(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
    ) -> Result<EventView, WebhookError> {
        if self.store.get_endpoint(account, id).await?.is_none() {
            return Err(WebhookError::NotFound);
        }
        let ev = EventRecord {
            id: EventId::generate(),
            account_id: account.clone(),
            event_type: EventType::WebhookTest.as_str().to_owned(),
            task_id: None,
            endpoint_id: Some(id.clone()),
            created_at: self.clock.now(),
            data: None,
        };
        self.store.insert_event(&ev).await?;
        self.wakeup.notify_one();
        Ok(self.event_view(&ev).await?)
    }

    pub async fn attempts(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
        starting_after: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<AttemptView>, bool), WebhookError> {
        // Deleted endpoints keep their history but, like every foreign or
        // missing id, answer 404.
        if self.store.get_endpoint(account, id).await?.is_none() {
            return Err(WebhookError::NotFound);
        }
        let (v, more) = self.store.list_attempts(id, starting_after, limit).await?;
        Ok((v.iter().map(AttemptView::of).collect(), more))
    }

    pub async fn events(
        &self,
        account: &AccountId,
        starting_after: Option<&EventId>,
        event_type: Option<EventType>,
        limit: u32,
    ) -> Result<(Vec<EventView>, bool), WebhookError> {
        let (v, more) = match self
            .store
            .list_events(
                account,
                starting_after,
                event_type.map(EventType::as_str),
                limit,
            )
            .await
        {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return Err(bad_cursor()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::with_capacity(v.len());
        for e in &v {
            out.push(self.event_view(e).await?);
        }
        Ok((out, more))
    }

    async fn event_view(&self, e: &EventRecord) -> Result<EventView, StoreError> {
        let envelope = self.envelope(e).await?;
        Ok(EventView {
            object: "event",
            envelope,
        })
    }

    /// The event as delivered. Generation events are rendered from the task
    /// when sent, with the status endpoint's serializer: a terminal task
    /// never changes, and its media links are fresh on every attempt.
    async fn envelope(&self, e: &EventRecord) -> Result<EventEnvelope, StoreError> {
        let event_type = EventType::parse(&e.event_type)
            .ok_or_else(|| StoreError::Internal(format!("unknown event type {}", e.event_type)))?;
        let data = match &e.task_id {
            Some(task_id) => {
                let task = self
                    .store
                    .get_task(&e.account_id, task_id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("task {task_id}")))?;
                serde_json::to_value(Generation::from_task(&task, self.links.as_ref()))
                    .map_err(|e| StoreError::Internal(e.to_string()))?
            }
            // Alerts (credits.low, key.spend_limit_reached) carry what they say.
            None => match &e.data {
                Some(d) => d.clone(),
                None => self.sample_generation(e),
            },
        };
        Ok(EventEnvelope::new(
            e.id.clone(),
            event_type,
            e.created_at,
            data,
        ))
    }

    /// A test event carries a generation-shaped example (so receivers can
    /// exercise their parser) that is plainly not a real task.
    fn sample_generation(&self, e: &EventRecord) -> serde_json::Value {
        let catalog = self.catalog.current();
        let model = catalog
            .models()
            .first()
            .map(|m| m.id.clone())
            .unwrap_or_else(|| "kling-3-0".to_owned());
        let body = serde_json::json!({"model": model, "prompt": "webhook test event"});
        let task = parse_create_request(&catalog, &body).ok().map(|req| Task {
            id: TaskId::from_trusted(format!(
                "task_test_{}",
                e.id.as_str().trim_start_matches("evt_")
            )),
            account_id: e.account_id.clone(),
            model: req.model.id.clone(),
            status: TaskStatus::Queued,
            prompt: req.prompt,
            params: req.params,
            references: vec![],
            reserved_credits: gengate_core::Credits::ZERO,
            final_credits: gengate_core::Credits::ZERO,
            client_request_id: None,
            result: None,
            error: None,
            created_at: e.created_at,
            updated_at: e.created_at,
            deadline_at: e.created_at,
        });
        match task {
            Some(t) => serde_json::to_value(Generation::from_task(&t, self.links.as_ref()))
                .unwrap_or_default(),
            // Only a catalog without models gets here; the envelope still verifies.
            None => serde_json::json!({"object": "generation", "status": "queued"}),
        }
    }

    /// One pass: fan out new events, then send what is due, up to the
    /// free concurrency. Returns how many deliveries were taken.
    async fn round(self: &Arc<Self>, worker: &str, slots: &Arc<Semaphore>) -> usize {
        let now = self.clock.now();
        if let Err(e) = self.store.fan_out_events(now, 500).await {
            tracing::warn!(error = %e, "webhook fan-out failed; retrying");
        }
        let free = slots.available_permits();
        if free == 0 {
            return 0;
        }
        let leased = match self
            .store
            .lease_deliveries(worker, now, self.settings.lease(), free as u32)
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "leasing webhook deliveries failed; retrying");
                return 0;
            }
        };
        let n = leased.len();
        for d in leased {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            let this = self.clone();
            let worker = worker.to_owned();
            tokio::spawn(async move {
                if let Err(e) = this.deliver(&d, &worker).await {
                    tracing::warn!(delivery = %d.id, error = %e, "webhook delivery step failed; its lease will lapse and it is retried");
                }
                drop(permit);
                this.wakeup.notify_one();
            });
        }
        n
    }

    async fn deliver(&self, d: &LeasedDelivery, worker: &str) -> Result<(), StoreError> {
        let endpoint = self.store.get_endpoint_unscoped(&d.endpoint_id).await?;
        let Some(endpoint) = endpoint.filter(|e| e.enabled && e.revoked_at.is_none()) else {
            self.store
                .record_attempt(
                    d,
                    worker,
                    None,
                    AttemptOutcome::Canceled,
                    DISABLE_AFTER,
                    self.clock.now(),
                )
                .await?;
            return Ok(());
        };
        let body = Bytes::from(
            serde_json::to_vec(&self.envelope(&d.event).await?)
                .map_err(|e| StoreError::Internal(e.to_string()))?,
        );
        let now = self.clock.now();
        let mut secrets = Vec::new();
        if let Ok(s) = SigningSecret::parse(&endpoint.secret) {
            secrets.push(s);
        }
        if let (Some(old), Some(until)) =
            (&endpoint.previous_secret, endpoint.previous_secret_until)
            && until > now
            && let Ok(s) = SigningSecret::parse(old)
        {
            secrets.push(s);
        }
        let refs: Vec<&SigningSecret> = secrets.iter().collect();
        let msg_id = d.event.id.as_str();
        let timestamp = now.unix_seconds();
        let header = signature_header(&refs, msg_id, timestamp, &body);
        let attempt = self
            .deliverer
            .deliver(&endpoint.url, msg_id, timestamp, &header, body)
            .await;
        let done = self.clock.now();
        let outcome = if attempt.succeeded() {
            AttemptOutcome::Succeeded
        } else {
            let failed = u32::try_from(d.attempts + 1).unwrap_or(u32::MAX);
            match next_retry_delay(
                failed,
                attempt.retry_after,
                self.settings.time_scale,
                random_jitter_unit(),
            ) {
                Some(delay) => AttemptOutcome::RetryAt(done.plus(delay)),
                None => AttemptOutcome::GaveUp,
            }
        };
        let label = match outcome {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::RetryAt(_) => "retrying",
            AttemptOutcome::GaveUp => "gave_up",
            AttemptOutcome::Canceled => "canceled",
        };
        metrics::counter!("gengate_webhook_attempts_total", "outcome" => label).increment(1);
        let record = NewAttempt {
            status_code: attempt.status_code.map(i64::from),
            duration_ms: i64::try_from(attempt.duration.as_millis()).unwrap_or(i64::MAX),
            // The receiver's answer is theirs, not ours to refuse: control
            // characters (a NUL breaks PostgreSQL) are replaced, on both engines alike.
            error: attempt.error.as_deref().map(text::scrub),
            response: attempt.response_snippet.as_deref().map(text::scrub),
        };
        let r = self
            .store
            .record_attempt(d, worker, Some(&record), outcome, DISABLE_AFTER, done)
            .await?;
        if !attempt.succeeded() {
            tracing::info!(endpoint = %endpoint.id, event = %d.event.id, attempt = d.attempts + 1,
                status = ?attempt.status_code, error = ?attempt.error, outcome = label, "webhook attempt failed");
        }
        if r.endpoint_disabled {
            tracing::warn!(endpoint = %endpoint.id, "webhook endpoint disabled after failing for 5 days without a success");
            metrics::counter!("gengate_webhook_endpoints_disabled_total").increment(1);
        }
        if !r.recorded {
            tracing::warn!(delivery = %d.id, "lease lost during a webhook attempt; another dispatcher owns it now");
        }
        Ok(())
    }
}

fn strings(t: &EventTypes) -> Vec<String> {
    t.as_strs().into_iter().map(str::to_owned).collect()
}

fn bad_cursor() -> WebhookError {
    WebhookError::Invalid(ValidationErrors::single(
        "starting_after",
        FieldIssue::NotFound,
        "starting_after must be the id of one of your objects in this list",
    ))
}

/// An event as `/webhook-events` lists it: the delivered envelope plus `object`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    #[cfg_attr(feature = "openapi", schema(example = "event"))]
    pub object: &'static str,
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub envelope: EventEnvelope,
}

/// The dispatcher loop of a node; any number may run (deliveries are leased).
pub async fn dispatcher(st: Engine, mut stop: watch::Receiver<bool>) {
    let hooks = st.webhooks.clone();
    let worker = format!("d-{}", gengate_core::ids::random_token(10));
    let slots = Arc::new(Semaphore::new(hooks.settings.concurrency));
    st.status
        .dispatcher_started(hooks.settings.concurrency, slots.clone());
    tracing::info!(worker = %worker, "webhook dispatcher started");
    loop {
        if *stop.borrow() {
            break;
        }
        let taken = hooks.round(&worker, &slots).await;
        if taken == 0 {
            tokio::select! {
                _ = hooks.wakeup.notified() => {}
                _ = tokio::time::sleep(hooks.settings.idle_poll) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
