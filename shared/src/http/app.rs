//! A function's HTTP application: its typed routes (declared once with
//! `function_routes!`, so the routes and the OpenAPI document come from the
//! same declarations) plus what every function shares: a span and an
//! `x-request-id` per request, problem+json 404/405 for anything the routes do
//! not serve, and `run` for the Lambda binary.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::handler::Handler;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::MethodRouter;
use http::{HeaderName, HeaderValue};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use tracing::Instrument;
use utoipa::openapi::path::HttpMethod;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::PathItemExt;

use super::ApiError;
use crate::AppState;

/// The routes of one function, with their OpenAPI operations.
pub type Routes = OpenApiRouter<Arc<AppState>>;

/// The routes of one function without their OpenAPI operations.
pub type Router = axum::Router<Arc<AppState>>;

/// Declares a function's routes once, as groups of handlers that share a path
/// (each handler's `#[utoipa::path]` names its method and path), and defines
/// two functions from that one list:
///
/// - `routes()`, a [`Routes`]: the routes with their OpenAPI operations and
///   schemas, for the document (`make contract`), the local gateway and tests;
/// - `router()`, a [`Router`]: the same routes alone, which the Lambda binary
///   serves. A deployed function never serves its document, so its init
///   does not build the operations and schemas (see BENCHMARKS.md).
///
/// `infra/tests/drift.rs` checks that both route every documented operation
/// to the same handler.
#[macro_export]
macro_rules! function_routes {
    ($([$($handler:ident),+ $(,)?]),+ $(,)?) => {
        /// The function's routes with their OpenAPI operations (the
        /// template's events for this function name the same).
        pub fn routes() -> $crate::http::Routes {
            ::utoipa_axum::router::OpenApiRouter::new()
                $(.routes(::utoipa_axum::routes!($($handler),+)))+
        }

        /// The function's routes without their OpenAPI document: what its
        /// Lambda binary serves.
        pub fn router() -> $crate::http::Router {
            let router = $crate::http::Router::new();
            $(
                let mut group = $crate::http::RouteGroup::default();
                $(
                    ::utoipa_axum::paste! {
                        group.add(
                            <[<__path_ $handler>] as ::utoipa::Path>::path(),
                            <[<__path_ $handler>] as ::utoipa::Path>::methods(),
                            $handler,
                        );
                    }
                )+
                let router = group.route(router);
            )+
            router
        }
    };
}

/// Handlers sharing a path, collected by `function_routes!` the way
/// `utoipa_axum::routes!` collects them (one method router, routed at each
/// path its handlers name).
#[doc(hidden)]
#[derive(Default)]
pub struct RouteGroup {
    paths: Vec<String>,
    methods: MethodRouter<Arc<AppState>>,
}

impl RouteGroup {
    pub fn add<H, T>(&mut self, path: String, methods: Vec<HttpMethod>, handler: H)
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        for method in methods {
            let router = std::mem::take(&mut self.methods);
            self.methods = router.on(method.to_method_filter(), handler.clone());
        }
        if !self.paths.contains(&path) {
            self.paths.push(path);
        }
    }

    pub fn route(self, router: Router) -> Router {
        self.paths
            .iter()
            .fold(router, |router, path| router.route(if path.is_empty() { "/" } else { path }, self.methods.clone()))
    }
}

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

/// The servable application of one function's routes (a [`Router`] or the
/// [`Routes`] with their document) over `state`: what the Lambda binary runs
/// and the local gateway mounts.
pub fn app(routes: impl Into<Router>, state: Arc<AppState>) -> axum::Router {
    routes
        .into()
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(with_request_id))
        .with_state(state)
}

/// Serves one function's `router` as a Lambda behind API Gateway (HTTP API).
pub async fn run(router: Router, state: AppState) -> Result<(), lambda_http::Error> {
    lambda_http::run(app(router, Arc::new(state))).await
}
