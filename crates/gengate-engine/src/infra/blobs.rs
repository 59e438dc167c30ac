//! Blob storage behind `object_store`: local disk by default, any
//! S3-compatible store by configuration. Keys are ours (`results/…`,
//! `files/…`), never caller input.

use crate::infra::connectors::Connectors;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::ops::Range;
use std::sync::Arc;

/// Blobs above this size are stored with a multipart upload.
const MULTIPART_OVER_BYTES: usize = 16 << 20;
const PART_BYTES: usize = 8 << 20;
const PARTS_AT_ONCE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    #[error("blob storage unavailable: {0}")]
    Unavailable(String),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound,
            other => BlobError::Unavailable(other.to_string()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Blobs {
    inner: Arc<dyn ObjectStore>,
}

pub struct BlobRead {
    pub size: u64,
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl Blobs {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    pub fn local(dir: &std::path::Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Unavailable(e.to_string()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)?
            .with_automatic_cleanup(true);
        Ok(Self::new(Arc::new(fs)))
    }

    /// `s3://bucket[/prefix]`; the bucket comes from `connectors` (credentials,
    /// region and endpoint from the usual `AWS_*` environment variables: any
    /// S3-compatible service).
    pub fn s3(url: &str, connectors: &dyn Connectors) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| BlobError::Unavailable("blob URL must start with s3://".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let s3 = connectors.s3_bucket(bucket)?;
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            s3
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                s3,
                prefix.trim_end_matches('/'),
            ))
        };
        Ok(Self::new(inner))
    }

    /// Stores a blob. A large one goes up as a multipart upload (parts of
    /// `PART_BYTES`, a few at once, no copy): no single request carries it
    /// whole, a failed part is retried alone, and S3's 5 GB single-PUT cap
    /// does not apply.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let path = Path::from(key);
        if bytes.len() <= MULTIPART_OVER_BYTES {
            self.inner.put(&path, PutPayload::from_bytes(bytes)).await?;
            return Ok(());
        }
        let upload = self.inner.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut rest = bytes;
        while !rest.is_empty() {
            if let Err(e) = writer.wait_for_capacity(PARTS_AT_ONCE).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            let part = rest.split_to(rest.len().min(PART_BYTES));
            writer.put(part);
        }
        writer.finish().await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        Ok(self.inner.get(&Path::from(key)).await?.bytes().await?)
    }

    pub async fn size(&self, key: &str) -> Result<u64, BlobError> {
        Ok(self.inner.head(&Path::from(key)).await?.size)
    }

    /// Streams a blob or a byte range of it.
    pub async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, BlobError> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let r = self.inner.get_opts(&Path::from(key), opts).await?;
        let size = r.meta.size;
        let range = r.range.clone();
        let stream = r.into_stream().map(|c| c.map_err(BlobError::from)).boxed();
        Ok(BlobRead {
            size,
            range,
            stream,
        })
    }

    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.inner.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
