//! Configuration, read once at start-up, and the `AppState` every handler receives.
//!
//! Outside Lambda with no `TABLE_NAME`, the embedded backend lives in a local data
//! directory (`DATA_DIR`, default `.data`), and the token key pair is generated
//! once into it; the local gateway at `LOCAL_BASE_URL` (default
//! `http://127.0.0.1:3000`) accepts presigned uploads and serves public assets
//! under `/assets`. Inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) every setting the
//! function needs must be present: a missing one is a start-up error, never a
//! silent fall-back to the embedded store. Every function may also accept
//! tokens of the previous signing key (`TOKEN_PREVIOUS_PUBLIC_KEY`, during a
//! key rotation). Functions that queue jobs name the
//! queue (`JOBS_QUEUE_URL`); those writing mailed links name where links point
//! (`LINK_BASE_URL`); the worker sends mail through SES as `MAIL_FROM`. Locally,
//! mail goes to the mailbox directory `<DATA_DIR>/mail`, and links point at the
//! local gateway's `/_local/links` pages. The order limits (`OrderLimits`) are
//! read here for every function, with their defaults when unset.

#[cfg(feature = "embedded")]
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::adapters;
#[cfg(feature = "aws")]
use crate::adapters::DynamoStore;
#[cfg(feature = "embedded")]
use crate::adapters::{EmbeddedBlobs, EmbeddedJobs, EmbeddedStore, MailDir};
use crate::http::Cursors;
use crate::ports::{BlobStore, Clock, JobQueue, Mailer, Store, StoreError, SystemClock};
use crate::tokens::{TokenError, TokenKeys};

/// Start-up failures: the process refuses to serve.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing setting {0}: inside Lambda the template must set it")]
    Missing(&'static str),
    #[error("invalid setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("local data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("open {what}: {source}")]
    Open {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("token keys: {0}")]
    Keys(#[from] TokenError),
    #[error("setting {name} needs the {feature} client, which this build leaves out (enable the marketplace-shared feature {feature:?} for this function)")]
    NotLinked { name: &'static str, feature: &'static str },
    #[error("no TABLE_NAME, and this build has no embedded backend (Lambda builds leave it out): set TABLE_NAME, or build with the feature \"embedded\"")]
    NoEmbeddedBackend,
    #[error("TABLE_NAME is set, and this build has no AWS backend (the local stack leaves it out): unset TABLE_NAME, or build with the feature \"aws\"")]
    NoAwsBackend,
}

/// Whether this process may sign tokens (only `auth`) or only verify them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Verify,
    Sign,
}

/// Which backend serves the ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Embedded { data_dir: PathBuf },
    Aws { table: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded { .. } => "embedded",
            Backend::Aws { .. } => "aws",
        }
    }
}

/// Lifetimes of the tokens `auth` issues.
#[derive(Debug, Clone, Copy)]
pub struct TokenSettings {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self { access_ttl: Duration::from_secs(15 * 60), refresh_ttl: Duration::from_secs(30 * 24 * 3600) }
    }
}

/// What one customer may hold open, and how long an order waits for its
/// farmer: `MAX_OPEN_ORDERS` (default 10) pending or confirmed orders,
/// `MAX_OPEN_UNITS_PER_PRODUCT` (default 100) units of one product across
/// them, `PENDING_ORDER_HOURS` (default 48) before a pending order expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLimits {
    pub max_open_orders: i64,
    pub max_open_units_per_product: i64,
    pub pending_expiry: time::Duration,
    /// Checkouts one account may start per minute (not a setting).
    pub checkouts_per_minute: i64,
}

impl Default for OrderLimits {
    fn default() -> Self {
        Self {
            max_open_orders: 10,
            max_open_units_per_product: 100,
            pending_expiry: time::Duration::hours(48),
            checkouts_per_minute: 10,
        }
    }
}

