//! The `worker` function: consumes the jobs queue. Its jobs are the
//! application's own (`shared::jobs::Job`: send a mail, issue a password
//! reset, sync a farmer's products with the account, and order events from the
//! outbox: notifications, mail and sales figures, each once) and S3 notifications of
//! uploaded product photos. Each upload is checked against its
//! ticket (real size, magic bytes, decodable, sane dimensions), published
//! without its metadata (EXIF, XMP, trailing bytes) and with a thumbnail under
//! public keys of its own, and attached to its product once, however often the
//! notification arrives. When attaching is refused (the product is full,
//! unlisted or gone) what was published is deleted again, so nothing stays
//! public that no product shows. Uploads failing a check are deleted. Messages that cannot be processed (malformed, or a backend failure)
//! are reported as batch item failures, so only they are retried and, after the
//! queue's `maxReceiveCount`, land in the dead-letter queue.

mod images;
mod metadata;

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use shared::catalogue::{
    parse_upload_object_key, Attachment, CatalogueError, UploadTicket, INCOMING_PREFIX, PUBLIC_PREFIX,
};
use shared::domain::{ImageFormat, ImageId, ProductId, ProductImage};
use shared::jobs::Job;
use shared::ports::{BlobError, StoreError};
use shared::{accounts, catalogue, orders, AppState};
use tracing::Instrument;

pub use images::{check_and_thumbnail, Checked, Rejection, MAX_SIDE, MIN_SIDE, THUMBNAIL_SIDE};

/// Why a message failed; it stays on the queue and is retried.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// Poison: no retry will help; it ends in the dead-letter queue.
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("the product kept changing while attaching an image")]
    Busy,
    #[error("image work panicked: {0}")]
    Panicked(String),
    #[error(transparent)]
    Mail(#[from] shared::ports::MailError),
    #[error(transparent)]
    Account(#[from] shared::accounts::AccountError),
    #[error(transparent)]
    Catalogue(#[from] shared::catalogue::CatalogueError),
    #[error(transparent)]
    Order(#[from] shared::orders::OrderError),
}

/// S3 sends a one-off `{"Event": "s3:TestEvent", ...}` (no `Records`) when a
/// notification is configured: not an upload.
fn is_s3_test_event(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .is_ok_and(|value| value.get("Records").is_none() && value["Event"] == "s3:TestEvent")
}

/// What became of one upload (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Attached {
        product_id: ProductId,
        image_id: ImageId,
    },
    AlreadyAttached,
    /// The object is gone: handled by an earlier delivery, or expired.
    AlreadyHandled,
    Rejected(String),
    Ignored(String),
    /// A mail went out with this provider id.
    Mailed(String),
    /// A password reset: whether an account had the address (a mail was queued).
    ResetRequested {
        account_found: bool,
    },
    /// A farmer sync changed this many products.
    FarmerSynced {
        products_changed: usize,
    },
    /// An order event: whether it notified and counted (false for a duplicate).
    OrderEvent {
        notified: bool,
        sales_applied: bool,
    },
}

/// Processes one SQS batch, reporting the messages that failed.
pub async fn handle(state: &AppState, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let message_id = message.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("job", message_id = %message_id);
        let result = process_message(state, &message).instrument(span.clone()).await;
        let _entered = span.enter();
        match result {
            Ok(outcomes) => tracing::info!(outcomes = ?outcomes, "job done"),
            Err(failure) => {
                tracing::warn!(error = %failure, "job failed; it will be retried");
                response.add_failure(message_id);
            }
        }
    }
    response
}

