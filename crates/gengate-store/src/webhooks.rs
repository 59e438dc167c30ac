//! Webhook storage: endpoints, the event outbox, deliveries and their
//! attempts. A separate trait (a supertrait of `Store`) so the webhook rows
//! have one home; both engines implement it from the same SQL
//! (`webhook_engine.rs`).

use crate::StoreResult;
use async_trait::async_trait;
use gengate_core::Timestamp;
use gengate_core::ids::{AccountId, DeliveryId, EventId, TaskId, WebhookEndpointId};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    pub id: WebhookEndpointId,
    pub account_id: AccountId,
    pub name: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// The `whsec_…` secret; it must be readable to sign with.
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
    pub failure_count: i64,
    /// Start of the current run of failures; `None` after any success.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// Changes to an endpoint; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: EventId,
    pub account_id: AccountId,
    pub event_type: String,
    pub task_id: Option<TaskId>,
    /// Set for a test event: it goes to this endpoint only.
    pub endpoint_id: Option<WebhookEndpointId>,
    pub created_at: Timestamp,
    /// What an event not about a task says (`credits.low`: balance and threshold).
    pub data: Option<serde_json::Value>,
}

/// A delivery taken by one dispatcher until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedDelivery {
    pub id: DeliveryId,
    pub event: EventRecord,
    pub endpoint_id: WebhookEndpointId,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// One HTTP attempt, as the deliveries list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub seq: i64,
    pub delivery_id: DeliveryId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
    pub event_type: String,
    /// 1-based number of this attempt for its delivery.
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response: Option<String>,
    pub created_at: Timestamp,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    /// Failed; try again at this time.
    RetryAt(Timestamp),
    /// Failed and the schedule is exhausted.
    GaveUp,
    /// Not attempted: the endpoint was deleted or disabled meanwhile.
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptResult {
    /// The attempt was recorded (false when our lease had been lost to another dispatcher).
    pub recorded: bool,
    /// This failure disabled the endpoint (failing for longer than allowed).
    pub endpoint_disabled: bool,
}

/// The fields of an attempt the dispatcher measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response: Option<String>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_endpoint(&self, e: &EndpointRecord) -> StoreResult<()>;
    /// A live (not deleted) endpoint of the account.
    async fn get_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<EndpointRecord>>;
    /// Any endpoint, deleted ones included (the dispatcher's view).
    async fn get_endpoint_unscoped(
        &self,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<EndpointRecord>>;
    /// Live endpoints, newest first, after the cursor; the bool is "has more".
    async fn list_endpoints(
        &self,
        account: &AccountId,
        starting_after: Option<&WebhookEndpointId>,
        limit: u32,
    ) -> StoreResult<(Vec<EndpointRecord>, bool)>;
    /// Re-enabling also forgets the failure streak, so the endpoint gets a
    /// fresh five days.
    async fn update_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
        changes: &EndpointChanges,
        now: Timestamp,
    ) -> StoreResult<Option<EndpointRecord>>;
    async fn rotate_endpoint_secret(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
        new_secret: &str,
        old_valid_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Option<EndpointRecord>>;
    /// Marks the endpoint deleted and cancels its pending deliveries.
    async fn delete_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
        now: Timestamp,
    ) -> StoreResult<Option<EndpointRecord>>;

    /// Records an event outside a task transition (the test event).
    async fn insert_event(&self, e: &EventRecord) -> StoreResult<()>;
    async fn get_event(&self, id: &EventId) -> StoreResult<Option<EventRecord>>;
    async fn list_events(
        &self,
        account: &AccountId,
        starting_after: Option<&EventId>,
        event_type: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<EventRecord>, bool)>;

    /// Turns new events into one pending delivery per subscribed live
    /// endpoint. Idempotent: racing dispatchers create each delivery once.
    async fn fan_out_events(&self, now: Timestamp, limit: u32) -> StoreResult<u64>;
    async fn lease_deliveries(
        &self,
        worker: &str,
        now: Timestamp,
        lease_for: Duration,
        limit: u32,
    ) -> StoreResult<Vec<LeasedDelivery>>;
    /// Records the attempt and moves the delivery and endpoint on, in one
    /// transaction, if `worker` still holds the lease.
    async fn record_attempt(
        &self,
        delivery: &LeasedDelivery,
        worker: &str,
        attempt: Option<&NewAttempt>,
        outcome: AttemptOutcome,
        disable_after: Duration,
        now: Timestamp,
    ) -> StoreResult<AttemptResult>;
    /// Attempts made for the endpoint's deliveries, newest first.
    async fn list_attempts(
        &self,
        endpoint: &WebhookEndpointId,
        starting_after: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<AttemptRecord>, bool)>;
    /// Deliveries of an event (for tests and operators): (endpoint, status, attempts).
    async fn deliveries_of_event(
        &self,
        event: &EventId,
    ) -> StoreResult<Vec<(WebhookEndpointId, String, i64)>>;
}
