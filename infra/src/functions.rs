//! The tables of functions local tools can run in-process: binary name (as in the
//! template's `Metadata.BuildProperties.Binary`) → the routes the Lambda binary
//! serves (HTTP functions) or the handler it calls (queue and scheduled
//! functions), and the OpenAPI document generated from those routes.

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use shared::http::{Router, Routes};
use shared::AppState;
use utoipa::openapi::OpenApi;

/// One HTTP function.
#[derive(Debug, Clone, Copy)]
pub struct HttpFunction {
    /// The cargo binary name, matched against the template.
    pub binary: &'static str,
    /// Its typed routes with their OpenAPI operations.
    pub routes: fn() -> Routes,
    /// The same routes without their document: what the Lambda binary serves.
    pub router: fn() -> Router,
}

/// Every HTTP function. A template function with HttpApi routes and no entry here
/// stops the local gateway at start-up.
pub const HTTP_FUNCTIONS: &[HttpFunction] = &[
    HttpFunction { binary: "health", routes: health::routes, router: health::router },
    HttpFunction { binary: "auth", routes: auth::routes, router: auth::router },
    HttpFunction { binary: "categories", routes: categories::routes, router: categories::router },
    HttpFunction { binary: "products", routes: products::routes, router: products::router },
    HttpFunction { binary: "users", routes: users::routes, router: users::router },
    HttpFunction { binary: "orders", routes: orders::routes, router: orders::router },
];

/// The HTTP function built as `binary`.
pub fn http_function(binary: &str) -> Option<&'static HttpFunction> {
    HTTP_FUNCTIONS.iter().find(|f| f.binary == binary)
}

/// The OpenAPI document of every HTTP function's routes.
pub fn openapi() -> OpenApi {
    shared::http::document(HTTP_FUNCTIONS.iter().map(|f| (f.routes)().into_openapi()))
}

/// `openapi()` as the committed `openapi.json` holds it: pretty JSON and a newline.
pub fn openapi_json() -> String {
    let mut text = openapi().to_pretty_json().expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

/// The header of cargo-lambda's watch router table in the workspace `Cargo.toml`.
pub const WATCH_ROUTER_HEADER: &str = "[workspace.metadata.lambda.watch.router]";

/// The body of cargo-lambda's watch router table: every operation of every HTTP
/// function's routes, sent to that function's binary.
pub fn watch_router_toml() -> String {
    let mut by_path: std::collections::BTreeMap<String, Vec<(String, &str)>> = Default::default();
    for function in HTTP_FUNCTIONS {
        let doc = (function.routes)().into_openapi();
        for (path, item) in doc.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            let entry = by_path.entry(path).or_default();
            entry.extend(
                methods.into_iter().filter(|(_, present)| *present).map(|(m, _)| (m.to_owned(), function.binary)),
            );
        }
    }
    let mut text = String::new();
    for (path, targets) in by_path {
        let items: Vec<String> = targets
            .iter()
            .map(|(method, binary)| format!("{{ method = \"{method}\", function = \"{binary}\" }}"))
            .collect();
        if items.len() == 1 {
            text.push_str(&format!("\"{path}\" = [{}]\n", items[0]));
        } else {
            text.push_str(&format!("\"{path}\" = [\n"));
            for item in items {
                text.push_str(&format!("    {item},\n"));
            }
            text.push_str("]\n");
        }
    }
    text
}

/// `cargo_toml` with its watch router table (the file's last table) replaced by
/// `watch_router_toml()`; `None` when the table is missing.
pub fn with_generated_watch_router(cargo_toml: &str) -> Option<String> {
    let start = cargo_toml.find(WATCH_ROUTER_HEADER)? + WATCH_ROUTER_HEADER.len();
    Some(format!("{}\n{}", &cargo_toml[..start], watch_router_toml()))
}

/// The future a queue handler returns, borrowing the state.
pub type QueueHandlerFuture<'a> = Pin<Box<dyn Future<Output = SqsBatchResponse> + Send + 'a>>;

/// A queue function's `handle`, as a plain function pointer.
pub type QueueHandlerFn = for<'a> fn(&'a AppState, SqsEvent) -> QueueHandlerFuture<'a>;

/// One SQS-triggered function.
#[derive(Clone, Copy)]
pub struct QueueFunction {
    /// The cargo binary name, matched against the template.
    pub binary: &'static str,
    /// Its `handle` fn, the same one the Lambda binary calls.
    pub handle: QueueHandlerFn,
}

fn worker(state: &AppState, event: SqsEvent) -> QueueHandlerFuture<'_> {
    Box::pin(worker::handle(state, event))
}

/// Every SQS-triggered function. A template function with an SQS event and no
/// entry here stops the local queue pump at start-up.
pub const QUEUE_FUNCTIONS: &[QueueFunction] = &[QueueFunction { binary: "worker", handle: worker }];

/// The queue function built as `binary`.
pub fn queue_function(binary: &str) -> Option<&'static QueueFunction> {
    QUEUE_FUNCTIONS.iter().find(|f| f.binary == binary)
}

/// The future a scheduled function's handler returns: the invocation's result
/// as JSON, or the error it failed with.
pub type ScheduledFuture<'a> = Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + 'a>>;

/// A scheduled function's handler, given the schedule's input.
pub type ScheduledHandlerFn = for<'a> fn(&'a AppState, serde_json::Value) -> ScheduledFuture<'a>;

/// One function invoked by `ScheduleV2` events.
#[derive(Clone, Copy)]
pub struct ScheduledFunction {
    /// The cargo binary name, matched against the template.
    pub binary: &'static str,
    /// Runs one invocation with the settings the binary reads from the
    /// environment, as the Lambda binary does.
    pub handle: ScheduledHandlerFn,
}

/// The function's timeout in the template (900 s for both scheduled
/// functions): a local run gets the same deadline.
const SCHEDULED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);

fn to_json<T: serde::Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Result<serde_json::Value, String> {
    let value = result.map_err(|e| e.to_string())?;
    serde_json::to_value(value).map_err(|e| e.to_string())
}

fn archive(state: &AppState, event: serde_json::Value) -> ScheduledFuture<'_> {
    Box::pin(async move {
        let settings = archive::Settings::from_env().map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now() + SCHEDULED_TIMEOUT;
        to_json(archive::handle(state, &settings, event, deadline).await)
    })
}

fn backup(state: &AppState, event: serde_json::Value) -> ScheduledFuture<'_> {
    Box::pin(async move {
        let settings = backup::settings_from_env().map_err(|e| e.to_string())?;
        let key = backup::key_from_env(state).await.map_err(|e| e.to_string())?;
        to_json(backup::handle(state, &settings, &key, event).await)
    })
}

/// Every scheduled function. A template function with a `ScheduleV2` event
/// and no entry here stops the local scheduler at start-up.
pub const SCHEDULED_FUNCTIONS: &[ScheduledFunction] =
    &[ScheduledFunction { binary: "archive", handle: archive }, ScheduledFunction { binary: "backup", handle: backup }];

/// The scheduled function built as `binary`.
pub fn scheduled_function(binary: &str) -> Option<&'static ScheduledFunction> {
    SCHEDULED_FUNCTIONS.iter().find(|f| f.binary == binary)
}
