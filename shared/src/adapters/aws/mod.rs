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

use std::sync::{Arc, LazyLock};

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
/// `aws-lc`, a second crypto library in every binary). Its trust store is
/// `trust_store()`.
pub async fn sdk_config() -> SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext};
    let tls =
        TlsContext::builder().with_trust_store(trust_store()).build().expect("a trust store is a valid TLS context");
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https).load().await
}

/// The roots every AWS service endpoint chains to: Amazon Trust Services'
/// Amazon Root CA 1-4 and Starfield Services Root Certificate Authority - G2,
/// the five ATS recommends for a custom trust store
/// (<https://www.amazontrust.com/repository/>; the test checks their key hashes).
const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("amazon-trust-services-roots.pem");

/// In Lambda, where a function only talks to AWS endpoints, the five Amazon
/// Trust Services roots; elsewhere (the admin tool, tests, a custom HTTPS
/// endpoint) the platform's roots, as the SDK's default.
///
/// Why not the platform's everywhere: the SDK loads them while the function
/// initialises (every certificate file under the system's certificate
/// directories, parsed from PEM), a large share of a function's init; five
/// compiled-in roots cost next to nothing (see BENCHMARKS.md).
fn trust_store() -> aws_smithy_http_client::tls::TrustStore {
    use aws_smithy_http_client::tls::TrustStore;
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS)
    } else {
        TrustStore::default()
    }
}

/// An SDK client built on first use, shared by clones.
///
/// Building a client is not free (mostly the client's endpoint rules setting
/// up their partition table; see BENCHMARKS.md). A function builds at init
/// only the DynamoDB client its requests all need; the S3, SQS and SES clients
/// wait for the first call that uses them, so the worker's init builds one
/// client instead of four and a batch of mail never builds S3's.
pub struct LazyClient<C>(Arc<LazyLock<C, Box<dyn FnOnce() -> C + Send>>>);

impl<C: 'static> LazyClient<C> {
    /// A client `build` makes from `config` when first used.
    pub fn new(config: &SdkConfig, build: fn(&SdkConfig) -> C) -> Self {
        let config = config.clone();
        Self(Arc::new(LazyLock::new(Box::new(move || build(&config)))))
    }
}

/// A client already built (tests and tools that make their own).
impl<C: Send + 'static> From<C> for LazyClient<C> {
    fn from(client: C) -> Self {
        Self(Arc::new(LazyLock::new(Box::new(move || client))))
    }
}

impl<C> Clone for LazyClient<C> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<C> std::ops::Deref for LazyClient<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> std::fmt::Debug for LazyClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient").finish_non_exhaustive()
    }
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
/// Why a key (the token signing key, the backup key) could not be fetched from Secrets Manager.
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
/// A secret's value as Secrets Manager holds it.
enum SecretValue {
    Text(String),
    Binary(Vec<u8>),
}

#[cfg(feature = "secrets")]
/// Reads secret `arn` once (each caller at start-up).
async fn fetch_secret(config: &SdkConfig, arn: &str) -> Result<SecretValue, SigningKeyError> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let secret = client.get_secret_value().secret_id(arn).send().await.map_err(|source| SigningKeyError::Fetch {
        arn: arn.to_owned(),
        message: aws_sdk_secretsmanager::error::DisplayErrorContext(&source).to_string(),
        source: Box::new(source),
    })?;
    match (secret.secret_string(), secret.secret_binary()) {
        (Some(text), _) => Ok(SecretValue::Text(text.trim().to_owned())),
        (None, Some(blob)) => Ok(SecretValue::Binary(blob.as_ref().to_vec())),
        (None, None) => Err(SigningKeyError::Empty(arn.to_owned())),
    }
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
    match fetch_secret(config, arn).await? {
        SecretValue::Text(text) => Ok(base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|source| SigningKeyError::NotBase64 { arn: arn.to_owned(), source })?),
        SecretValue::Binary(bytes) => Ok(bytes),
    }
}

#[cfg(feature = "secrets")]
/// Fetches the key backup manifests are signed with (the backup function and
/// an operator's restore): the secret string's bytes (the template generates
/// it as 64 letters and digits), or a binary secret's bytes.
pub async fn fetch_backup_key(
    config: &SdkConfig,
    arn: &str,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(match fetch_secret(config, arn).await? {
        SecretValue::Text(text) => text.into_bytes(),
        SecretValue::Binary(bytes) => bytes,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use sha2::{Digest, Sha256};

    /// SHA-256 of each root's subjectPublicKeyInfo, as Amazon Trust Services
    /// publishes them (<https://www.amazontrust.com/repository/>).
    const PUBLISHED_KEY_HASHES: [&str; 5] = [
        "fbe3018031f9586bcbf41727e417b7d1c45c2f47f93be372a17b96b50757d5a2", // Amazon Root CA 1
        "7f4296fc5b6a4e3b35d3c369623e364ab1af381d8fa7121533c9d6c633ea2461", // Amazon Root CA 2
        "36abc32656acfc645c61b71613c4bf21c787f5cabbee48348d58597803d7abc9", // Amazon Root CA 3
        "f7ecded5c66047d28ed6466b543c40e0743abe81d109254dcf845d4c2c7853c5", // Amazon Root CA 4
        "2b071c59a0a0ae76b0eadb2bad23bad4580b69c3601b630c2eaf0613afa83f92", // Starfield Services Root G2
    ];

    /// A DER length prefix (the trust anchor holds the SPKI's contents only).
    fn der_sequence(contents: &[u8]) -> Vec<u8> {
        let len = contents.len();
        let mut out = vec![0x30];
        match len {
            0..=0x7f => out.push(len as u8),
            0x80..=0xff => out.extend([0x81, len as u8]),
            _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    #[test]
    fn the_compiled_in_roots_are_exactly_the_five_amazon_trust_services_publishes() {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(super::AMAZON_TRUST_SERVICES_ROOTS)
            .collect::<Result<_, _>>()
            .expect("the bundle is valid PEM");
        let hashes: Vec<String> = certs
            .iter()
            .map(|cert| {
                let anchor = webpki::anchor_from_trusted_cert(cert).expect("each is a usable trust anchor");
                hex::encode(Sha256::digest(der_sequence(&anchor.subject_public_key_info)))
            })
            .collect();
        assert_eq!(hashes, PUBLISHED_KEY_HASHES);
    }

    #[test]
    fn a_lazy_client_is_built_once_on_first_use_and_shared_by_clones() {
        static BUILT: AtomicUsize = AtomicUsize::new(0);
        fn build(config: &super::SdkConfig) -> String {
            BUILT.fetch_add(1, Ordering::SeqCst);
            config.region().map(ToString::to_string).unwrap_or_default()
        }
        let config = super::SdkConfig::builder().region(aws_config::Region::new("eu-west-1")).build();
        let client = super::LazyClient::new(&config, build);
        let copy = client.clone();
        assert_eq!(BUILT.load(Ordering::SeqCst), 0, "built before first use");
        assert_eq!(copy.as_str(), "eu-west-1");
        assert_eq!(client.as_str(), "eu-west-1");
        assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    }
}
