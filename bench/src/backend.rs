//! The two configurations the functions run in: the embedded store in a
//! temporary data directory, and the AWS configuration against a moto server
//! this module starts (table, bucket, queue, signing key secret, SES sender).
//! Both get the same seed so the single-item read events find their item.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use shared::adapters::{self, provision, DynamoStore};
use shared::domain::{
    Category, CategoryDescription, CategoryId, CategoryName, DisplayName, Email, ListingStatus, Password, PasswordHash,
    Price, Product, ProductDescription, ProductId, ProductName, Role, Slug, Stock, Unit, User, UserId,
};
use shared::ports::Store;
use shared::repo::{categories, products, users};
use shared::tokens::TokenKeys;
use shared::AppState;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::{Extra, Function};

/// The ids the sample events in `events/` name: the category of
/// `categories-get.json` (and the browse filter of `products-list.json`), the
/// farmer of `users-get-farmer.json`, the product of `products-get.json`.
const SEED_CATEGORY: &str = "01JDQ8Z3V9X6N4K2M7P5R8T1WC";
const SEED_FARMER: &str = "01JDQ8Z3V9X6N4K2M7P5R8T1WD";
const SEED_PRODUCT: &str = "01JDQ9A4B7C2D5E8F1G3H6J9KM";

/// What the seed wrote, for the report.
pub const SEED_SUMMARY: &str = "one category, one verified farmer and one listed product with the ids the \
    sample events name (categories-get, users-get-farmer, products-get and the products-list filter find them); \
    events that need a signed-in user keep their placeholder token and answer 401";

/// A configuration the functions can be started in.
pub enum Backend {
    Embedded {
        dir: TempDir,
    },
    Aws {
        /// The moto server (boxed: a child process is large).
        moto: Box<Child>,
        endpoint: String,
        table: String,
        bucket: String,
        queue_url: String,
        secret_arn: String,
        public_key: String,
        mail_from: String,
    },
}