impl OrderLimits {
    fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let count = |name, default: i64| positive_setting(name, default as u64).map(|n| n.min(i64::MAX as u64) as i64);
        Ok(Self {
            max_open_orders: count("MAX_OPEN_ORDERS", defaults.max_open_orders)?,
            max_open_units_per_product: count("MAX_OPEN_UNITS_PER_PRODUCT", defaults.max_open_units_per_product)?,
            pending_expiry: time::Duration::hours(count("PENDING_ORDER_HOURS", defaults.pending_expiry.whole_hours())?),
            ..defaults
        })
    }
}

/// Everything a handler needs, built once per process and shared by reference.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Absent where the function's template entry names no bucket.
    pub blobs: Option<Arc<dyn BlobStore>>,
    /// Absent where the function's template entry names no queue.
    pub jobs: Option<Arc<dyn JobQueue>>,
    pub clock: Arc<dyn Clock>,
    pub tokens: Arc<TokenKeys>,
    pub token_settings: TokenSettings,
    pub order_limits: OrderLimits,
    pub backend: Backend,
    /// Base URL of public assets (the CloudFront distribution; the local gateway's
    /// `/assets`): an object with key `k` is at `<base>/<k>`. Absent where the
    /// function's template entry names no bucket.
    pub assets_base_url: Option<String>,
    /// Absent where the function's template entry names no sender (only the
    /// worker sends mail).
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Where the links in mail point (the frontend; locally the gateway's
    /// `/_local/links` pages): `<base>/verify-email?token=…`,
    /// `<base>/reset-password?token=…`. Absent where no mail is written.
    pub link_base_url: Option<String>,
    pub counters: Arc<crate::telemetry::Counters>,
    /// The private data bucket (`DATA_BUCKET`; locally `<DATA_DIR>/data`): the
    /// order archive and backups. Absent where the function's template entry
    /// names no data bucket.
    pub data_bucket: Option<Arc<dyn BlobStore>>,
    /// The pagination cursor keys, read from the store on first use (see `cursors`).
    pub cursor_keys: Arc<tokio::sync::OnceCell<Cursors>>,
}

/// The embedded jobs queue the local gateway pumps to the worker: the
/// template's logical id of the jobs queue.
pub const LOCAL_JOBS_QUEUE: &str = "JobsQueue";
/// The local gateway path of the development pages the mail links open.
pub const LOCAL_LINKS_PATH: &str = "/_local/links";

/// Where the local gateway listens unless told otherwise.
pub const DEFAULT_LOCAL_BASE_URL: &str = "http://127.0.0.1:3000";
/// The local gateway path serving the blob directory as a CDN would.
pub const LOCAL_ASSETS_PATH: &str = "/assets";

/// Reads a non-empty environment variable.
fn setting(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A positive integer setting, or `default` when unset.
pub fn positive_setting(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match setting(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ConfigError::Invalid { name, reason: format!("{raw:?} is not a positive integer") }),
    }
}

fn seconds_setting(name: &'static str, default: Duration, unit_secs: u64) -> Result<Duration, ConfigError> {
    match setting(name) {
        None => Ok(default),
        Some(_) => Ok(Duration::from_secs(positive_setting(name, 1)? * unit_secs)),
    }
}

