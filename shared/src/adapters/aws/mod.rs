//! The AWS backend: DynamoDB single table, S3, SQS and SES through the official SDK,
//! plus the SDK configuration and client constructors every function shares.
//! `AWS_ENDPOINT_URL` (honoured by `aws-config` itself) points all three at any
//! compatible endpoint, such as moto in tests.

mod capacity;
mod dynamo;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "ses")]
mod ses;
#[cfg(feature = "sqs")]
mod sqs;

use aws_config::{BehaviorVersion, SdkConfig};

pub use capacity::{CapacityMeter, CapacityUsed};
pub use dynamo::DynamoStore;
#[cfg(feature = "s3")]
pub use s3::S3Blobs;
#[cfg(feature = "ses")]
pub use ses::SesMailer;
#[cfg(feature = "sqs")]
pub use sqs::SqsJobs;

/// Loads the shared SDK configuration (region, credentials, endpoint) from the
/// environment, the way every AWS SDK does. `aws-config` reads
/// `AWS_ENDPOINT_URL` (and `endpoint_url` in the profile) into
/// `SdkConfig::endpoint_url`, so no extra handling is needed here.
///
/// The HTTPS client is hyper with rustls on `ring` (the SDK's default brings
/// `aws-lc`, a second crypto library in every binary); certificates are the
/// platform's, as with the default.
pub async fn sdk_config() -> SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https).load().await
}

/// A DynamoDB client.
pub fn dynamo_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

#[cfg(feature = "s3")]
/// An S3 client. With a custom endpoint (`AWS_ENDPOINT_URL`, e.g. moto) it uses
/// path-style addressing, since such endpoints rarely resolve bucket subdomains.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(s3)
}

#[cfg(feature = "ses")]
/// An SES (v2) client.
pub fn ses_client(config: &SdkConfig) -> aws_sdk_sesv2::Client {
    aws_sdk_sesv2::Client::new(config)
}

#[cfg(feature = "sqs")]
/// An SQS client.
pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

#[cfg(feature = "secrets")]
/// Why the signing key could not be fetched from Secrets Manager.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("get secret {arn}: {message}")]
    Fetch {
        arn: String,
        message: String,
        #[source]
        source: Box<
            aws_sdk_secretsmanager::error::SdkError<
                aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
            >,
        >,
    },
    #[error("secret {0} holds neither a string nor binary value")]
    Empty(String),
    #[error("secret {arn} is not base64 PKCS#8")]
    NotBase64 {
        arn: String,
        #[source]
        source: base64::DecodeError,
    },
}

#[cfg(feature = "secrets")]
/// Fetches the token signing key (`auth` only, once at start-up): the secret's
/// string is the base64 of the PKCS#8 Ed25519 private key; a binary secret is
/// taken as the raw PKCS#8 bytes.
pub async fn fetch_signing_key(
    config: &SdkConfig,
    arn: &str,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    use base64::Engine;
    let client = aws_sdk_secretsmanager::Client::new(config);
    let secret = client.get_secret_value().secret_id(arn).send().await.map_err(|source| SigningKeyError::Fetch {
        arn: arn.to_owned(),
        message: aws_sdk_secretsmanager::error::DisplayErrorContext(&source).to_string(),
        source: Box::new(source),
    })?;
    if let Some(text) = secret.secret_string() {
        let key = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|source| SigningKeyError::NotBase64 { arn: arn.to_owned(), source })?;
        return Ok(key);
    }
    match secret.secret_binary() {
        Some(blob) => Ok(blob.as_ref().to_vec()),
        None => Err(SigningKeyError::Empty(arn.to_owned()).into()),
    }
}
