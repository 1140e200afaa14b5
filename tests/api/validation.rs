//! Bad input is answered 400, 413, 415 or 422 problem+json with field errors,
//! never a 500.

use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, unique_email, PASSWORD};

async fn post_raw(
    app: &crate::helpers::TestApp,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in [&b"{"[..], b"not json", b"{\"email\": }", b"{} trailing"] {
        assert_problem(post_raw(&app, "/auth/register", Some("application/json"), body.to_vec()).await, 400).await;
    }
}

#[tokio::test]
async fn invalid_utf8_is_400() {
    let app = spawn_app().await;
    let body = b"{\"email\":\"\xff\xfe\",\"password\":\"x\"}".to_vec();
    assert_problem(post_raw(&app, "/auth/login", Some("application/json"), body).await, 400).await;
}

#[tokio::test]
async fn missing_and_wrong_typed_fields_are_422_with_the_field_named() {
    let app = spawn_app().await;
    let cases = [
        (json!({"password": PASSWORD, "displayName": "A", "role": "customer"}), "email"),
        (json!({"email": 42, "password": PASSWORD, "displayName": "A", "role": "customer"}), "email"),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "displayName": ["A"], "role": "customer"}),
            "displayName",
        ),
        (json!({"email": "a@example.com", "password": PASSWORD, "displayName": "A", "role": "wizard"}), "role"),
        (json!({"email": "a@example.com", "password": PASSWORD, "displayName": "A"}), "role"),
    ];
    for (body, field) in cases {
        let problem = assert_problem(app.post("/auth/register", &body, None).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
        assert!(problem["errors"][0]["message"].is_string());
    }
}

#[tokio::test]
async fn invalid_values_are_422_listing_every_bad_field() {
    let app = spawn_app().await;
    let body =
        json!({"email": "not-an-email", "password": "short", "displayName": "x".repeat(10_000), "role": "farmer"});
    let problem = assert_problem(app.post("/auth/register", &body, None).await, 422).await;
    let mut fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["displayName", "email", "password"]);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let body = json!({"email": unique_email("big"), "password": PASSWORD, "displayName": "x".repeat(100_000), "role": "farmer"});
    assert_problem(app.post("/auth/register", &body, None).await, 413).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    assert_problem(post_raw(&app, "/auth/login", Some("text/plain"), b"{}".to_vec()).await, 415).await;
    assert_problem(post_raw(&app, "/auth/login", None, b"{}".to_vec()).await, 415).await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    assert_problem(app.get("/nope", None).await, 404).await;
    let response = app.client.put(app.url("/auth/login")).send().await.unwrap();
    assert!(response.status() == 404 || response.status() == 405, "{}", response.status());
}

#[tokio::test]
async fn every_response_is_checked_against_the_openapi_document() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health", None).await.status(), 200);
    assert_problem(app.get("/categories/nope", None).await, 404).await;
    assert_eq!(app.checked_responses(), 2);

    // The check can fail: an undocumented status, and a body missing a property.
    let violations = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let observe = crate::helpers::conformance_observer(violations.clone(), Default::default());
    let route = infra::HttpRoute { method: "GET".into(), path: "/health".into() };
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    for (status, body) in [(418, r#"{}"#), (200, r#"{"status":"ok","version":"1"}"#)] {
        observe(&infra::gateway::Exchange {
            method: &http::Method::GET,
            route: &route,
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: &headers,
            body: body.as_bytes(),
        });
    }
    let violations = violations.lock().unwrap();
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations[0].contains("not documented"), "{}", violations[0]);
}