impl AppState {
    /// Builds the state from the environment (see the module doc).
    pub async fn from_env(key_use: KeyUse) -> Result<Self, ConfigError> {
        // `MARKETPLACE_BACKEND=embedded` is an explicit opt-in for Lambda
        // emulators (`cargo lambda watch` sets AWS_LAMBDA_FUNCTION_NAME too); the
        // template never sets it, so a deployed function cannot fall back.
        let forced_embedded = match setting("MARKETPLACE_BACKEND").as_deref() {
            None => false,
            Some("embedded") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "MARKETPLACE_BACKEND",
                    reason: format!("{other:?} is not a backend; only \"embedded\" can be forced"),
                })
            }
        };
        let in_lambda = setting("AWS_LAMBDA_FUNCTION_NAME").is_some() && !forced_embedded;
        let token_settings = TokenSettings {
            access_ttl: seconds_setting("ACCESS_TOKEN_TTL_SECONDS", TokenSettings::default().access_ttl, 1)?,
            refresh_ttl: seconds_setting("REFRESH_TOKEN_TTL_DAYS", TokenSettings::default().refresh_ttl, 24 * 3600)?,
        };
        let order_limits = OrderLimits::from_env()?;
        let table = setting("TABLE_NAME");
        if forced_embedded || (table.is_none() && !in_lambda) {
            #[cfg(feature = "embedded")]
            {
                let data_dir = PathBuf::from(setting("DATA_DIR").unwrap_or_else(|| ".data".into()));
                let base_url = setting("LOCAL_BASE_URL").unwrap_or_else(|| DEFAULT_LOCAL_BASE_URL.into());
                let mut state = Self::embedded_serving(&data_dir, &base_url).await?;
                state.token_settings = token_settings;
                state.order_limits = order_limits;
                return Ok(state);
            }
            #[cfg(not(feature = "embedded"))]
            return Err(ConfigError::NoEmbeddedBackend);
        }
        let table = table.ok_or(ConfigError::Missing("TABLE_NAME"))?;
        #[cfg(feature = "aws")]
        return Self::on_aws(table, key_use, token_settings, order_limits).await;
        #[cfg(not(feature = "aws"))]
        {
            let _ = (table, key_use);
            Err(ConfigError::NoAwsBackend)
        }
    }

    /// The AWS backend: DynamoDB table `table`, and the clients the other
    /// settings name.
    #[cfg(feature = "aws")]
    async fn on_aws(
        table: String,
        key_use: KeyUse,
        token_settings: TokenSettings,
        order_limits: OrderLimits,
    ) -> Result<Self, ConfigError> {
        let sdk = adapters::sdk_config().await;
        let tokens = match key_use {
            KeyUse::Sign => TokenKeys::from_pkcs8(&signing_key(&sdk).await?)?,
            KeyUse::Verify => {
                let public = setting("TOKEN_PUBLIC_KEY").ok_or(ConfigError::Missing("TOKEN_PUBLIC_KEY"))?;
                TokenKeys::from_public_key_b64(&public)?
            }
        };
        // During a key rotation, tokens of the previous key keep working.
        let tokens = tokens.with_previous_public_key_b64(&setting("TOKEN_PREVIOUS_PUBLIC_KEY").unwrap_or_default())?;
        let blobs = bucket(&sdk, "ASSETS_BUCKET")?;
        let assets_base_url = match (&blobs, setting("ASSETS_BASE_URL")) {
            (Some(_), None) => return Err(ConfigError::Missing("ASSETS_BASE_URL")),
            (_, url) => url.map(|u| u.trim_end_matches('/').to_owned()),
        };
        Ok(Self {
            store: Arc::new(DynamoStore::new(adapters::dynamo_client(&sdk), table.clone())),
            blobs,
            jobs: jobs_queue(&sdk)?,
            clock: Arc::new(SystemClock),
            tokens: Arc::new(tokens),
            token_settings,
            order_limits,
            backend: Backend::Aws { table },
            assets_base_url,
            mailer: mailer(&sdk)?,
            link_base_url: setting("LINK_BASE_URL").map(|url| url.trim_end_matches('/').to_owned()),
            counters: Default::default(),
            data_bucket: bucket(&sdk, "DATA_BUCKET")?,
            cursor_keys: Default::default(),
        })
    }

    /// The keys that sign and check pagination cursors: the store's cursor key
    /// item (`repo::cursor_key`, created on first use), read once per process.
    pub async fn cursors(&self) -> Result<&Cursors, StoreError> {
        self.cursor_keys.get_or_try_init(|| crate::repo::cursor_key::load_or_create(self.store.as_ref())).await
    }

    /// The embedded backend in `data_dir` behind a local gateway at the default
    /// address (see `embedded_serving`).
    #[cfg(feature = "embedded")]
    pub async fn embedded(data_dir: &Path) -> Result<Self, ConfigError> {
        Self::embedded_serving(data_dir, DEFAULT_LOCAL_BASE_URL).await
    }

    /// The embedded backend in `data_dir`: `marketplace.db` (items and jobs),
    /// `blobs/`, `data/` (the data bucket), and `signing-key.pk8`, each created on first use. Upload tickets
    /// and asset URLs point at the local gateway serving at `base_url`.
    #[cfg(feature = "embedded")]
    pub async fn embedded_serving(data_dir: &Path, base_url: &str) -> Result<Self, ConfigError> {
        let base_url = base_url.trim_end_matches('/');
        std::fs::create_dir_all(data_dir).map_err(|source| ConfigError::DataDir { path: data_dir.into(), source })?;
        let db = data_dir.join("marketplace.db");
        let store =
            EmbeddedStore::open(&db).map_err(|e| ConfigError::Open { what: "embedded store", source: e.into() })?;
        let blobs = EmbeddedBlobs::open(&data_dir.join("blobs"), base_url)
            .map_err(|e| ConfigError::Open { what: "embedded blob store", source: e.into() })?;
        let jobs = EmbeddedJobs::open(&db, LOCAL_JOBS_QUEUE)
            .map_err(|e| ConfigError::Open { what: "embedded job queue", source: e.into() })?;
        let data_bucket = EmbeddedBlobs::open(&data_dir.join("data"), base_url)
            .map_err(|e| ConfigError::Open { what: "embedded data bucket", source: e.into() })?;
        let pkcs8 = local_signing_key(data_dir)?;
        Ok(Self {
            store: Arc::new(store),
            blobs: Some(Arc::new(blobs)),
            jobs: Some(Arc::new(jobs)),
            clock: Arc::new(SystemClock),
            tokens: Arc::new(TokenKeys::from_pkcs8(&pkcs8)?),
            token_settings: TokenSettings::default(),
            order_limits: OrderLimits::default(),
            backend: Backend::Embedded { data_dir: data_dir.into() },
            assets_base_url: Some(format!("{base_url}{LOCAL_ASSETS_PATH}")),
            mailer: Some(Arc::new(MailDir::new(&data_dir.join("mail")))),
            link_base_url: Some(format!("{base_url}{LOCAL_LINKS_PATH}")),
            counters: Default::default(),
            data_bucket: Some(Arc::new(data_bucket)),
            cursor_keys: Default::default(),
        })
    }
}

