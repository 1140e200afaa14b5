//! Each function's real binary, run as a Lambda: the test serves the Lambda
//! Runtime API on loopback, hands the binary an API Gateway event from `events/`,
//! and reads its response. The binaries run with Lambda's environment and the
//! DynamoDB table on the test endpoint; a missing setting must stop start-up.
//! They are the workspace's debug builds (features unified with the rest of the
//! workspace, so no second compile of shared); which features each Lambda build
//! links, with no embedded backend, is checked by infra/tests/lambda_features.rs.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use shared::tokens::TokenKeys;
use tokio::sync::{mpsc, OnceCell};

use crate::helpers::{fresh_bucket, fresh_table, repo_root};

/// What the binary posted back for one invocation.
#[derive(Debug)]
struct Outcome {
    kind: &'static str,
    body: Value,
}

#[derive(Clone)]
struct Emulator {
    pending: Arc<Mutex<VecDeque<(String, String)>>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

async fn next_invocation(State(emulator): State<Emulator>) -> (StatusCode, HeaderMap, String) {
    loop {
        let next = emulator.pending.lock().unwrap().pop_front();
        if let Some((id, event)) = next {
            let mut headers = HeaderMap::new();
            let deadline = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 30_000;
            headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            headers.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:test".parse().unwrap(),
            );
            headers.insert("content-type", "application/json".parse().unwrap());
            return (StatusCode::OK, headers, event);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn record(emulator: &Emulator, kind: &'static str, body: &str) -> StatusCode {
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    let _ = emulator.outcomes.send(Outcome { kind, body });
    StatusCode::ACCEPTED
}

async fn invocation_response(State(e): State<Emulator>, Path(_id): Path<String>, body: String) -> StatusCode {
    record(&e, "response", &body)
}

async fn invocation_error(State(e): State<Emulator>, Path(_id): Path<String>, body: String) -> StatusCode {
    record(&e, "error", &body)
}

async fn init_error(State(e): State<Emulator>, body: String) -> StatusCode {
    record(&e, "init_error", &body)
}

/// The function's binary from the workspace build. `make test` builds it
/// before the tests run (the same command as here, so this is then a no-op);
/// a `cargo test` on its own builds it here, once per run.
async fn binary(name: &str) -> PathBuf {
    static BUILT: OnceCell<()> = OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let mut build = tokio::process::Command::new(env!("CARGO"));
            build.args(["build", "--workspace", "--all-targets"]).current_dir(repo_root());
            // What `cargo test` sets for this test binary (CARGO_PKG_NAME, …)
            // must not reach the nested cargo: build scripts that watch those
            // variables (ring's does) would see them changed and rebuild.
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy();
                if name.starts_with("CARGO_PKG_")
                    || name.starts_with("CARGO_BIN_")
                    || name.starts_with("CARGO_MANIFEST_")
                    || matches!(
                        name.as_ref(),
                        "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
                    )
                {
                    build.env_remove(name.as_ref());
                }
            }
            let status = build.status().await.expect("cargo runs");
            assert!(status.success(), "building the workspace failed");
        })
        .await;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    target.join("debug").join(name)
}

/// Lambda environment for a function using `table` on the test endpoint.
struct LambdaEnv {
    vars: Vec<(String, String)>,
}

async fn lambda_env(function: &str) -> LambdaEnv {
    let (sdk, table) = fresh_table().await;
    let pkcs8 = TokenKeys::generate_pkcs8();
    let keys = TokenKeys::from_pkcs8(&pkcs8).unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret = secrets
        .create_secret()
        .name(format!("signing-key-{table}"))
        .secret_string(STANDARD.encode(&pkcs8))
        .send()
        .await
        .expect("create secret");
    let mut vars = vec![
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("TABLE_NAME", table),
        ("TOKEN_PUBLIC_KEY", keys.public_key_b64().to_owned()),
        ("SIGNING_KEY_SECRET_ARN", secret.arn().unwrap().to_owned()),
    ];
    for name in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        vars.push((name, std::env::var(name).expect("set by aws_endpoint()")));
    }
    LambdaEnv { vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
}

/// Adds a fresh bucket and a CDN base URL to `env`, as the template does for
/// `products` and `worker`.
async fn with_assets_bucket(env: &mut LambdaEnv) {
    env.vars.push(("ASSETS_BUCKET".into(), fresh_bucket().await.bucket().to_owned()));
    env.vars.push(("ASSETS_BASE_URL".into(), "https://cdn.example.com".into()));
}

