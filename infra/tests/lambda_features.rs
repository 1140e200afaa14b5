//! What each Lambda build links, checked without building it: `sam build`
//! builds every function's package on its own, so `marketplace-shared` gets only
//! the features that package asks for. Cargo resolves those features the same
//! way for `cargo tree -p <package>` as for `cargo build -p <package>`, so the
//! test asks `cargo tree` and checks, for every function of `template.yaml`:
//! - no Lambda build links the embedded backend (`MARKETPLACE_BACKEND=embedded`
//!   must never work in AWS: shared/src/config.rs refuses it without the feature);
//! - each build links the AWS client that each of its template settings needs
//!   (a bucket setting needs `s3`, a queue `sqs`, a sender `ses`, a secret
//!   `secrets`); without it the function refuses to start (`ConfigError::NotLinked`).
//!
//! The test suite itself runs the binaries of the workspace build, where the
//! features are unified (tests/api/lambda_binaries.rs).
//!
//! The other way round, the local stack (`make run`: infra's marketplace-local)
//! links no AWS client at all, which halves what a fresh clone compiles before
//! it serves (BENCHMARKS.md, developer loop).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("infra/ has a parent").to_owned()
}

/// The feature of `marketplace-shared` a setting needs (shared/src/config.rs).
const NEEDS: &[(&str, &str)] = &[
    ("ASSETS_BUCKET", "s3"),
    ("DATA_BUCKET", "s3"),
    ("JOBS_QUEUE_URL", "sqs"),
    ("MAIL_FROM", "ses"),
    ("SIGNING_KEY_SECRET_ARN", "secrets"),
    ("BACKUP_KEY_SECRET_ARN", "secrets"),
];

/// Features no Lambda build may have.
const LOCAL_ONLY: &[&str] = &["embedded", "local", "profile-credentials"];

/// Every function of the template: its cargo binary (= package) and the names
/// of its environment variables (its own and the Globals').
fn functions() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let root: Value = serde_norway::from_str(&text).unwrap();
    let names = |variables: Option<&Value>| -> BTreeSet<String> {
        variables
            .and_then(Value::as_mapping)
            .map(|m| m.keys().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let globals = names(root["Globals"]["Function"].get("Environment").and_then(|e| e.get("Variables")));
    let mut functions = BTreeMap::new();
    for (_, resource) in root["Resources"].as_mapping().unwrap() {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned();
        let own = names(resource["Properties"].get("Environment").and_then(|e| e.get("Variables")));
        functions.insert(binary, globals.union(&own).cloned().collect());
    }
    functions
}

/// `cargo tree -p package`: one line per package in a build of `package`
/// alone, "name version (path) feature,feature".
fn tree(package: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none", "-f", "{p} {f}"])
        .current_dir(repo_root())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

/// The features of `marketplace-shared` in a build of `package` alone.
fn shared_features(package: &str) -> BTreeSet<String> {
    let tree = tree(package);
    let line = tree
        .iter()
        .find(|line| line.starts_with("marketplace-shared "))
        .unwrap_or_else(|| panic!("{package} does not depend on marketplace-shared:\n{}", tree.join("\n")));
    // "marketplace-shared v0.1.0 (/path) s3,sqs"
    let features = line.rsplit_once(") ").map_or("", |(_, features)| features);
    features.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect()
}

/// Problems of one function's build: local-only features, or a setting whose
/// client is missing.
fn problems(package: &str, settings: &BTreeSet<String>, features: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for local in LOCAL_ONLY {
        if features.contains(*local) {
            problems.push(format!("{package}: a Lambda build links the local-only feature {local:?}"));
        }
    }
    for (setting, feature) in NEEDS {
        if settings.contains(*setting) && !features.contains(*feature) {
            problems.push(format!(
                "{package}: the template sets {setting}, which needs the feature {feature:?} (enable it in functions/{package}/Cargo.toml)"
            ));
        }
    }
    problems
}

#[test]
fn every_lambda_build_links_the_clients_its_settings_need_and_no_local_backend() {
    let functions = functions();
    assert_eq!(functions.len(), 9, "the template's functions: {:?}", functions.keys());
    let features: BTreeMap<&str, BTreeSet<String>> =
        functions.keys().map(|package| (package.as_str(), shared_features(package))).collect();
    let found: Vec<String> = functions
        .iter()
        .flat_map(|(package, settings)| problems(package, settings, &features[package.as_str()]))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The worker sends mail, auth signs tokens, products takes uploads: their
    // builds are not the bare one.
    assert!(features["worker"].contains("ses"));
    assert!(features["auth"].contains("secrets"));
    assert!(features["products"].contains("s3"));
}

#[test]
fn the_check_sees_a_missing_client_and_a_local_backend() {
    let settings: BTreeSet<String> = ["TABLE_NAME", "MAIL_FROM"].map(String::from).into();
    let without_ses: BTreeSet<String> = ["sqs"].map(String::from).into();
    assert_eq!(problems("worker", &settings, &without_ses).len(), 1);
    let with_embedded: BTreeSet<String> = ["ses", "embedded"].map(String::from).into();
    assert_eq!(problems("worker", &settings, &with_embedded).len(), 1);
    let right: BTreeSet<String> = ["ses"].map(String::from).into();
    assert!(problems("worker", &settings, &right).is_empty());
}

#[test]
fn the_local_stack_links_no_aws_client() {
    let linked = tree("infra");
    let aws: BTreeSet<&str> = linked
        .iter()
        .filter(|p| p.starts_with("aws-sdk-") || p.starts_with("aws-config ") || p.starts_with("aws-smithy-"))
        .map(String::as_str)
        .collect();
    assert!(aws.is_empty(), "marketplace-local's build links {aws:?}");
    assert!(linked.iter().any(|p| p.starts_with("rusqlite ")), "the embedded backend is linked");
    // The admin tool restores into DynamoDB: it does link the clients.
    assert!(tree("marketplace-admin").iter().any(|p| p.starts_with("aws-sdk-dynamodb ")));
}
