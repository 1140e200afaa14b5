//! The local gateway over a fresh embedded data directory, driven over HTTP: path
//! parameters and query strings reach the handlers, unknown routes are 404
//! problems, CORS follows the template, bodies over 10 MB are 413, every response
//! carries `x-request-id`, and `/openapi.json` is an OpenAPI 3.1 document.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use infra::gateway::MAX_BODY_BYTES;
use infra::template::Template;
use serde_json::Value;
use shared::AppState;
use tempfile::TempDir;

fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("infra/ has a parent").join("template.yaml")
}

struct App {
    addr: SocketAddr,
    client: reqwest::Client,
    state: AppState,
    _dir: TempDir,
}

impl App {
    async fn spawn() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = AppState::embedded(dir.path()).await.expect("embedded state");
        let (addr, _task) = infra::gateway::spawn(state.clone(), &template_path(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("gateway starts");
        Self { addr, client: reqwest::Client::new(), state, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }
}

/// An origin the template's CORS configuration allows.
fn allowed_origin() -> String {
    let template = Template::load(&template_path()).expect("template parses");
    let cors = template.cors.expect("template.yaml configures CORS on the HTTP API");
    cors.allow_origins.iter().find(|o| !o.contains('*')).cloned().unwrap_or_else(|| "http://localhost:5173".to_owned())
}

const DISALLOWED_ORIGIN: &str = "https://not-allowed.invalid";

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Asserts a problem+json body with `status` whose `requestId` is the header's.
async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(header(&response, "content-type"), Some("application/problem+json"));
    let request_id = header(&response, "x-request-id").expect("x-request-id").to_owned();
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status);
    assert_eq!(body["requestId"], request_id.as_str());
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem has {field}: {body}");
    }
    body
}

#[tokio::test]
async fn path_parameters_reach_the_handler() {
    let app = App::spawn().await;
    let body = problem(app.get("/categories/01ARZ3NDEKTSV4RRFFQ69G5FAV").await, 404).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("no category with id") && detail.contains("01ARZ3NDEKTSV4RRFFQ69G5FAV"), "{detail}");
}

#[tokio::test]
async fn query_strings_reach_the_handler() {
    let app = App::spawn().await;
    infra::seed::seed(&app.state).await.expect("seed");
    let body = problem(app.get("/categories?limit=0").await, 422).await;
    assert_eq!(body["errors"][0]["field"], "limit");
    let page: Value = app.get("/categories?limit=2").await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["nextCursor"].is_string());
    let cursor = page["nextCursor"].as_str().unwrap();
    let next: Value = app
        .client
        .get(app.url("/categories"))
        .query(&[("limit", "2"), ("cursor", cursor)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);
}

#[tokio::test]
async fn unknown_routes_are_404_problems_from_the_gateway() {
    let app = App::spawn().await;
    let body = problem(app.get("/no/such/route").await, 404).await;
    assert!(body["detail"].as_str().unwrap().contains("GET /no/such/route"));
    // A known path with a method no route has is also 404, as in API Gateway.
    problem(app.client.put(app.url("/health")).send().await.unwrap(), 404).await;
    problem(app.get("/categories/").await, 404).await;
}

#[tokio::test]
async fn non_utf8_bodies_reach_the_handler_as_bytes() {
    let app = App::spawn().await;
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body(vec![b'"', 0xff, 0xfe, b'"'])
        .send()
        .await
        .unwrap();
    let body = problem(response, 400).await;
    assert!(body["detail"].as_str().unwrap().contains("malformed JSON"), "{body}");
}

#[tokio::test]
async fn cors_preflight_is_answered_for_allowed_origins_only() {
    let app = App::spawn().await;
    let origin = allowed_origin();
    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/categories"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight(&origin).await.unwrap();
    assert_eq!(allowed.status(), 204);
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(origin.as_str()));
    assert!(header(&allowed, "access-control-allow-methods").unwrap().to_ascii_uppercase().contains("POST"));
    assert!(header(&allowed, "access-control-allow-headers").is_some());
    assert!(header(&allowed, "x-request-id").is_some());

    let refused = preflight(DISALLOWED_ORIGIN).await.unwrap();
    assert_eq!(refused.status(), 204);
    assert!(header(&refused, "access-control-allow-origin").is_none());
    assert!(header(&refused, "access-control-allow-methods").is_none());
}

#[tokio::test]
async fn actual_responses_carry_cors_headers_for_allowed_origins_only() {
    let app = App::spawn().await;
    let origin = allowed_origin();
    let allowed = app.client.get(app.url("/health")).header("origin", &origin).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(origin.as_str()));
    let template = Template::load(&template_path()).unwrap();
    if !template.cors.unwrap().expose_headers.is_empty() {
        assert!(header(&allowed, "access-control-expose-headers").is_some());
    }
    let refused = app.client.get(app.url("/health")).header("origin", DISALLOWED_ORIGIN).send().await.unwrap();
    assert_eq!(refused.status(), 200);
    assert!(header(&refused, "access-control-allow-origin").is_none());
    let no_origin = app.get("/health").await;
    assert!(header(&no_origin, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn bodies_over_10_mb_are_rejected_by_the_gateway() {
    let app = App::spawn().await;
    let post = |size: usize| {
        app.client
            .post(app.url("/auth/register"))
            .header("content-type", "application/json")
            .body(vec![b' '; size])
            .send()
    };
    let over = problem(post(MAX_BODY_BYTES + 1).await.unwrap(), 413).await;
    assert!(over["detail"].as_str().unwrap().contains(&MAX_BODY_BYTES.to_string()), "{over}");
    // Exactly 10 MB passes the gateway; the function's own (smaller) JSON limit answers.
    let at_limit = problem(post(MAX_BODY_BYTES).await.unwrap(), 413).await;
    assert!(!at_limit["detail"].as_str().unwrap().contains(&MAX_BODY_BYTES.to_string()), "{at_limit}");
}

#[tokio::test]
async fn every_response_carries_a_fresh_request_id() {
    let app = App::spawn().await;
    let mut ids = Vec::new();
    let responses = vec![
        app.get("/health").await,
        app.get("/nowhere").await,
        app.get("/openapi.json").await,
        app.client.request(reqwest::Method::OPTIONS, app.url("/health")).send().await.unwrap(),
        app.client.post(app.url("/auth/login")).body("{}").send().await.unwrap(),
    ];
    for response in &responses {
        let id = header(response, "x-request-id").unwrap_or_else(|| panic!("{} has no x-request-id", response.url()));
        ids.push(id.to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), responses.len(), "request ids repeat");
}

#[tokio::test]
async fn openapi_document_is_served_and_is_openapi_3_1() {
    let app = App::spawn().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").unwrap().starts_with("application/json"));
    let doc: Value = response.json().await.expect("OpenAPI document is JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert!(doc["paths"]["/categories/{id}"]["get"].is_object());
}