async fn process_message(state: &AppState, message: &SqsMessage) -> Result<Vec<Outcome>, JobFailure> {
    let body = message.body.as_deref().ok_or_else(|| JobFailure::Malformed("no body".into()))?;
    let mut value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| JobFailure::Malformed(format!("not JSON: {e}")))?;
    // The outbox relay may hand a job over as a JSON string holding the job.
    if let Some(inner) = value.as_str().and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok()) {
        value = inner;
    }
    if value.get("job").is_some() {
        let job: Job = serde_json::from_value(value).map_err(|e| JobFailure::Malformed(format!("bad job: {e}")))?;
        return Ok(vec![run_job(state, job).await?]);
    }
    let notification: S3Event = match serde_json::from_str(body) {
        Ok(notification) => notification,
        Err(_) if is_s3_test_event(body) => return Ok(vec![Outcome::Ignored("s3:TestEvent".into())]),
        Err(e) => return Err(JobFailure::Malformed(format!("not an S3 notification: {e}"))),
    };
    // Every record is checked before any is processed.
    let records = notification
        .records
        .into_iter()
        .map(|record| match (record.event_name, record.s3.object.key) {
            (Some(event_name), Some(key)) => Ok((event_name, key)),
            _ => Err(JobFailure::Malformed("an S3 record without eventName or object key".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut outcomes = Vec::new();
    for (event_name, key) in records {
        if !event_name.starts_with("ObjectCreated:") {
            outcomes.push(Outcome::Ignored(event_name));
            continue;
        }
        outcomes.push(process_upload(state, &key).await?);
    }
    Ok(outcomes)
}

/// Runs one of the application's jobs.
pub async fn run_job(state: &AppState, job: Job) -> Result<Outcome, JobFailure> {
    match job {
        Job::SendEmail { mail } => {
            let mailer = state.mailer.as_ref().ok_or_else(|| JobFailure::Malformed("no mailer configured".into()))?;
            Ok(Outcome::Mailed(mailer.send(&mail).await?))
        }
        Job::PasswordReset { email } => {
            let account_found = accounts::issue_password_reset(state, &email).await?;
            Ok(Outcome::ResetRequested { account_found })
        }
        Job::SyncFarmer { farmer_id } => {
            let products_changed = catalogue::sync_farmer(state, farmer_id).await?;
            Ok(Outcome::FarmerSynced { products_changed })
        }
        Job::OrderPlaced(event) | Job::OrderStatusChanged(event) => {
            let effects = orders::on_event(state, &event).await?;
            Ok(Outcome::OrderEvent { notified: effects.notified, sales_applied: effects.sales_applied })
        }
    }
}

/// Checks, stores and attaches one uploaded object. Every path that does not
/// fail leaves nothing under the incoming prefix and no ticket behind.
pub async fn process_upload(state: &AppState, key: &str) -> Result<Outcome, JobFailure> {
    let blobs = state.blobs.as_ref().ok_or_else(|| JobFailure::Malformed("no blob store configured".into()))?;
    let Some((product_id, image_id)) = parse_upload_object_key(key) else {
        if key.starts_with(INCOMING_PREFIX) {
            blobs.delete(key).await?;
        }
        return Ok(Outcome::Ignored(format!("not an upload key: {key}")));
    };
    let ticket = catalogue::upload_ticket(state, image_id).await?;
    let Some(ticket) = ticket.filter(|t| t.object_key == key && t.product_id == product_id) else {
        blobs.delete(key).await?;
        return Ok(Outcome::Rejected("no ticket was issued for this key".into()));
    };
    let Some(blob) = blobs.get(key).await? else {
        // An earlier delivery got as far as deleting the upload (which it does
        // only after attaching or rejecting it) but may have failed before
        // freeing the ticket's slot: free it now rather than when its hold lapses.
        catalogue::delete_ticket(state, &ticket).await?;
        return Ok(Outcome::AlreadyHandled);
    };
    let format = ImageFormat::from_content_type(&ticket.content_type)
        .ok_or_else(|| JobFailure::Malformed(format!("ticket has content type {}", ticket.content_type)))?;
    let bytes = blob.bytes.clone();
    let announced = ticket.size;
    let checked = tokio::task::spawn_blocking(move || check_and_thumbnail(&bytes, format, announced))
        .await
        .map_err(|e| JobFailure::Panicked(e.to_string()))?;
    let checked = match checked {
        Ok(checked) => checked,
        Err(rejection) => {
            tracing::info!(image_id = %image_id, reason = %rejection, "upload rejected");
            discard(state, &ticket).await?;
            return Ok(Outcome::Rejected(rejection.to_string()));
        }
    };
    let original_key = public_key("images", product_id, image_id, &checked.original, format.extension());
    let thumbnail_key = public_key("thumbs", product_id, image_id, &checked.thumbnail, "jpg");
    blobs.put(&original_key, Bytes::from(checked.original), format.content_type()).await?;
    blobs.put(&thumbnail_key, Bytes::from(checked.thumbnail), "image/jpeg").await?;
    let image = ProductImage {
        id: image_id,
        key: original_key,
        thumbnail_key,
        width: checked.width,
        height: checked.height,
        content_type: format.content_type().to_owned(),
    };
    let published = [image.key.clone(), image.thumbnail_key.clone()];
    let outcome = attach(state, product_id, image).await?;
    if matches!(outcome, Outcome::Rejected(_)) {
        // No product shows this image: unpublish it (the keys are its own).
        for key in &published {
            blobs.delete(key).await?;
        }
    }
    discard(state, &ticket).await?;
    Ok(outcome)
}

/// `public/<kind>/<product>/<image>-<sha256 prefix>.<ext>`: one image's own key
/// (so unpublishing it can never remove another product's photo), named by its
/// content, so it is immutable and cacheable forever.
fn public_key(kind: &str, product: ProductId, image: ImageId, bytes: &[u8], extension: &str) -> String {
    let digest = hex::encode(Sha256::digest(bytes));
    format!("{PUBLIC_PREFIX}{kind}/{product}/{image}-{}.{extension}", &digest[..16])
}

/// Removes the incoming object and its ticket (freeing its product's slot).
async fn discard(state: &AppState, ticket: &UploadTicket) -> Result<(), JobFailure> {
    if let Some(blobs) = &state.blobs {
        blobs.delete(&ticket.object_key).await?;
    }
    catalogue::delete_ticket(state, ticket).await?;
    Ok(())
}

/// Adds `image` to the product (`catalogue::attach_image`); a product that kept
/// changing under every attempt is `Busy`.
async fn attach(state: &AppState, product_id: ProductId, image: ProductImage) -> Result<Outcome, JobFailure> {
    let image_id = image.id;
    match catalogue::attach_image(state, product_id, image).await {
        Ok(Attachment::Attached) => Ok(Outcome::Attached { product_id, image_id }),
        Ok(Attachment::AlreadyAttached) => Ok(Outcome::AlreadyAttached),
        Ok(Attachment::Rejected(reason)) => Ok(Outcome::Rejected(reason)),
        Err(CatalogueError::Conflict(_)) => Err(JobFailure::Busy),
        Err(CatalogueError::Store(e)) => Err(e.into()),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_upload_keys_parse() {
        let product = ProductId::new();
        let image = ImageId::new();
        let key = shared::catalogue::upload_object_key(product, image);
        assert_eq!(parse_upload_object_key(&key), Some((product, image)));
        assert_eq!(parse_upload_object_key(&format!("public/{product}/{image}")), None);
        assert_eq!(parse_upload_object_key(&format!("incoming/{product}")), None);
        assert_eq!(parse_upload_object_key(&format!("{key}/x")), None);
    }

    #[test]
    fn public_keys_are_stable_per_image_and_differ_by_content() {
        let (product, image) = (ProductId::new(), ImageId::new());
        let a = public_key("images", product, image, b"one", "jpg");
        assert_eq!(a, public_key("images", product, image, b"one", "jpg"));
        assert_ne!(a, public_key("images", product, image, b"two", "jpg"));
        assert_ne!(a, public_key("images", product, ImageId::new(), b"one", "jpg"));
        assert!(a.starts_with(&format!("public/images/{product}/{image}-")) && a.ends_with(".jpg"));
    }
}
