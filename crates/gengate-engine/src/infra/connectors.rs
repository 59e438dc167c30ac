//! The engine's outbound connections, as one trait the binary implements.
//!
//! The engine calls out in four ways: provider APIs (Kling), downloads of vendor
//! outputs, webhook deliveries, and an S3-compatible bucket. Each goes through a trait
//! object made here, so the engine's build holds no HTTP client and no cloud SDK:
//! `gengate-outbound` makes the real ones (reqwest, object_store's S3 client) and the
//! binary passes them to [`crate::Engine::build`].

use std::sync::Arc;

use gengate_transport::SharedTransport;
use gengate_webhooks::{Deliver, DelivererConfig};
use object_store::ObjectStore;

pub trait Connectors: Send + Sync {
    /// For provider API calls: short connect timeout, answers read whole.
    fn api_http(&self) -> anyhow::Result<SharedTransport>;
    /// For downloading a vendor's output: redirects followed (CDNs use them), a few.
    fn download_http(&self) -> anyhow::Result<SharedTransport>;
    /// Sends webhooks under `config`'s rules (URL policy, one deadline per attempt).
    fn webhook_deliverer(&self, config: DelivererConfig) -> anyhow::Result<Arc<dyn Deliver>>;
    /// The bucket `bucket` of the S3-compatible service the environment configures
    /// (`AWS_*` variables: credentials, region, endpoint).
    fn s3_bucket(&self, bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>>;
}
