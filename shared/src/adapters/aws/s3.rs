//! The blob store on an S3 bucket: objects keep their content type as S3
//! metadata, and keys follow the same rules as the embedded store.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::LazyClient;
use crate::adapters::rules;
use crate::ports::{Blob, BlobError, BlobStore, PresignedUpload};

/// Content type reported when S3 returns none.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Objects in the bucket `bucket`.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: LazyClient<Client>,
    bucket: String,
}

impl S3Blobs {
    pub fn new(client: impl Into<LazyClient<Client>>, bucket: String) -> Self {
        Self { client: client.into(), bucket }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// Wraps an SDK failure with context, keeping it as the source.
fn sdk_error<E>(context: String, err: SdkError<E>) -> BlobError
where
    E: std::error::Error + Send + Sync + 'static,
{
    BlobError::backend(format!("{context}: {}", DisplayErrorContext(&err)), err)
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), BlobError> {
        rules::check_blob_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error(format!("put blob {key} in bucket {}", self.bucket), e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        rules::check_blob_key(key)?;
        let context = || format!("get blob {key} from bucket {}", self.bucket);
        let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(err) => return Err(sdk_error(context(), err)),
        };
        let content_type = out.content_type().unwrap_or(DEFAULT_CONTENT_TYPE).to_owned();
        let bytes = out.body.collect().await.map_err(|e| BlobError::backend(context(), e))?.into_bytes();
        Ok(Some(Blob { bytes, content_type }))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        rules::check_blob_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(format!("delete blob {key} from bucket {}", self.bucket), e))?;
        Ok(())
    }

    /// SigV4 query-string presigning of `PutObject` with `Content-Type` and
    /// `Content-Length` set, so both are signed headers and S3 refuses an upload
    /// that sends another type or size (or goes to another key).
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedUpload, BlobError> {
        rules::check_blob_key(key)?;
        let context = || format!("presign upload of {key} to bucket {}", self.bucket);
        let config = PresigningConfig::expires_in(expires_in).map_err(|e| BlobError::backend(context(), e))?;
        let length = i64::try_from(content_length).map_err(|e| BlobError::backend(context(), e))?;
        let presigned = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(length)
            .presigned(config)
            .await
            .map_err(|e| sdk_error(context(), e))?;
        let mut headers: Vec<(String, String)> =
            presigned.headers().map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned())).collect();
        for (name, value) in [("content-type", content_type.to_owned()), ("content-length", content_length.to_string())]
        {
            if !headers.iter().any(|(n, _)| n == name) {
                headers.push((name.to_owned(), value));
            }
        }
        Ok(PresignedUpload {
            url: presigned.uri().to_owned(),
            headers,
            expires_at: time::OffsetDateTime::now_utc() + expires_in,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        rules::check_blob_prefix(prefix)?;
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(format!("list blobs under {prefix:?} in bucket {}", self.bucket), e))?;
            keys.extend(out.contents().iter().filter_map(|object| object.key().map(str::to_owned)));
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }
}
