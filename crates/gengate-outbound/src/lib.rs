//! [`Real`]: the engine's [`Connectors`] on real clients. The binary passes it to
//! `Engine::build`; nothing below this crate links an HTTP client or a cloud SDK
//! (docs/ARCHITECTURE.md).

use std::sync::Arc;

use anyhow::Context;
use gengate_engine::infra::connectors::Connectors;
use gengate_transport::{ReqwestTransport, SharedTransport};
use gengate_webhooks::{Deliver, Deliverer, DelivererConfig};
use object_store::ObjectStore;

/// reqwest (rustls, system roots) and object_store's S3 client.
#[derive(Debug, Default, Clone, Copy)]
pub struct Real;

impl Connectors for Real {
    fn api_http(&self) -> anyhow::Result<SharedTransport> {
        Ok(Arc::new(ReqwestTransport::api()?))
    }

    fn download_http(&self) -> anyhow::Result<SharedTransport> {
        Ok(Arc::new(ReqwestTransport::downloads()?))
    }

    fn webhook_deliverer(&self, config: DelivererConfig) -> anyhow::Result<Arc<dyn Deliver>> {
        Ok(Arc::new(Deliverer::new(config)?))
    }

    fn s3_bucket(&self, bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .with_context(|| format!("opening the S3 bucket {bucket}"))?;
        Ok(Arc::new(s3))
    }
}
