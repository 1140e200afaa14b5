//! `marketplace-admin`: operator commands. `create-admin` creates an admin account
//! (admins cannot self-register) in the configured store, the embedded one locally or
//! DynamoDB when `TABLE_NAME` is set, with the password from `ADMIN_PASSWORD` or
//! standard input (never the command line); `generate-signing-key` prints a new token key pair;
//! `api-contract` rewrites `openapi.json` and cargo-lambda's watch router in `Cargo.toml`
//! from the functions' routes.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use shared::config::KeyUse;
use shared::domain::{DisplayName, Email, Password, PasswordHash, Role, User};
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
    /// Regenerate `openapi.json` and the `cargo lambda watch` router table of
    /// `Cargo.toml` (in the current directory, the repository root) from the routes.
    ApiContract,
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
        Command::ApiContract => write_api_contract(),
    }
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