/// The S3 bucket the setting `name` names, if set.
#[cfg(feature = "aws")]
fn bucket(sdk: &aws_config::SdkConfig, name: &'static str) -> Result<Option<Arc<dyn BlobStore>>, ConfigError> {
    let Some(bucket) = setting(name) else { return Ok(None) };
    #[cfg(feature = "s3")]
    return Ok(Some(Arc::new(adapters::S3Blobs::new(adapters::LazyClient::new(sdk, adapters::s3_client), bucket))));
    #[cfg(not(feature = "s3"))]
    {
        let _ = (sdk, bucket);
        Err(ConfigError::NotLinked { name, feature: "s3" })
    }
}

/// The jobs queue `JOBS_QUEUE_URL` names, if set.
#[cfg(feature = "aws")]
fn jobs_queue(sdk: &aws_config::SdkConfig) -> Result<Option<Arc<dyn JobQueue>>, ConfigError> {
    let Some(url) = setting("JOBS_QUEUE_URL") else { return Ok(None) };
    #[cfg(feature = "sqs")]
    return Ok(Some(Arc::new(adapters::SqsJobs::new(adapters::LazyClient::new(sdk, adapters::sqs_client), url))));
    #[cfg(not(feature = "sqs"))]
    {
        let _ = (sdk, url);
        Err(ConfigError::NotLinked { name: "JOBS_QUEUE_URL", feature: "sqs" })
    }
}

