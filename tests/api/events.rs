//! Every sample event in `events/` runs through its function's handler, the way
//! the Lambda runtime would deliver it: API Gateway events are answered by a route
//! (never a 5xx, never an unmatched-route 404); SQS events reach the worker, which
//! reports exactly the malformed messages as failures; scheduled events are the
//! template's schedule inputs and run their function.

use serde_json::Value;

use crate::helpers::{embedded_state, repo_root};

/// The function whose routes document `method` `path` (a route template).
fn function_for(method: &str, path: &str) -> Option<&'static infra::functions::HttpFunction> {
    infra::functions::HTTP_FUNCTIONS.iter().find(|function| {
        let doc = serde_json::to_value((function.routes)().into_openapi()).expect("a document serializes");
        doc["paths"][path].get(method.to_ascii_lowercase()).is_some()
    })
}

#[tokio::test]
async fn every_sample_event_is_answered_by_its_handler() {
    let mut seen = 0;
    let mut sqs_events = 0;
    let mut scheduled_events = 0;
    let mut entries: Vec<_> =
        std::fs::read_dir(repo_root().join("events")).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let raw = std::fs::read_to_string(&path).unwrap();
        let event: Value = serde_json::from_str(&raw).unwrap();
        if event["Records"][0]["eventSource"] == "aws:dynamodb" {
            check_stream_record(&path, &event);
            continue;
        }
        if event.get("job").is_some() {
            scheduled_events += check_scheduled_event(&path, event).await;
            continue;
        }
        let Some(route_key) = event["routeKey"].as_str() else {
            sqs_events += check_sqs_event(&path, &raw).await;
            continue;
        };
        let method = event["requestContext"]["http"]["method"].as_str().unwrap();
        let raw_path = event["rawPath"].as_str().unwrap();
        assert!(route_key.starts_with(method), "{}: routeKey and method disagree", path.display());
        let template_path = route_key.split_once(' ').map(|(_, p)| p).unwrap_or_default();
        assert!(raw_path.starts_with('/'), "{}: rawPath", path.display());
        let function = function_for(method, template_path)
            .unwrap_or_else(|| panic!("{}: no function serves {route_key}", path.display()))
            .binary;

        let (state, _dir) = embedded_state().await;
        let request = lambda_http::request::from_str(&raw)
            .unwrap_or_else(|e| panic!("{}: not an API Gateway event: {e}", path.display()));
        let routes = infra::functions::http_function(function).expect("listed").routes;
        let app = shared::http::app(routes(), std::sync::Arc::new(state));
        let response = tower::ServiceExt::oneshot(app, request).await.expect("infallible");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a body");
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(status < 500, "{} ({function}) answered {status}: {body}", path.display());
        assert!(!body.contains("no route for"), "{} did not reach a route: {body}", path.display());
        assert!(status != 405, "{} did not reach a route", path.display());
        seen += 1;
    }
    let routes: usize = infra::functions::HTTP_FUNCTIONS
        .iter()
        .map(|f| {
            let doc = (f.routes)().into_openapi();
            doc.paths
                .paths
                .values()
                .map(|item| {
                    [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                        .iter()
                        .filter(|op| op.is_some())
                        .count()
                })
                .sum::<usize>()
        })
        .sum();
    assert!(seen >= routes, "expected an event per route ({routes}), found {seen}");
    assert_eq!(sqs_events, 5, "expected the worker's five SQS events");
    assert_eq!(scheduled_events, 3, "expected the three schedules' events");
}

/// A scheduled function's event (`<binary>-scheduled.json`): a schedule's
/// input must be exactly what the template's schedule sends, and runs on an
/// empty store.
async fn check_scheduled_event(path: &std::path::Path, event: Value) -> usize {
    let name = path.file_stem().unwrap().to_str().unwrap();
    let (binary, kind) = name.split_once('-').unwrap_or_else(|| panic!("{name}: not <function>-<what>"));
    let function = infra::functions::scheduled_function(binary)
        .unwrap_or_else(|| panic!("{}: no scheduled function {binary}", path.display()));
    let (state, _dir) = embedded_state().await;
    let result = (function.handle)(&state, event.clone()).await;
    assert!(kind.ends_with("scheduled"), "{}: scheduled functions take only their schedules' input", path.display());
    let template = infra::Template::load(&repo_root().join("template.yaml")).unwrap();
    let inputs: Vec<&Value> = template.schedules.iter().filter(|s| s.binary == binary).map(|s| &s.input).collect();
    assert!(inputs.contains(&&event), "{}: no schedule of {binary} sends it ({inputs:?})", path.display());
    let outcome = result.unwrap_or_else(|e| panic!("{} failed: {e}", path.display()));
    assert!(outcome.is_object(), "{}: {outcome}", path.display());
    1
}

/// A stream record of the outbox, as the relay (an EventBridge Pipe) reads it:
/// a new `OUTBOX` item whose `job` attribute, forwarded as the message body,
/// is a job the worker understands.
fn check_stream_record(path: &std::path::Path, event: &Value) {
    for record in event["Records"].as_array().unwrap() {
        assert_eq!(record["eventName"], "INSERT", "{}", path.display());
        assert_eq!(record["dynamodb"]["Keys"]["pk"]["S"], shared::repo::outbox::PARTITION, "{}", path.display());
        let job = record["dynamodb"]["NewImage"]["job"]["S"].as_str().expect("a job attribute");
        serde_json::from_str::<shared::jobs::Job>(job).unwrap_or_else(|e| panic!("{}: not a job: {e}", path.display()));
    }
}

/// Runs an SQS event through the worker: messages whose body is not JSON are the
/// only failures reported. Returns 1 when the file was an SQS event.
async fn check_sqs_event(path: &std::path::Path, raw: &str) -> usize {
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(raw).unwrap_or_else(|e| panic!("{}: neither API Gateway nor SQS: {e}", path.display()));
    assert!(!event.records.is_empty(), "{}: no records", path.display());
    let malformed: Vec<String> = event
        .records
        .iter()
        .filter(|r| serde_json::from_str::<Value>(r.body.as_deref().unwrap_or_default()).is_err())
        .map(|r| r.message_id.clone().unwrap_or_default())
        .collect();
    let (state, _dir) = embedded_state().await;
    let response = worker::handle(&state, event).await;
    let failed: Vec<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
    assert_eq!(failed, malformed, "{}", path.display());
    1
}
