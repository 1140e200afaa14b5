//! The drift test: every place that names a route must name the same ones. Compared
//! as (function, method, path): the template's HttpApi events, each function's
//! typed routes (matched by binary name), cargo-lambda's watch router in
//! `Cargo.toml`, the routes the local gateway serves, and the operations of the
//! committed `openapi.json` (the function is the operation's first tag). A second
//! test removes one route from each source in turn and checks the comparison
//! reports it, so it cannot pass vacuously. Also: the committed `openapi.json` is
//! exactly the generated document, and every documented operation reaches a
//! handler of its function.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use infra::functions::HTTP_FUNCTIONS;
use infra::gateway::Gateway;
use infra::template::Template;
use serde_json::Value;

const HTTP_METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// One route as every source can state it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    function: String,
    method: String,
    path: String,
}

impl Entry {
    fn new(function: &str, method: &str, path: &str) -> Self {
        Self { function: function.to_owned(), method: method.to_ascii_uppercase(), path: path.to_owned() }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.method, self.path, self.function)
    }
}

#[derive(Debug, Clone)]
struct Source {
    name: &'static str,
    routes: BTreeSet<Entry>,
}

/// One line per route that some sources name and others do not.
fn differences(sources: &[Source]) -> Vec<String> {
    let union: BTreeSet<&Entry> = sources.iter().flat_map(|s| s.routes.iter()).collect();
    union
        .into_iter()
        .filter_map(|entry| {
            let (has, lacks): (Vec<&Source>, Vec<&Source>) = sources.iter().partition(|s| s.routes.contains(entry));
            if lacks.is_empty() {
                return None;
            }
            let names = |list: Vec<&Source>| list.iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
            Some(format!("{entry}: in {}; missing from {}", names(has), names(lacks)))
        })
        .collect()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("infra/ has a parent").to_owned()
}

fn template_source(template: &Template) -> Source {
    let routes = template
        .functions
        .iter()
        .flat_map(|f| f.routes.iter().map(move |r| Entry::new(&f.binary, &r.method, &r.path)))
        .collect();
    Source { name: "template.yaml", routes }
}

fn functions_source() -> Source {
    let mut routes = BTreeSet::new();
    for function in HTTP_FUNCTIONS {
        let doc = serde_json::to_value((function.routes)().into_openapi()).expect("a document serializes");
        let entries = openapi_entries(&doc).expect("readable routes");
        routes.extend(entries.into_iter().map(|e| Entry::new(function.binary, &e.method, &e.path)));
    }
    Source { name: "functions' routes", routes }
}

