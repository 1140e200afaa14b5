//! `marketplace-admin`: operator commands. `create-admin` creates an admin account
//! (admins cannot self-register) in the configured store, the embedded one locally or
//! DynamoDB when `TABLE_NAME` is set, with the password from `ADMIN_PASSWORD` or
//! standard input (never the command line); `generate-signing-key` prints a new token key pair;
//! `api-contract` rewrites `openapi.json` and cargo-lambda's watch router in `Cargo.toml`
//! from the functions' routes; `backup`, `restore` and `list-backups` take, restore
//! and list portable backups (`shared::backup`) of the configured store, from its
//! data bucket or from any other bucket or directory, so a backup taken on AWS
//! restores into the local store and the other way round.

use std::io::{BufRead, IsTerminal, Write};

use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use shared::adapters::{self, EmbeddedBlobs, S3Blobs};
use shared::config::KeyUse;
use shared::domain::{DisplayName, Email, Password, PasswordHash, Role, User};
use shared::ports::BlobStore;
use shared::repo::users::{self, CreateUserError};
use shared::tokens::TokenKeys;
use shared::AppState;

#[derive(Debug, Parser)]
#[command(version, about = "Marketplace operator commands")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an admin account. Password: env ADMIN_PASSWORD, else one line of stdin.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        display_name: String,
    },
    /// Print a new Ed25519 token key pair as JSON: `privateKeyPkcs8Base64` (the
    /// signing key secret's value) and `publicKeyBase64` (TOKEN_PUBLIC_KEY).
    GenerateSigningKey,
    /// Replace the key that signs pagination cursors in the configured store;
    /// cursors signed with the key it replaces keep working until the next
    /// rotation. Running functions pick the new key up at their next cold start.
    RotateCursorKey,
    /// Regenerate `openapi.json` and the `cargo lambda watch` router table of
    /// `Cargo.toml` (in the current directory, the repository root) from the routes.
    ApiContract,
    /// Back up every item of the configured store (the embedded one locally,
    /// TABLE_NAME's table otherwise) and the archive objects of its archived
    /// orders, signed with the backup key (BACKUP_KEY_SECRET_ARN's secret, else
    /// the local data directory's backup-key.bin).
    Backup {
        #[command(flatten)]
        location: BackupLocation,
    },
    /// Restore a backup into the configured store. Verifies the manifest's
    /// signature with the backup key (BACKUP_KEY_SECRET_ARN's secret, else the
    /// local data directory's backup-key.bin), then checks every part's SHA-256
    /// before writing anything; writes only into an empty
    /// store (one without a live item) unless --force.
    Restore {
        /// The backup's id (see list-backups).
        backup_id: String,
        #[command(flatten)]
        location: BackupLocation,
        /// Dangerous: write even though the store already holds live items. Items
        /// with the backup's keys are overwritten with their backed-up state (newer
        /// orders, balances and erasures under those keys are lost); other items stay.
        #[arg(long)]
        force: bool,
    },
    /// List the complete backups, oldest first.
    ListBackups {
        #[command(flatten)]
        location: BackupLocation,
    },
}

/// Where backups are: the configured data bucket unless one of these is given.
#[derive(Debug, clap::Args)]
struct BackupLocation {
    /// A local data bucket directory (e.g. .data/data).
    #[arg(long, conflicts_with = "bucket")]
    dir: Option<std::path::PathBuf>,
    /// An S3 bucket (AWS credentials and region from the environment).
    #[arg(long)]
    bucket: Option<String>,
}

impl BackupLocation {
    async fn open(&self, state: &AppState) -> anyhow::Result<Arc<dyn BlobStore>> {
        Ok(match (&self.dir, &self.bucket) {
            (Some(dir), _) => Arc::new(
                EmbeddedBlobs::open(dir, shared::config::DEFAULT_LOCAL_BASE_URL)
                    .with_context(|| format!("open {}", dir.display()))?,
            ),
            (None, Some(bucket)) => {
                let sdk = adapters::sdk_config().await;
                Arc::new(S3Blobs::new(adapters::s3_client(&sdk), bucket.clone()))
            }
            (None, None) => state
                .data_bucket
                .clone()
                .context("no data bucket configured: set DATA_BUCKET, or pass --dir or --bucket")?,
        })
    }
}

/// The configured data bucket, where archived orders' objects are read from
/// (backup) and put back (restore).
fn data_bucket(state: &AppState) -> anyhow::Result<Arc<dyn BlobStore>> {
    state.data_bucket.clone().context(
        "no data bucket configured (DATA_BUCKET): backups copy the archive objects from it, and restores put them back",
    )
}

/// The password from `ADMIN_PASSWORD`, or else one line of standard input.
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("ADMIN_PASSWORD") {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password for the new admin (10 to 128 characters; input is shown): ");
        std::io::stderr().flush().context("write the prompt")?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    match Args::parse().command {
        Command::CreateAdmin { email, display_name } => create_admin(&email, &display_name).await,
        Command::GenerateSigningKey => generate_signing_key(),
        Command::RotateCursorKey => rotate_cursor_key().await,
        Command::ApiContract => write_api_contract(),
        Command::Backup { location } => back_up(&location).await,
        Command::Restore { backup_id, location, force } => restore(&backup_id, &location, force).await,
        Command::ListBackups { location } => list_backups(&location).await,
    }
}

