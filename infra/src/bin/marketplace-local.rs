//! `marketplace-local`: the whole API on a laptop. Reads `template.yaml`, serves
//! every route through the local gateway over the embedded backend in `--data-dir`
//! (with the local bucket and CDN, the queue pumps feeding the worker, and the
//! template's schedules), seeds demo data on first run (or with `--seed`), fires
//! the schedules named by `--fire` once at start, and runs until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use infra::gateway::OPENAPI_PATH;
use infra::local::LocalStack;
use infra::pump::PumpSettings;
use infra::seed::{self, DEMO_USERS};
use shared::AppState;

#[derive(Debug, Parser)]
#[command(version, about = "Serve the marketplace API locally (embedded storage, no AWS)")]
struct Args {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Address to listen on. Loopback unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Accept a --host other machines can reach (e.g. 0.0.0.0). The local
    /// mailbox (`/_local/mail`, `/_local/links/`) is then not served, since
    /// its mail holds live sign-in and password reset links.
    #[arg(long)]
    allow_remote: bool,
    /// Directory of the embedded store, blobs and the local signing key.
    #[arg(long, env = "DATA_DIR", default_value = ".data")]
    data_dir: PathBuf,
    /// The SAM template whose HttpApi routes are served.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Seed demo users and categories (always done when the data directory is new).
    #[arg(long)]
    seed: bool,
    /// Fire this schedule once at start (e.g. `archive.daily`, or just `archive`);
    /// repeatable. Schedules also fire at their template rate from start-up.
    #[arg(long, value_name = "SCHEDULE")]
    fire: Vec<String>,
}

/// Refuses a `--host` beyond loopback unless `--allow-remote` says so.
fn check_host(args: &Args) -> anyhow::Result<()> {
    if args.host.is_loopback() || args.allow_remote {
        return Ok(());
    }
    anyhow::bail!(
        "--host {} is reachable from other machines, and the local gateway is for development only; \
         add --allow-remote to serve it there anyway (without the local mailbox)",
        args.host
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let args = Args::parse();
    check_host(&args)?;

    let fresh = !args.data_dir.join("marketplace.db").exists();
    let addr = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listen on {addr}"))?;
    let url = format!("http://{}", listener.local_addr().context("read the bound address")?);
    let state = AppState::embedded_serving(&args.data_dir, &url)
        .await
        .with_context(|| format!("open the embedded backend in {}", args.data_dir.display()))?;
    if args.seed || fresh {
        let report = seed::seed(&state).await.context("seed demo data")?;
        println!(
            "Seeded demo data: {} users created ({} existed), {} categories created ({} existed).",
            report.users_created, report.users_skipped, report.categories_created, report.categories_skipped
        );
    }

    let stack = LocalStack::start(state, &args.data_dir, &args.template, listener, PumpSettings::default(), None)
        .await
        .with_context(|| format!("start the local stack from {}", args.template.display()))?;

    println!("\nMarketplace API at {url}  (data: {})", args.data_dir.display());
    for served in stack.gateway.routes() {
        println!("  {:<7} {url}{:<32} -> {}", served.route.method, served.route.path, served.binary);
    }
    println!("  {:<7} {url}{OPENAPI_PATH}", "GET");
    println!(
        "  {:<7} {url}{}/public/...   (uploaded images, as the CDN serves them)",
        "GET",
        shared::config::LOCAL_ASSETS_PATH
    );
    if infra::local::serves_mailbox(stack.addr) {
        println!("  {:<7} {url}{}   (the local mailbox)", "GET", infra::mailbox::MAIL_PATH);
    } else {
        println!(
            "No local mailbox: listening beyond loopback (mail is still written to {}/mail).",
            args.data_dir.display()
        );
    }
    for pump in &stack.pumps {
        let source = pump.source();
        println!(
            "Queue {} -> {} (batches of {}, {} at a time)",
            source.queue, source.binary, source.batch_size, source.maximum_concurrency
        );
    }
    for name in stack.scheduler.names() {
        println!("Schedule {name}: fire now with POST {url}{}{name}", infra::scheduler::FIRE_PATH);
    }
    if let Some(cors) = stack.gateway.cors() {
        println!("CORS origins: {}", cors.allow_origins.join(", "));
    }
    println!("\nDemo logins (POST {url}/auth/login):");
    for user in DEMO_USERS {
        println!("  {:<9} {:<27} {}", user.role.as_str(), user.email, user.password);
    }
    println!("\nCtrl-C to stop.");
    for name in &args.fire {
        let result = stack.scheduler.fire(name).await.with_context(|| format!("fire {name}"))?;
        println!("Fired {name}: {result}");
    }

    stack.run_until_ctrl_c().await;
    println!("Stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(flags: &[&str]) -> Args {
        Args::try_parse_from([&["marketplace-local"], flags].concat()).unwrap()
    }

    #[test]
    fn a_host_beyond_loopback_needs_allow_remote() {
        for host in ["127.0.0.1", "::1", "127.0.0.2"] {
            assert!(check_host(&parsed(&["--host", host])).is_ok(), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.168.1.20"] {
            let refused = check_host(&parsed(&["--host", host])).unwrap_err().to_string();
            assert!(refused.contains("--allow-remote"), "{host}: {refused}");
            assert!(check_host(&parsed(&["--host", host, "--allow-remote"])).is_ok(), "{host}");
        }
        assert!(check_host(&parsed(&[])).is_ok(), "the default is loopback");
    }
}