impl Backend {
    pub fn label(&self) -> &'static str {
        match self {
            Backend::Embedded { .. } => "embedded",
            Backend::Aws { .. } => "aws",
        }
    }

    /// A fresh embedded data directory with the seed in it.
    pub async fn embedded() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("create a data directory")?;
        let state = AppState::embedded(dir.path()).await.context("open the embedded store")?;
        seed(state.store.as_ref()).await.context("seed the embedded store")?;
        Ok(Backend::Embedded { dir })
    }

    /// Starts moto from the project's `.venv` (installing it first if it is
    /// missing), creates the resources and seeds the table.
    pub async fn aws(root: &Path) -> anyhow::Result<Self> {
        let python = root.join(".venv/bin/python");
        if !python.exists() {
            eprintln!("no .venv: installing requirements-dev.txt with scripts/test.sh tools");
            let status = Command::new(root.join("scripts/test.sh")).arg("tools").current_dir(root).status().await?;
            if !status.success() {
                bail!("scripts/test.sh tools failed ({status})");
            }
        }
        let port = free_port()?;
        let moto = Command::new(&python)
            .arg("scripts/moto_server.py")
            .arg("127.0.0.1")
            .arg(port.to_string())
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start scripts/moto_server.py")?;
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_for_port(port).await?;
        // This process's SDK clients (provisioning, seed) read the same settings.
        for (name, value) in aws_settings(&endpoint) {
            std::env::set_var(name, value);
        }
        let sdk = adapters::sdk_config().await;
        let suffix = ulid::Ulid::new().to_string().to_lowercase();
        let table = format!("bench-{suffix}");
        provision::create_table(&adapters::dynamo_client(&sdk), &table).await?;
        let bucket = format!("bench-assets-{suffix}");
        provision::create_bucket(&adapters::s3_client(&sdk), &bucket).await?;
        let queue_url =
            provision::create_queue(&adapters::sqs_client(&sdk), &format!("bench-jobs-{suffix}"), None).await?;
        let pkcs8 = TokenKeys::generate_pkcs8();
        let public_key = TokenKeys::from_pkcs8(&pkcs8)?.public_key_b64().to_owned();
        let secret = aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(format!("bench-signing-key-{suffix}"))
            .secret_string(STANDARD.encode(&pkcs8))
            .send()
            .await
            .context("create the signing key secret")?;
        let secret_arn = secret.arn().ok_or_else(|| anyhow!("the secret has no ARN"))?.to_owned();
        let mail_from = format!("no-reply-{suffix}@example.com");
        adapters::ses_client(&sdk)
            .create_email_identity()
            .email_identity(&mail_from)
            .send()
            .await
            .context("create the SES sender identity")?;
        let store = DynamoStore::new(adapters::dynamo_client(&sdk), table.clone());
        seed(&store).await.context("seed the table")?;
        Ok(Backend::Aws { moto: Box::new(moto), endpoint, table, bucket, queue_url, secret_arn, public_key, mail_from })
    }

    /// The environment `function` gets here: Lambda's own variables, then what
    /// `template.yaml` gives it (or the embedded store).
    pub fn env(&self, function: &Function) -> Vec<(String, String)> {
        let mut vars: Vec<(&str, String)> = vec![
            ("AWS_LAMBDA_FUNCTION_NAME", function.name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", function.memory_mb.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ];
        match self {
            Backend::Embedded { dir } => {
                vars.push(("MARKETPLACE_BACKEND", "embedded".to_owned()));
                vars.push(("DATA_DIR", dir.path().display().to_string()));
            }
            Backend::Aws { endpoint, table, bucket, queue_url, secret_arn, public_key, mail_from, .. } => {
                vars.extend(aws_settings(endpoint).map(|(k, v)| (k, v.to_owned())));
                vars.push(("TABLE_NAME", table.clone()));
                vars.push(("TOKEN_PUBLIC_KEY", public_key.clone()));
                for extra in function.extras {
                    match extra {
                        Extra::SigningKey => vars.push(("SIGNING_KEY_SECRET_ARN", secret_arn.clone())),
                        Extra::TokenTtls => {
                            vars.push(("ACCESS_TOKEN_TTL_SECONDS", "900".to_owned()));
                            vars.push(("REFRESH_TOKEN_TTL_DAYS", "30".to_owned()));
                        }
                        Extra::Assets => {
                            vars.push(("ASSETS_BUCKET", bucket.clone()));
                            vars.push(("ASSETS_BASE_URL", "https://cdn.example.com".to_owned()));
                        }
                        Extra::JobsQueue => vars.push(("JOBS_QUEUE_URL", queue_url.clone())),
                        Extra::LinkBaseUrl => vars.push(("LINK_BASE_URL", "https://market.example.com".to_owned())),
                        Extra::MailFrom => vars.push(("MAIL_FROM", mail_from.clone())),
                        Extra::DataBucket => vars.push(("DATA_BUCKET", bucket.clone())),
                        Extra::BackupKey => vars.push(("BACKUP_KEY_SECRET_ARN", secret_arn.clone())),
                    }
                }
            }
        }
        vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Stops moto (the embedded directory goes when dropped).
    pub async fn stop(self) {
        if let Backend::Aws { mut moto, .. } = self {
            let _ = moto.kill().await;
            let _ = moto.wait().await;
        }
    }
}

fn aws_settings(endpoint: &str) -> [(&'static str, &str); 4] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// A loopback port free at the time of asking.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_for_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("moto did not listen on port {port} within 30 s")
}

fn parse<T>(what: &str, parsed: Result<T, String>) -> anyhow::Result<T> {
    parsed.map_err(|reason| anyhow!("seed {what}: {reason}"))
}

fn id<T>(what: &str, parsed: Option<T>) -> anyhow::Result<T> {
    parsed.ok_or_else(|| anyhow!("seed {what}: not a canonical ULID"))
}

/// Writes the seed (see [`SEED_SUMMARY`]) through `shared::repo`.
async fn seed(store: &dyn Store) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let category_id = id("category id", CategoryId::parse(SEED_CATEGORY))?;
    let category = Category {
        id: category_id,
        name: parse("category name", CategoryName::parse("Vegetables"))?,
        slug: parse("category slug", Slug::parse("vegetables"))?,
        description: Some(parse("category description", CategoryDescription::parse("Seasonal vegetables."))?),
        created_at: now,
        updated_at: now,
        version: 1,
        product_count: 0,
    };
    categories::create(store, &category).await.map_err(|e| anyhow!("seed the category: {e:?}"))?;

    let farmer_id = id("farmer id", UserId::parse(SEED_FARMER))?;
    let password = parse("password", Password::parse("a long bench passphrase".to_owned()))?;
    let password_hash = tokio::task::spawn_blocking(move || PasswordHash::create(&password)).await?;
    let farmer = User {
        id: farmer_id,
        email_verified: true,
        ..User::new(
            parse("email", Email::parse("farmer.bench@example.com"))?,
            parse("display name", DisplayName::parse("Bench Farm"))?,
            Role::Farmer,
            password_hash,
            now,
        )
    };
    users::create(store, &farmer).await.map_err(|e| anyhow!("seed the farmer: {e:?}"))?;

    let product = Product {
        id: id("product id", ProductId::parse(SEED_PRODUCT))?,
        farmer_id,
        category_id,
        name: parse("product name", ProductName::parse("Cherry tomatoes"))?,
        description: ProductDescription::default(),
        price: parse("price", Price::parse(450))?,
        unit: Unit::Kg,
        stock: parse("stock", Stock::parse(25))?,
        harvest_date: None,
        images: Vec::new(),
        status: ListingStatus::Listed,
        farmer_hidden: false,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    products::create(store, &product, Vec::new()).await.map_err(|e| anyhow!("seed the product: {e:?}"))?;
    Ok(())
}

/// The repository root (`events/`, `scripts/`, `.venv/` live there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ has a parent").to_owned()
}
