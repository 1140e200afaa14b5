//! Adapters: two implementations of every port. `embedded` runs on a laptop
//! (SQLite file plus a blob directory); `aws` runs in Lambda (DynamoDB, S3, SQS).
//! Both enforce the same rules (`rules`), and one contract suite
//! (`shared/tests/contract`) runs unchanged against each.

mod aws;
mod embedded;
pub mod provision;
mod rules;

pub use aws::{
    dynamo_client, fetch_signing_key, s3_client, sdk_config, ses_client, sqs_client, DynamoStore, S3Blobs, SesMailer,
    SigningKeyError, SqsJobs,
};
pub(crate) use embedded::key_file;
pub use embedded::{
    EmbeddedBlobs, EmbeddedJobs, EmbeddedStore, MailDir, StoredMail, UploadRejected, LOCAL_UPLOAD_PATH,
};