async fn back_up(location: &BackupLocation) -> anyhow::Result<()> {
    let state = AppState::from_env(KeyUse::Verify).await.context("configure storage")?;
    let bucket = location.open(&state).await?;
    let data = data_bucket(&state)?;
    let key = backup::key_from_env(&state).await.context("read the backup key")?;
    let settings = backup::settings_from_env()?;
    let manifest = shared::backup::back_up(
        state.store.as_ref(),
        data.as_ref(),
        bucket.as_ref(),
        &key,
        state.clock.as_ref(),
        &settings,
        state.backend.name(),
    )
    .await
    .context("back up")?;
    println!(
        "Backup {}: {} items in {} parts ({:?}) and {} archive objects.",
        manifest.id,
        manifest.items,
        manifest.parts.len(),
        manifest.counts,
        manifest.archive_objects.len()
    );
    Ok(())
}

async fn list_backups(location: &BackupLocation) -> anyhow::Result<()> {
    let state = AppState::from_env(KeyUse::Verify).await.context("configure storage")?;
    let bucket = location.open(&state).await?;
    for id in shared::backup::list(bucket.as_ref()).await.context("list backups")? {
        println!("{id}");
    }
    Ok(())
}

async fn restore(backup_id: &str, location: &BackupLocation, force: bool) -> anyhow::Result<()> {
    use shared::backup::Progress;
    let state = AppState::from_env(KeyUse::Verify).await.context("configure storage")?;
    let bucket = location.open(&state).await?;
    // A bar on a terminal; otherwise a log line per tenth.
    let terminal = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::hidden();
    let mut logged_tenths = 0;
    let mut on_progress = |progress: Progress| match progress {
        Progress::Verified { done, total } => {
            if terminal {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_length(total as u64);
                bar.set_message("checking parts");
                bar.set_position(done as u64);
            } else {
                eprintln!("checked part {done} of {total}");
            }
        }
        Progress::Written { done, total } => {
            if terminal {
                if bar.message() != "restoring items" {
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, {eta})")
                            .expect("a valid template"),
                    );
                    bar.set_message("restoring items");
                    bar.set_length(total);
                }
                bar.set_position(done);
            } else if done * 10 / total.max(1) > logged_tenths || done == total {
                logged_tenths = done * 10 / total.max(1);
                eprintln!("restored {done} of {total} items");
            }
        }
        Progress::Erased { accounts } => {
            bar.suspend(|| eprintln!("erased again {accounts} accounts the erasure ledger names"));
        }
    };
    let data = data_bucket(&state)?;
    let key = backup::key_from_env(&state).await.context("read the backup key")?;
    let manifest = shared::backup::restore(
        bucket.as_ref(),
        backup_id,
        &key,
        shared::backup::Target { store: state.store.as_ref(), data: data.as_ref(), clock: state.clock.as_ref() },
        force,
        &mut on_progress,
    )
    .await
    .context("restore")?;
    bar.finish_and_clear();
    println!(
        "Restored backup {} ({} items, taken on {} at {}) into the {} store.",
        manifest.id,
        manifest.items,
        manifest.source,
        manifest.created_at,
        state.backend.name()
    );
    Ok(())
}

fn write_api_contract() -> anyhow::Result<()> {
    std::fs::write("openapi.json", infra::functions::openapi_json()).context("write openapi.json")?;
    let cargo_toml = std::fs::read_to_string("Cargo.toml").context("read Cargo.toml")?;
    let updated = infra::functions::with_generated_watch_router(&cargo_toml)
        .with_context(|| format!("Cargo.toml has no {}", infra::functions::WATCH_ROUTER_HEADER))?;
    std::fs::write("Cargo.toml", updated).context("write Cargo.toml")?;
    println!("Wrote openapi.json and the watch router of Cargo.toml.");
    Ok(())
}

fn generate_signing_key() -> anyhow::Result<()> {
    use base64::Engine;
    let pkcs8 = TokenKeys::generate_pkcs8();
    let keys = TokenKeys::from_pkcs8(&pkcs8).context("check the generated key")?;
    let pair = serde_json::json!({
        "privateKeyPkcs8Base64": base64::engine::general_purpose::STANDARD.encode(&pkcs8),
        "publicKeyBase64": keys.public_key_b64(),
    });
    println!("{pair:#}");
    Ok(())
}

async fn rotate_cursor_key() -> anyhow::Result<()> {
    let state = AppState::from_env(KeyUse::Verify).await.context("configure storage")?;
    shared::repo::cursor_key::rotate(state.store.as_ref()).await.context("rotate the cursor key")?;
    println!("Rotated the cursor key; cursors signed with the previous one stay valid until the next rotation.");
    Ok(())
}

async fn create_admin(email: &str, display_name: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|reason| anyhow::anyhow!("--email {reason}"))?;
    let display_name = DisplayName::parse(display_name).map_err(|reason| anyhow::anyhow!("--display-name {reason}"))?;
    let password = Password::parse(read_password()?).map_err(|reason| anyhow::anyhow!("the password {reason}"))?;

    let state = AppState::from_env(KeyUse::Verify).await.context("configure storage")?;
    let password_hash =
        tokio::task::spawn_blocking(move || PasswordHash::create(&password)).await.context("hash the password")?;
    let user =
        User { email_verified: true, ..User::new(email, display_name, Role::Admin, password_hash, state.clock.now()) };
    match users::create(state.store.as_ref(), &user).await {
        Ok(()) => {}
        Err(CreateUserError::DuplicateEmail) => {
            bail!("an account with the email {} already exists", user.email)
        }
        Err(CreateUserError::Store(e)) => return Err(e).context("store the admin"),
    }
    println!("Created admin {} (id {}) in the {} store.", user.email, user.id, state.backend.name());
    Ok(())
}
