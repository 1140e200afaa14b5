//! A function's HTTP application: its typed routes (an `OpenApiRouter`, so the
//! routes and the OpenAPI document come from the same declarations) plus what
//! every function shares: a span and an `x-request-id` per request, problem+json
//! 404/405 for anything the routes do not serve, and `run` for the Lambda binary.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use http::{HeaderName, HeaderValue};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;

use super::ApiError;
use crate::AppState;

/// The routes of one function, with their OpenAPI operations.
pub type Routes = OpenApiRouter<Arc<AppState>>;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served (API Gateway's request id), for problem
/// bodies; a fresh ULID outside a request.
pub(crate) fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| ulid::Ulid::new().to_string())
}

/// The request id API Gateway gave the request (a fresh ULID when the event has none).
fn request_id_of(request: &Request) -> String {
    let from_context = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    from_context.filter(|id| !id.is_empty()).unwrap_or_else(|| ulid::Ulid::new().to_string())
}

/// Runs every request inside a span and a task-local naming its request id,
/// stamps `x-request-id` on the response and logs status and latency.
async fn with_request_id(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id_of(&request);
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
    let served = REQUEST_ID.scope(request_id.clone(), next.run(request));
    let mut response = served.instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HeaderName::from_static("x-request-id"), value);
    }
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "served"
        );
    });
    response
}

async fn no_route(request: Request) -> ApiError {
    ApiError::NotFound(format!("no route for {} {}", request.method(), request.uri().path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The servable application of one function's `routes` over `state`: what the
/// Lambda binary runs and the local gateway mounts.
pub fn app(routes: Routes, state: Arc<AppState>) -> Router {
    let (router, _) = routes.split_for_parts();
    router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(with_request_id))
        .with_state(state)
}

/// Serves one function's `routes` as a Lambda behind API Gateway (HTTP API).
pub async fn run(routes: Routes, state: AppState) -> Result<(), lambda_http::Error> {
    lambda_http::run(app(routes, Arc::new(state))).await
}