/// The SES mailer sending as `MAIL_FROM`, if set.
#[cfg(feature = "aws")]
fn mailer(sdk: &aws_config::SdkConfig) -> Result<Option<Arc<dyn Mailer>>, ConfigError> {
    let Some(from) = setting("MAIL_FROM") else { return Ok(None) };
    #[cfg(feature = "ses")]
    return Ok(Some(Arc::new(adapters::SesMailer::new(
        adapters::LazyClient::new(sdk, adapters::ses_client),
        from,
        setting("MAIL_CONFIGURATION_SET"),
    ))));
    #[cfg(not(feature = "ses"))]
    {
        let _ = (sdk, from);
        Err(ConfigError::NotLinked { name: "MAIL_FROM", feature: "ses" })
    }
}

/// The token signing key from the secret `SIGNING_KEY_SECRET_ARN` names (the
/// one network call a function makes at start-up, `auth` only).
#[cfg(feature = "aws")]
async fn signing_key(sdk: &aws_config::SdkConfig) -> Result<Vec<u8>, ConfigError> {
    let arn = setting("SIGNING_KEY_SECRET_ARN").ok_or(ConfigError::Missing("SIGNING_KEY_SECRET_ARN"))?;
    #[cfg(feature = "secrets")]
    return adapters::fetch_signing_key(sdk, &arn)
        .await
        .map_err(|source| ConfigError::Open { what: "signing key secret", source });
    #[cfg(not(feature = "secrets"))]
    {
        let _ = (sdk, arn);
        Err(ConfigError::NotLinked { name: "SIGNING_KEY_SECRET_ARN", feature: "secrets" })
    }
}

/// The secret backup manifests are signed with (`crate::backup::BackupKey`),
/// which only backup and restore read: the secret `BACKUP_KEY_SECRET_ARN`
/// names when it is set (also locally, to restore an AWS backup); otherwise,
/// on the embedded backend, `<DATA_DIR>/backup-key.bin`, generated on first use.
pub async fn backup_key(backend: &Backend) -> Result<Vec<u8>, ConfigError> {
    if let Some(arn) = setting("BACKUP_KEY_SECRET_ARN") {
        #[cfg(feature = "secrets")]
        return adapters::fetch_backup_key(&adapters::sdk_config().await, &arn)
            .await
            .map_err(|source| ConfigError::Open { what: "backup key secret", source });
        #[cfg(not(feature = "secrets"))]
        {
            let _ = arn;
            return Err(ConfigError::NotLinked { name: "BACKUP_KEY_SECRET_ARN", feature: "secrets" });
        }
    }
    match backend {
        #[cfg(feature = "embedded")]
        Backend::Embedded { data_dir } => {
            let path = data_dir.join("backup-key.bin");
            let valid = |bytes: &[u8]| bytes.len() >= crate::backup::MIN_KEY_BYTES;
            adapters::key_file::read_or_create(&path, valid, crate::backup::BackupKey::generate)
                .map_err(|source| ConfigError::DataDir { path, source })
        }
        _ => Err(ConfigError::Missing("BACKUP_KEY_SECRET_ARN")),
    }
}

/// Reads the local signing key, generating it on first use (several local
/// processes may start at once; they end up sharing one key).
#[cfg(feature = "embedded")]
fn local_signing_key(data_dir: &Path) -> Result<Vec<u8>, ConfigError> {
    let path = data_dir.join("signing-key.pk8");
    adapters::key_file::read_or_create(&path, |bytes| !bytes.is_empty(), TokenKeys::generate_pkcs8)
        .map_err(|source| ConfigError::DataDir { path, source })
}