/// Runs `function`'s binary under the emulator for `events`, returning outcomes
/// in order and the process's log output.
async fn invoke(function: &str, env: &LambdaEnv, events: &[&str]) -> (Vec<Outcome>, String) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let emulator = Emulator { pending: Arc::default(), outcomes: tx };
    for (i, event) in events.iter().enumerate() {
        let raw = std::fs::read_to_string(repo_root().join("events").join(event)).expect("event file");
        emulator.pending.lock().unwrap().push_back((format!("req-{i}"), raw));
    }
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(invocation_response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(emulator);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut child = tokio::process::Command::new(binary(function).await)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut outcomes = Vec::new();
    while outcomes.len() < events.len() {
        tokio::select! {
            outcome = rx.recv() => outcomes.push(outcome.expect("emulator alive")),
            status = child.wait() => panic!("{function} exited early with {status:?}"),
            _ = tokio::time::sleep(Duration::from_secs(60)) => panic!("{function} did not answer in time"),
        }
    }
    child.kill().await.ok();
    let output = child.wait_with_output().await.unwrap();
    server.abort();
    let logs = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (outcomes, logs)
}

fn status_of(outcome: &Outcome) -> u64 {
    assert_eq!(outcome.kind, "response", "{outcome:?}");
    outcome.body["statusCode"].as_u64().expect("an API Gateway v2 response")
}

#[tokio::test]
async fn health_binary_answers_its_event_as_a_lambda() {
    let env = lambda_env("health").await;
    let (outcomes, logs) = invoke("health", &env, &["health.json"]).await;
    assert_eq!(status_of(&outcomes[0]), 200, "{logs}");
    let body: Value = serde_json::from_str(outcomes[0].body["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["storage"]["backend"], "aws");
}

#[tokio::test]
async fn auth_binary_registers_and_logs_in_as_a_lambda() {
    let env = lambda_env("auth").await;
    let (outcomes, logs) = invoke("auth", &env, &["auth-register.json", "auth-login.json", "auth-me.json"]).await;
    assert_eq!(status_of(&outcomes[0]), 202, "{logs}");
    assert_eq!(status_of(&outcomes[1]), 200, "{logs}");
    // The sample `me` event carries a placeholder token: 401, as a problem.
    assert_eq!(status_of(&outcomes[2]), 401, "{logs}");
    // JSON log lines that name the request and never the password.
    let password = serde_json::from_str::<Value>(
        serde_json::from_str::<Value>(&std::fs::read_to_string(repo_root().join("events/auth-login.json")).unwrap())
            .unwrap()["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!logs.contains(&password), "the password leaked into the logs");
    let served: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "served")
        .collect();
    assert_eq!(served.len(), 3, "{logs}");
    assert!(served.iter().all(|line| line["span"]["request_id"].is_string()), "{logs}");
}

#[tokio::test]
async fn categories_binary_lists_as_a_lambda() {
    let env = lambda_env("categories").await;
    let (outcomes, logs) = invoke("categories", &env, &["categories-list.json"]).await;
    assert_eq!(status_of(&outcomes[0]), 200, "{logs}");
}

#[tokio::test]
async fn products_binary_browses_and_reads_as_a_lambda() {
    let mut env = lambda_env("products").await;
    with_assets_bucket(&mut env).await;
    let (outcomes, logs) = invoke("products", &env, &["products-list.json", "products-get.json"]).await;
    assert_eq!(status_of(&outcomes[0]), 200, "{logs}");
    assert_eq!(status_of(&outcomes[1]), 404, "{logs}");
}

#[tokio::test]
async fn worker_binary_reports_partial_batch_failures_as_a_lambda() {
    let mut env = lambda_env("worker").await;
    with_assets_bucket(&mut env).await;
    let (outcomes, logs) = invoke("worker", &env, &["worker-image-uploaded.json", "worker-malformed.json"]).await;
    assert_eq!(outcomes[0].kind, "response", "{logs}");
    assert_eq!(outcomes[0].body, serde_json::json!({"batchItemFailures": []}), "{logs}");
    assert_eq!(
        outcomes[1].body,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "0d6c7f3e-2a41-4b8e-8f0a-93c5d2e1b7a4"}]}),
        "{logs}"
    );
    let jobs: Vec<Value> = logs.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    assert!(jobs.iter().any(|line| line["span"]["message_id"].is_string()), "log lines carry the message id: {logs}");
}

