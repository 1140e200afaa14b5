//! Adapters: two implementations of every port. `embedded` runs on a laptop
//! (SQLite file plus a blob directory); `aws` runs in Lambda (DynamoDB, S3, SQS).
//! Both enforce the same rules (`rules`), and one contract suite
//! (`shared/tests/contract`) runs unchanged against each. Each adapter is
//! behind the crate feature of the same name (`aws` is DynamoDB; see Cargo.toml).

#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "embedded")]
mod embedded;
#[cfg(all(feature = "s3", feature = "sqs"))]
pub mod provision;
// Some rules serve only the embedded or the S3 adapter, left out of builds
// without them.
#[cfg_attr(not(all(feature = "embedded", feature = "s3")), allow(dead_code))]
mod rules;

#[cfg(feature = "aws")]
pub use aws::{dynamo_client, sdk_config, CapacityMeter, CapacityUsed, DynamoStore, LazyClient};
#[cfg(feature = "secrets")]
pub use aws::{fetch_backup_key, fetch_signing_key, SigningKeyError};
#[cfg(feature = "s3")]
pub use aws::{s3_client, S3Blobs};
#[cfg(feature = "ses")]
pub use aws::{ses_client, SesMailer};
#[cfg(feature = "sqs")]
pub use aws::{sqs_client, SqsJobs};
#[cfg(feature = "embedded")]
pub(crate) use embedded::key_file;
#[cfg(feature = "embedded")]
pub use embedded::{
    wake, EmbeddedBlobs, EmbeddedJobs, EmbeddedStore, MailDir, StoredMail, UploadRejected, LOCAL_UPLOAD_PATH,
};