/// cargo-lambda's router in any of its forms: `"/path" = "function"` (every
/// method, stated here as `ANY`), `"/path" = [{ method, function }]`, or a list of
/// `{ path, methods?, function }`.
fn router_entries(router: &Value) -> Result<BTreeSet<Entry>, String> {
    let mut entries = BTreeSet::new();
    match router {
        Value::Object(map) => {
            for (path, target) in map {
                match target {
                    Value::String(function) => {
                        entries.insert(Entry::new(function, "ANY", path));
                    }
                    Value::Array(items) => {
                        for item in items {
                            let method = item["method"].as_str().ok_or(format!("{path}: an item has no method"))?;
                            let function =
                                item["function"].as_str().ok_or(format!("{path}: an item has no function"))?;
                            entries.insert(Entry::new(function, method, path));
                        }
                    }
                    other => return Err(format!("{path}: unexpected {other}")),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let path = item["path"].as_str().ok_or("a route has no path")?;
                let function = item["function"].as_str().ok_or(format!("{path}: no function"))?;
                match item.get("methods").and_then(Value::as_array) {
                    None => {
                        entries.insert(Entry::new(function, "ANY", path));
                    }
                    Some(methods) => {
                        for method in methods {
                            entries.insert(Entry::new(
                                function,
                                method.as_str().ok_or("a method is not a string")?,
                                path,
                            ));
                        }
                    }
                }
            }
        }
        other => return Err(format!("the router is neither a table nor a list: {other}")),
    }
    Ok(entries)
}

/// `[workspace.metadata.lambda.watch.router]`, read through `cargo metadata` (as
/// cargo-lambda reads it).
fn cargo_lambda_source() -> Source {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--offline", "--format-version", "1", "--manifest-path"])
        .arg(repo_root().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let router = &metadata["metadata"]["lambda"]["watch"]["router"];
    assert!(!router.is_null(), "Cargo.toml has no [workspace.metadata.lambda.watch.router]");
    Source { name: "Cargo.toml watch router", routes: router_entries(router).expect("a readable cargo-lambda router") }
}

async fn gateway_source(template: &Path) -> (Source, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = shared::AppState::embedded(dir.path()).await.expect("embedded state");
    let gateway = Gateway::load(state, template).expect("gateway loads the template");
    let routes = gateway
        .routes()
        .into_iter()
        .map(|served| Entry::new(served.binary, &served.route.method, &served.route.path))
        .collect();
    (Source { name: "local gateway", routes }, dir)
}

fn openapi_entries(doc: &Value) -> Result<BTreeSet<Entry>, String> {
    let paths = doc["paths"].as_object().ok_or("openapi.json has no paths")?;
    let mut entries = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().ok_or(format!("{path} is not an object"))?;
        for (method, operation) in item.iter().filter(|(k, _)| HTTP_METHODS.contains(&k.as_str())) {
            let function =
                operation["tags"][0].as_str().ok_or(format!("{method} {path} has no tag naming its function"))?;
            entries.insert(Entry::new(function, method, path));
        }
    }
    Ok(entries)
}

fn openapi_source() -> Source {
    let text = std::fs::read_to_string(repo_root().join("openapi.json")).expect("read openapi.json");
    let doc: Value = serde_json::from_str(&text).expect("openapi.json is JSON");
    Source { name: "openapi.json", routes: openapi_entries(&doc).expect("readable OpenAPI paths") }
}

async fn all_sources() -> (Vec<Source>, tempfile::TempDir) {
    let template_path = repo_root().join("template.yaml");
    let template = Template::load(&template_path).expect("template.yaml parses");
    let (gateway, dir) = gateway_source(&template_path).await;
    let sources =
        vec![template_source(&template), functions_source(), cargo_lambda_source(), gateway, openapi_source()];
    for source in &sources {
        assert!(!source.routes.is_empty(), "{} names no routes", source.name);
    }
    (sources, dir)
}

#[tokio::test]
async fn every_source_names_the_same_routes() {
    let (sources, _dir) = all_sources().await;
    let diffs = differences(&sources);
    assert!(diffs.is_empty(), "routes drifted apart:\n  {}", diffs.join("\n  "));
}

#[tokio::test]
async fn removing_any_route_from_any_source_is_reported() {
    let (sources, _dir) = all_sources().await;
    for (index, source) in sources.iter().enumerate() {
        for removed in &source.routes {
            let mut copy = sources.clone();
            copy[index].routes.remove(removed);
            let diffs = differences(&copy);
            let expected = format!("{removed}: in ");
            assert!(
                diffs.iter().any(|d| d.starts_with(&expected) && d.ends_with(&format!("missing from {}", source.name))),
                "removing {removed} from {} went unreported: {diffs:?}",
                source.name
            );
        }
    }
}

#[test]
fn an_extra_route_in_one_source_is_reported() {
    let route = Entry::new("categories", "GET", "/categories");
    let a = Source { name: "a", routes: BTreeSet::from([route.clone()]) };
    let mut b = a.clone();
    b.name = "b";
    b.routes.insert(Entry::new("categories", "PUT", "/categories"));
    assert_eq!(differences(&[a.clone(), a.clone()]), Vec::<String>::new());
    assert_eq!(differences(&[a, b]), ["PUT /categories (categories): in b; missing from a"]);
}

#[test]
fn every_cargo_lambda_router_form_is_read() {
    let table: Value = serde_json::json!({
        "/health": [{"method": "GET", "function": "health"}],
        "/legacy": "health",
    });
    let table = router_entries(&table).unwrap();
    assert!(table.contains(&Entry::new("health", "GET", "/health")));
    assert!(table.contains(&Entry::new("health", "ANY", "/legacy")));
    let list: Value = serde_json::json!([
        {"path": "/categories/{id}", "methods": ["GET", "PATCH"], "function": "categories"},
    ]);
    let list = router_entries(&list).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.contains(&Entry::new("categories", "PATCH", "/categories/{id}")));
}

#[test]
fn the_committed_openapi_json_is_the_generated_document() {
    let committed = std::fs::read_to_string(repo_root().join("openapi.json")).expect("read openapi.json");
    let generated = infra::functions::openapi_json();
    assert!(
        committed == generated,
        "openapi.json is not the document the routes generate; regenerate it with `make contract`"
    );
}

/// Every documented operation, sent to its function's application with made-up
/// path values, reaches a handler: the answer is never the router's own 404 ("no
/// route") or 405. The Lambda binary's `router()` (no document) and the
/// documented `routes()` give the same answer to each.
#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let state = std::sync::Arc::new(shared::AppState::embedded(dir.path()).await.expect("embedded state"));
    let mut checked = 0;
    for function in HTTP_FUNCTIONS {
        let doc = serde_json::to_value((function.routes)().into_openapi()).expect("a document serializes");
        let documented = shared::http::app((function.routes)(), state.clone());
        let served_in_lambda = shared::http::app((function.router)(), state.clone());
        for entry in openapi_entries(&doc).expect("readable routes") {
            let path: String = entry
                .path
                .split('/')
                .map(|segment| if segment.starts_with('{') { "01JD7M2K4Q9R3S5T6V8W0X1Y2Z" } else { segment })
                .collect::<Vec<_>>()
                .join("/");
            let mut answers = Vec::new();
            for app in [&documented, &served_in_lambda] {
                let request = http::Request::builder()
                    .method(entry.method.as_str())
                    .uri(&path)
                    .body(axum::body::Body::empty())
                    .expect("a request");
                let response = app.clone().oneshot(request).await.expect("infallible");
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a body");
                let text = String::from_utf8_lossy(&body).into_owned();
                assert!(
                    status != 405 && !text.contains("no route for"),
                    "{entry} is documented but {} does not route it: {status} {text}",
                    function.binary
                );
                let problem: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                answers.push((status, problem["title"].clone(), problem["detail"].clone()));
            }
            assert_eq!(answers[0], answers[1], "{entry}: routes() and router() answer differently");
            checked += 1;
        }
    }
    assert!(checked >= 18, "only {checked} operations checked");
    // And the check can fail: an undocumented path is the router's own 404.
    let app = shared::http::app((HTTP_FUNCTIONS[0].routes)(), state);
    let request = http::Request::builder().uri("/nowhere").body(axum::body::Body::empty()).expect("a request");
    let response = app.oneshot(request).await.expect("infallible");
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a body");
    assert!(String::from_utf8_lossy(&body).contains("no route for"));
}
