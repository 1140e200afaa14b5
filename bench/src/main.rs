//! `lambda-harness`: builds the function binaries and hello-lambda (the floor),
//! runs each under an in-process Lambda Runtime API and measures init duration,
//! warm invocation latency (embedded store and the AWS configuration against
//! moto), peak resident memory and, with `--arm64`, the deployable bootstrap
//! and zip sizes. Prints a Markdown report and writes the raw figures to
//! `target/bench/lambda-harness.json`.

mod backend;
mod report;
mod runtime;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use clap::Parser;
use tokio::process::Command;

use crate::backend::{repo_root, Backend};
use crate::report::{Arm64Size, ConfigFigures, FunctionFigures, Report};

/// What a function gets from `template.yaml` beyond `TABLE_NAME` and
/// `TOKEN_PUBLIC_KEY` (the AWS configuration only).
#[derive(Debug, Clone, Copy)]
pub enum Extra {
    SigningKey,
    TokenTtls,
    Assets,
    JobsQueue,
    LinkBaseUrl,
    MailFrom,
    /// `DATA_BUCKET` (the archive and backups), here the assets bucket.
    DataBucket,
    /// `BACKUP_KEY_SECRET_ARN`, here the signing key's secret (any secret of
    /// 32 bytes or more signs backups).
    BackupKey,
}

/// A function under test: its package (and binary) name, the prefix of its
/// sample events in `events/` (`<prefix>.json` and `<prefix>-*.json`), its
/// memory size in `template.yaml`, and its extra settings.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    pub name: &'static str,
    pub events: &'static str,
    pub memory_mb: u32,
    pub extras: &'static [Extra],
}

impl Function {
    /// A function whose sample events are named after it.
    const fn new(name: &'static str, memory_mb: u32, extras: &'static [Extra]) -> Self {
        Self { name, events: name, memory_mb, extras }
    }
}

use Extra::*;

/// Every function of `template.yaml` (name, memory size, extra settings): a
/// new function is one line here.
const FUNCTIONS: &[Function] = &[
    Function::new("health", 256, &[]),
    Function::new("auth", 1024, &[SigningKey, TokenTtls, JobsQueue, LinkBaseUrl]),
    Function::new("categories", 256, &[]),
    Function::new("products", 256, &[Assets]),
    Function::new("users", 256, &[]),
    Function::new("orders", 256, &[]),
    Function::new("worker", 1024, &[Assets, JobsQueue, LinkBaseUrl, MailFrom]),
    Function::new("archive", 512, &[Assets, DataBucket]),
    Function::new("backup", 1024, &[DataBucket, BackupKey]),
];

/// The floor every figure is compared with: a hello-world `lambda_http`
/// function (bench/hello), sent the health event.
const FLOOR: Function = Function { name: "hello-lambda", events: "health", memory_mb: 256, extras: &[] };

#[derive(Debug, Parser)]
#[command(about = "Init, warm latency, memory and arm64 size of every function binary, against a hello-world floor")]
struct Args {
    /// Fresh processes started per function and configuration for the init figures.
    #[arg(long, default_value_t = 20)]
    cold_starts: usize,
    /// Warm invocations per function and configuration (cycling through its events).
    #[arg(long, default_value_t = 1000)]
    invocations: usize,
    /// Only these functions (comma-separated); hello-lambda always runs.
    #[arg(long, value_delimiter = ',')]
    functions: Vec<String>,
    /// Use the release binaries already in the target directory.
    #[arg(long)]
    no_build: bool,
    /// Also build for arm64 with cargo lambda and report bootstrap and zip sizes.
    #[arg(long)]
    arm64: bool,
    /// Skip the AWS configuration (no moto).
    #[arg(long)]
    skip_aws: bool,
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn selected(names: &[String]) -> anyhow::Result<Vec<Function>> {
    if names.is_empty() {
        return Ok(FUNCTIONS.to_vec());
    }
    names
        .iter()
        .map(|name| {
            FUNCTIONS.iter().find(|f| f.name == name.trim()).copied().with_context(|| {
                let known: Vec<_> = FUNCTIONS.iter().map(|f| f.name).collect();
                format!("unknown function {name:?} (known: {})", known.join(", "))
            })
        })
        .collect()
}

/// The function's sample events, in name order.
fn events(root: &Path, function: &Function) -> anyhow::Result<Vec<(String, Bytes)>> {
    let dir = root.join("events");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else { continue };
        if stem == function.events || stem.starts_with(&format!("{}-", function.events)) {
            found.push(name);
        }
    }
    found.sort();
    if found.is_empty() {
        bail!("no events/{}*.json for {}", function.events, function.name);
    }
    found
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).with_context(|| format!("read events/{name}"))?;
            Ok((name, Bytes::from(bytes)))
        })
        .collect()
}

async fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    eprintln!("> {what}");
    let status = command.stdin(Stdio::null()).status().await.with_context(|| format!("run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn package_args(functions: &[Function]) -> Vec<String> {
    std::iter::once(&FLOOR).chain(functions).flat_map(|f| ["-p".to_owned(), f.name.to_owned()]).collect()
}

/// The harness's own build also links the embedded backend (`<function>/embedded`),
/// which Lambda builds leave out, so one binary serves both configurations.
fn embedded_features(functions: &[Function]) -> Vec<String> {
    let features: Vec<String> = functions.iter().map(|f| format!("{}/embedded", f.name)).collect();
    vec!["--features".to_owned(), features.join(",")]
}

/// Init durations in `backend`, one list per function: `rounds` rounds, each
/// starting every function once, so a change in the machine's load during the
/// run falls on all of them alike.
async fn cold_starts(
    functions: &[(&Function, PathBuf)],
    backend: &Backend,
    rounds: usize,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    eprintln!("  {} rounds of cold starts ({})", rounds, backend.label());
    let envs: Vec<_> = functions.iter().map(|(f, _)| backend.env(f)).collect();
    let mut inits = vec![Vec::with_capacity(rounds); functions.len()];
    for _ in 0..rounds {
        for (((_, binary), env), init) in functions.iter().zip(&envs).zip(&mut inits) {
            init.extend(runtime::cold_starts(binary, env, 1).await?);
        }
    }
    Ok(inits)
}

/// One warm run of `function` in `backend` over its sample events.
async fn warm(
    binary: &Path,
    function: &Function,
    backend: &Backend,
    args: &Args,
    root: &Path,
    logs: &Path,
    init: Vec<Duration>,
) -> anyhow::Result<ConfigFigures> {
    let env = backend.env(function);
    let events = events(root, function)?;
    eprintln!(
        "  {} ({}): {} warm invocations over {} events",
        function.name,
        backend.label(),
        args.invocations,
        events.len()
    );
    let log = logs.join(format!("{}-{}.log", function.name, backend.label()));
    let bodies: Vec<Bytes> = events.iter().map(|(_, body)| body.clone()).collect();
    let warm = runtime::warm_run(binary, &env, &bodies, args.invocations, &log).await?;
    let names = events.into_iter().map(|(name, _)| name).collect();
    Ok(ConfigFigures::new(init, warm, names))
}

/// The uncompressed size of the one file in a cargo lambda zip (its
/// `bootstrap`), from the zip's central directory.
fn zipped_size(zip: &Path) -> anyhow::Result<u64> {
    let bytes = std::fs::read(zip).with_context(|| format!("read {}", zip.display()))?;
    // The end of central directory record, then the first central header's
    // uncompressed size (offset 24).
    let eocd = bytes.windows(4).rposition(|w| w == [0x50, 0x4b, 0x05, 0x06]).context("not a zip")?;
    let at = |offset: usize, len: usize| -> anyhow::Result<u64> {
        let slice = bytes.get(offset..offset + len).context("a truncated zip")?;
        Ok(slice.iter().rev().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
    };
    let central = at(eocd + 16, 4)? as usize;
    at(central + 24, 4)
}

/// Builds each arm64 bootstrap with cargo lambda, zipped as it deploys.
async fn arm64_sizes(root: &Path, target: &Path, functions: &[Function]) -> anyhow::Result<Vec<(String, Arm64Size)>> {
    let venv_bin = root.join(".venv/bin");
    let cargo_lambda = venv_bin.join("cargo-lambda");
    if !cargo_lambda.exists() {
        bail!("{} is missing: run scripts/test.sh tools", cargo_lambda.display());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let path = format!("{}:{path}", venv_bin.display());
    run(Command::new("rustup").args(["target", "add", "aarch64-unknown-linux-gnu"]), "rustup target add").await?;
    // One function per build, as SAM builds each in its own directory: each
    // links only the clients its own features name.
    let mut sizes = Vec::new();
    for function in std::iter::once(&FLOOR).chain(functions) {
        let mut command = Command::new(&cargo_lambda);
        command
            .args(["lambda", "build", "--release", "--arm64", "--output-format", "zip", "-p", function.name])
            .current_dir(root)
            .env("PATH", &path);
        run(&mut command, &format!("cargo lambda build --release --arm64 --output-format zip -p {}", function.name))
            .await?;
        let zip = target.join("lambda").join(function.name).join("bootstrap.zip");
        let zip_bytes = std::fs::metadata(&zip).with_context(|| format!("{}", zip.display()))?.len();
        let bootstrap_bytes = zipped_size(&zip)?;
        sizes.push((function.name.to_owned(), Arm64Size { bootstrap_bytes, zip_bytes }));
    }
    Ok(sizes)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let functions = selected(&args.functions)?;
    let root = repo_root();
    let target = target_dir(&root);
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");

    if !args.no_build {
        let mut command = Command::new(cargo());
        command
            .args(["build", "--release"])
            .args(package_args(&functions))
            .args(embedded_features(&functions))
            .current_dir(&root);
        run(&mut command, "cargo build --release").await?;
    }
    let binary = |f: &Function| target.join("release").join(f.name);
    for function in std::iter::once(&FLOOR).chain(&functions) {
        if !binary(function).exists() {
            bail!("{} is missing: build it or drop --no-build", binary(function).display());
        }
    }
    let out_dir = target.join("bench");
    let logs = out_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;

    let mut figures: Vec<FunctionFigures> =
        std::iter::once(&FLOOR).chain(&functions).map(|f| FunctionFigures::new(f.name)).collect();
    let mut backends = vec![Backend::embedded().await?];
    if !args.skip_aws {
        eprintln!("starting moto and provisioning the table, bucket, queue, secret and sender");
        backends.push(Backend::aws(&root).await?);
    }
    for backend in &backends {
        eprintln!("{} configuration", backend.label());
        let all: Vec<(&Function, PathBuf)> =
            std::iter::once(&FLOOR).chain(&functions).map(|f| (f, binary(f))).collect();
        let inits = cold_starts(&all, backend, args.cold_starts).await?;
        for (((function, binary), init), slot) in all.iter().zip(inits).zip(&mut figures) {
            let measured = warm(binary, function, backend, &args, &root, &logs, init).await?;
            slot.configs.insert(backend.label().to_owned(), measured);
        }
    }
    for backend in backends {
        backend.stop().await;
    }
    if args.arm64 {
        for (name, size) in arm64_sizes(&root, &target, &functions).await? {
            if let Some(slot) = figures.iter_mut().find(|f| f.function == name) {
                slot.arm64 = Some(size);
            }
        }
    }

    let report = Report::new(command_line, &args_summary(&args), figures);
    let json = out_dir.join("lambda-harness.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?).with_context(|| format!("write {}", json.display()))?;
    println!("{}", report.markdown());
    eprintln!("raw figures: {}; function logs: {}", json.display(), logs.display());
    Ok(())
}

fn args_summary(args: &Args) -> String {
    format!(
        "{} cold starts and {} warm invocations per function and configuration{}{}",
        args.cold_starts,
        args.invocations,
        if args.skip_aws { "; AWS configuration skipped" } else { "" },
        if args.arm64 { "; arm64 sizes from cargo lambda" } else { "" },
    )
}
