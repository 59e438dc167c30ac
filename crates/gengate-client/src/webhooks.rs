//! Webhook endpoint management (`/api/v1/webhooks…`, scope `webhooks:manage`).
//! To check the signature of a delivery you receive, see
//! [`verify_webhook`](crate::verify_webhook).

use crate::client::{Call, Client, new_idempotency_key};
use crate::error::{Error, Result};
use crate::generations::{Page, paginate};
use crate::models::encode_segment;
use futures_util::Stream;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// `whend_…`.
    pub id: String,
    /// A label.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed event types.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// The first characters of the secret.
    #[serde(default)]
    pub secret_preview: String,
    /// RFC 3339.
    #[serde(default)]
    pub last_success_at: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub last_failure_at: Option<String>,
    /// Failed deliveries since the last success.
    #[serde(default)]
    pub failure_count: i64,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
    /// RFC 3339.
    #[serde(default)]
    pub updated_at: String,
    /// RFC 3339.
    #[serde(default)]
    pub disabled_at: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// `whsec_…`: only in the answers to create and rotate-secret. Keep it.
    #[serde(default)]
    pub signing_secret: Option<String>,
}

/// The body of create.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateWebhook {
    /// A label.
    pub name: String,
    /// An `https` URL on a public host.
    pub url: String,
    /// Event types; `None` = every subscribable type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
}

/// The body of update; only the fields given change.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateWebhook {
    /// New label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// New event types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// `active` or `disabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// Cursor id (`whatt_…`).
    pub id: String,
    /// The delivery.
    pub delivery_id: String,
    /// `evt_…`.
    pub event_id: String,
    /// e.g. `generation.succeeded`.
    pub event_type: String,
    /// 1 for the first try.
    pub attempt: i64,
    /// The receiver's status; `None` when it never answered.
    #[serde(default)]
    pub status_code: Option<i64>,
    /// How long the attempt took.
    #[serde(default)]
    pub duration_ms: i64,
    /// What went wrong.
    #[serde(default)]
    pub error: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
}

/// An event, as delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_…`.
    pub id: String,
    /// `generation.succeeded`, `generation.failed`, `webhook.test`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// e.g. `2026-05-11`.
    #[serde(default)]
    pub api_version: String,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
    /// The payload (a Generation object for generation events).
    #[serde(default)]
    pub data: Value,
}

/// Paging of the webhook lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListPage {
    /// 1..=100 (server default 20).
    pub limit: Option<u32>,
    /// The id of the last item of the previous page.
    pub starting_after: Option<String>,
    /// Events only: one event type.
    pub event_type: Option<String>,
}

/// `client.webhooks()`.
#[derive(Debug, Clone, Copy)]
pub struct Webhooks<'a> {
    client: &'a Client,
}

impl Client {
    /// Webhook endpoints and events.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks { client: self }
    }
}

fn paged(path: String, q: &ListPage) -> Call {
    Call::get(path)
        .query_opt("limit", q.limit)
        .query_opt("starting_after", q.starting_after.as_deref())
        .query_opt("type", q.event_type.as_deref())
}

fn body(v: &impl Serialize) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::InvalidInput(e.to_string()))
}

impl<'a> Webhooks<'a> {
    /// Creates an endpoint; the answer carries `signing_secret`, shown only here.
    pub async fn create(&self, req: &CreateWebhook) -> Result<WebhookEndpoint> {
        let call = Call::new(Method::POST, "api/v1/webhooks")
            .json(body(req)?)
            .idempotent(new_idempotency_key());
        self.client.json(call).await
    }

    /// One page of endpoints.
    pub async fn list(&self, q: &ListPage) -> Result<Page<WebhookEndpoint>> {
        self.client.json(paged("api/v1/webhooks".into(), q)).await
    }

    /// Every endpoint.
    pub fn list_all(&self, q: ListPage) -> impl Stream<Item = Result<WebhookEndpoint>> + 'a {
        let this = *self;
        paginate(
            q,
            move |q| async move { this.list(&q).await },
            |q, last| q.starting_after = Some(last.id.clone()),
        )
    }

    /// One endpoint.
    pub async fn get(&self, id: &str) -> Result<WebhookEndpoint> {
        self.client.json(Call::get(endpoint_path(id, ""))).await
    }

    /// Changes an endpoint.
    pub async fn update(&self, id: &str, req: &UpdateWebhook) -> Result<WebhookEndpoint> {
        let call = Call::new(Method::PATCH, endpoint_path(id, "")).json(body(req)?);
        self.client.json(call).await
    }

    /// Deletes an endpoint; returns it as it was.
    pub async fn delete(&self, id: &str) -> Result<WebhookEndpoint> {
        self.client
            .json(Call::new(Method::DELETE, endpoint_path(id, "")))
            .await
    }

    /// A new signing secret (in the answer); the old one keeps signing for 24 h.
    pub async fn rotate_secret(&self, id: &str) -> Result<WebhookEndpoint> {
        let call = Call::new(Method::POST, endpoint_path(id, "/rotate-secret"))
            .idempotent(new_idempotency_key());
        self.client.json(call).await
    }

    /// Queues a `webhook.test` event to the endpoint.
    pub async fn send_test(&self, id: &str) -> Result<Event> {
        let call =
            Call::new(Method::POST, endpoint_path(id, "/test")).idempotent(new_idempotency_key());
        self.client.json(call).await
    }

    /// One page of an endpoint's delivery attempts.
    pub async fn deliveries(&self, id: &str, q: &ListPage) -> Result<Page<DeliveryAttempt>> {
        self.client
            .json(paged(endpoint_path(id, "/deliveries"), q))
            .await
    }

    /// One page of the account's events.
    pub async fn events(&self, q: &ListPage) -> Result<Page<Event>> {
        self.client
            .json(paged("api/v1/webhook-events".into(), q))
            .await
    }
}

fn endpoint_path(id: &str, tail: &str) -> String {
    format!("api/v1/webhooks/{}{tail}", encode_segment(id))
}