/// The scheduled functions as Lambda runs them: the schedule's input as the
/// event, the data bucket on the test endpoint, a result or a clear error.
#[tokio::test]
async fn scheduled_binaries_run_their_jobs_as_a_lambda() {
    let mut env = lambda_env("archive").await;
    with_assets_bucket(&mut env).await;
    env.vars.push(("DATA_BUCKET".into(), fresh_bucket().await.bucket().to_owned()));
    let (outcomes, logs) = invoke("archive", &env, &["archive-scheduled.json"]).await;
    assert_eq!(outcomes[0].kind, "response", "{logs}");
    assert_eq!(outcomes[0].body["ordersArchived"], 0, "{logs}");
    assert_eq!(outcomes[0].body["archiveComplete"], true, "{logs}");
    assert!(logs.contains("\"OrdersArchived\"") && logs.contains("CloudWatchMetrics"), "an EMF record: {logs}");

    let mut env = lambda_env("backup").await;
    env.vars.push(("DATA_BUCKET".into(), fresh_bucket().await.bucket().to_owned()));
    // The backup key, as the template generates it: 64 letters and digits.
    let secrets = aws_sdk_secretsmanager::Client::new(&shared::adapters::sdk_config().await);
    let name = format!("backup-key-{}", ulid::Ulid::new());
    let secret = secrets.create_secret().name(name).secret_string("k".repeat(64)).send().await.expect("create secret");
    env.vars.push(("BACKUP_KEY_SECRET_ARN".into(), secret.arn().unwrap().to_owned()));
    let (outcomes, logs) = invoke("backup", &env, &["backup-scheduled.json"]).await;
    assert_eq!(outcomes[0].kind, "response", "{logs}");
    assert_eq!(outcomes[0].body["job"], "backup", "{logs}");
}

#[tokio::test]
async fn orders_binary_answers_its_events_as_a_lambda() {
    let env = lambda_env("orders").await;
    let (outcomes, logs) = invoke("orders", &env, &["orders-list.json", "orders-checkout.json"]).await;
    let statuses: Vec<u64> = outcomes.iter().map(status_of).collect();
    // The sample events carry placeholder tokens.
    assert_eq!(statuses, [401, 401], "{logs}");
}

#[tokio::test]
async fn users_binary_answers_its_events_as_a_lambda() {
    let env = lambda_env("users").await;
    let events = ["users-list-farmers.json", "users-get-farmer.json", "users-me.json", "users-list.json"];
    let (outcomes, logs) = invoke("users", &env, &events).await;
    let statuses: Vec<u64> = outcomes.iter().map(status_of).collect();
    // Public list; an unknown farmer; placeholder tokens.
    assert_eq!(statuses, [200, 404, 401, 401], "{logs}");
}

#[tokio::test]
async fn worker_binary_sends_mail_through_ses_and_runs_account_jobs_as_a_lambda() {
    let mut env = lambda_env("worker").await;
    with_assets_bucket(&mut env).await;
    let sdk = shared::adapters::sdk_config().await;
    let sender = format!("no-reply-{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    let ses = shared::adapters::ses_client(&sdk);
    ses.create_email_identity().email_identity(&sender).send().await.expect("create the sender identity");
    env.vars.push(("MAIL_FROM".into(), sender.clone()));
    env.vars.push(("LINK_BASE_URL".into(), "https://market.example.com".into()));
    let (outcomes, logs) = invoke("worker", &env, &["worker-send-email.json", "worker-account-jobs.json"]).await;
    for outcome in &outcomes {
        assert_eq!(outcome.body, serde_json::json!({"batchItemFailures": []}), "{logs}");
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json")).await.unwrap().json().await.unwrap();
    let sent = data["ses"]["Message"].as_array().expect("SES messages");
    assert!(
        sent.iter().any(|m| m["source"] == sender.as_str() && m["destinations"]["ToAddresses"][0] == "kim@example.com"),
        "the endpoint received the mail: {sent:?}"
    );
}

/// Starts `function`'s binary with `env` and returns what it printed to stderr,
/// asserting that it refused to start.
async fn refusal(function: &str, env: &LambdaEnv) -> String {
    let output = tokio::process::Command::new(binary(function).await)
        .env_clear()
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success(), "{function} started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_binary_with_a_bucket_but_no_asset_url_refuses_to_start() {
    let mut env = lambda_env("products").await;
    env.vars.push(("ASSETS_BUCKET".into(), "some-bucket".into()));
    let stderr = refusal("products", &env).await;
    assert!(stderr.contains("ASSETS_BASE_URL"), "{stderr}");
}

/// (That a Lambda build also refuses `MARKETPLACE_BACKEND=embedded`, having no
/// embedded backend, is infra/tests/lambda_features.rs's check.)
#[tokio::test]
async fn a_binary_told_an_unknown_backend_refuses_to_start() {
    let typo = LambdaEnv { vars: vec![("MARKETPLACE_BACKEND".into(), "dynamo".into())] };
    let stderr = refusal("health", &typo).await;
    assert!(stderr.contains("MARKETPLACE_BACKEND"), "{stderr}");
}

#[tokio::test]
async fn a_binary_missing_its_table_setting_refuses_to_start() {
    let mut env = lambda_env("health").await;
    env.vars.retain(|(k, _)| k != "TABLE_NAME");
    let stderr = refusal("health", &env).await;
    assert!(stderr.contains("TABLE_NAME"), "{stderr}");
}
