//! The blob store on an S3 bucket: objects keep their content type as S3
//! metadata, and keys follow the same rules as the embedded store.

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use crate::adapters::rules;
use crate::ports::{Blob, BlobError, BlobStore};

/// Content type reported when S3 returns none.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Objects in the bucket `bucket`.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: Client,
    bucket: String,
}

impl S3Blobs {
    pub fn new(client: Client, bucket: String) -> Self {
        Self { client, bucket }
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
