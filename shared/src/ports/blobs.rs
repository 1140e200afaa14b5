//! The blob store port: objects by key (S3 in AWS, a directory locally).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;

/// A stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub bytes: Bytes,
    pub content_type: String,
}

/// A presigned upload: `PUT` the object's bytes to `url` with exactly `headers`
/// before `expires_at`. The signature covers the key, content type and length, so
/// the store refuses another key, type or size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    pub url: String,
    /// Lower-case header names and the values the upload must send.
    pub headers: Vec<(String, String)>,
    pub expires_at: OffsetDateTime,
}

/// Blob store failures; each becomes an opaque 500 unless a handler maps it.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// 400: the key is empty, absolute, or contains `..` or a backslash.
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    /// 500: the backend failed.
    #[error("{context}")]
    Backend {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BlobError {
    pub fn backend(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        BlobError::Backend { context: context.into(), source: source.into() }
    }
}

/// Object storage. Keys are `/`-separated relative paths such as `public/ab/cd.jpg`.
#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), BlobError>;
    /// `None` when no object has that key.
    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError>;
    /// Deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Keys under `prefix`, in ascending order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;
    /// A presigned `PUT` of `content_length` bytes of `content_type` to `key`,
    /// valid for `expires_in`.
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedUpload, BlobError>;
}
