//! What stands in for S3 and CloudFront locally: the gateway accepts presigned
//! uploads it issued (the checks S3 makes: signature over key, content type and
//! length, expiry, and a body of exactly that length), stores them in the blob
//! directory, and sends the bucket's S3 notification to the queue the template
//! names; and it serves keys under `public/` at `/assets/<key>` with the headers
//! the CDN sends (long-lived, immutable, ETag and 304, `nosniff`, a strict
//! `Content-Security-Policy` and `Referrer-Policy`).

use std::path::Path;

use axum::body::Body as AxumBody;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde_json::json;
use shared::adapters::{EmbeddedBlobs, EmbeddedJobs, UploadRejected};
use shared::http::{etag_of, none_match_hits, ApiError};
use shared::ports::{BlobError, BlobStore, JobError, JobQueue};
use shared::repo::products::PUBLIC_PREFIX;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::gateway::problem;
use crate::pump::{open_queue, PumpError};
use crate::template::{BucketNotification, Template};

/// `Cache-Control` of public assets (what the CDN's response headers policy sets).
pub const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// The security headers of public assets, as the CDN's response headers policy
/// sets them: no content sniffing, no script and no referrer.
pub const ASSET_SECURITY_HEADERS: [(&str, &str); 3] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"),
    ("Referrer-Policy", "no-referrer"),
];

/// Why local assets cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error("open the blob directory: {0}")]
    Blobs(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] PumpError),
}

/// The local bucket and CDN.
#[derive(Clone)]
pub struct LocalAssets {
    blobs: EmbeddedBlobs,
    notifications: Vec<(BucketNotification, EmbeddedJobs)>,
}

impl std::fmt::Debug for LocalAssets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAssets").finish_non_exhaustive()
    }
}

impl LocalAssets {
    /// The blob directory of `data_dir` and the queues (in its SQLite file) that
    /// the template's bucket notifications name. Every template bucket maps to the
    /// one local blob directory.
    pub fn open(data_dir: &Path, template: &Template) -> Result<Self, AssetsError> {
        let blobs = EmbeddedBlobs::open(&data_dir.join("blobs"), "")?;
        let db = data_dir.join("marketplace.db");
        let mut notifications = Vec::new();
        for notification in &template.bucket_notifications {
            notifications.push((notification.clone(), open_queue(&db, &notification.queue)?));
        }
        Ok(Self { blobs, notifications })
    }

    /// `GET`/`HEAD /assets/<key>`: public keys only, as the CDN's origin policy allows.
    pub async fn serve(
        &self,
        method: &Method,
        key: &str,
        request: &HeaderMap,
        request_id: &str,
    ) -> http::Response<AxumBody> {
        let not_found = || problem(ApiError::NotFound(format!("no public asset {key:?}")), request_id);
        if !key.starts_with(PUBLIC_PREFIX) {
            return not_found();
        }
        let blob = match self.blobs.get(key).await {
            Ok(Some(blob)) => blob,
            Ok(None) | Err(BlobError::InvalidKey(_)) => return not_found(),
            Err(error) => return problem(ApiError::internal(error), request_id),
        };
        let etag = etag_of(&blob.bytes);
        let not_modified = none_match_hits(request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()), &etag);
        let mut response = http::Response::new(if not_modified || method == Method::HEAD {
            AxumBody::empty()
        } else {
            AxumBody::from(blob.bytes.clone())
        });
        *response.status_mut() = if not_modified { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(ASSET_CACHE_CONTROL));
        for (name, value) in ASSET_SECURITY_HEADERS {
            headers.insert(name, HeaderValue::from_static(value));
        }
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, value);
        }
        if !not_modified {
            if let Ok(value) = HeaderValue::from_str(&blob.content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.bytes.len()));
        }
        response
    }

    /// `PUT /_local/uploads/<key>?expires=..&signature=..`: the checks S3 makes for
    /// a presigned PUT, then the object is stored and the bucket notifies its queue.
    pub async fn accept_upload(
        &self,
        key: &str,
        raw_query: &str,
        request: &HeaderMap,
        body: Bytes,
        request_id: &str,
    ) -> http::Response<AxumBody> {
        let forbidden = |reason: String| problem(ApiError::Forbidden(reason), request_id);
        let query: Vec<(&str, &str)> = raw_query.split('&').filter_map(|pair| pair.split_once('=')).collect();
        let param = |name: &str| query.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let (Some(expires), Some(signature)) =
            (param("expires").and_then(|e| e.parse::<i64>().ok()), param("signature"))
        else {
            return forbidden("the upload URL is not a presigned URL (expires and signature are required)".into());
        };
        let content_type = request.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let length = body.len() as u64;
        match self.blobs.verify_upload(key, content_type, length, expires, signature, OffsetDateTime::now_utc()) {
            Ok(()) => {}
            Err(rejection @ (UploadRejected::Expired | UploadRejected::SignatureMismatch)) => {
                return forbidden(format!("upload refused: {rejection}"));
            }
        }
        if let Err(error) = self.blobs.put(key, body.clone(), content_type).await {
            return problem(ApiError::internal(error), request_id);
        }
        if let Err(error) = self.notify(key, length).await {
            return problem(ApiError::internal(error), request_id);
        }
        let mut response = http::Response::new(AxumBody::empty());
        if let Ok(value) = HeaderValue::from_str(&etag_of(&body)) {
            response.headers_mut().insert(header::ETAG, value);
        }
        response
    }

    /// Sends the S3 `ObjectCreated:Put` notification to every queue whose
    /// notification matches `key`.
    async fn notify(&self, key: &str, size: u64) -> Result<(), JobError> {
        for (notification, queue) in &self.notifications {
            let created = notification.event.starts_with("s3:ObjectCreated:");
            if !created || !key.starts_with(&notification.prefix) {
                continue;
            }
            let event = json!({
                "Records": [{
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "local",
                    "eventTime": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
                    "eventName": "ObjectCreated:Put",
                    "userIdentity": { "principalId": "local" },
                    "requestParameters": { "sourceIPAddress": "127.0.0.1" },
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "bucket": { "name": notification.bucket, "arn": format!("arn:aws:s3:::{}", notification.bucket) },
                        "object": { "key": key, "size": size },
                    },
                }]
            });
            queue.send(&event.to_string()).await?;
        }
        Ok(())
    }
}
